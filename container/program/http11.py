"""HTTP/1.1 framing for `serve`: parse requests off a connection's buffer, write responses; no user code.

Kept apart from `inference.py` (what a user changes) and from `workers.py` (processes and connections).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_HEADER_BYTES = 64 * 1024
REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    411: "Length Required",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


class HttpError(Exception):
    """A request the server answers with a 4xx status and a plain-text reason."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


def media_type(value: bytes | None) -> str:
    """`text/csv; charset=utf-8` -> `text/csv`."""
    return value.split(b";", 1)[0].strip().lower().decode("latin-1") if value else ""


def choose_output(accept: bytes | None, default: str, encoders: Mapping[str, Any]) -> str:
    """The first media type of the Accept header that we can produce (`*/*` or none: `default`)."""
    if default not in encoders:
        default = next(iter(encoders))
    if not accept:
        return default
    for item in accept.split(b","):
        wanted = media_type(item)
        if wanted in encoders:
            return wanted
        if wanted in ("*/*", "text/*", "application/*", ""):
            return default
    shown = accept.decode("latin-1")
    raise HttpError(406, f"cannot answer in {shown!r}: ask for {' or '.join(encoders)}")


@dataclass
class Request:
    """One parsed request."""

    method: bytes
    path: bytes
    headers: dict[bytes, bytes]
    body: bytes
    keep_alive: bool


def _chunked_body(buffer: bytes | bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body beginning at `start`: (body, end) or None while incomplete.

    Called again as more bytes arrive, so chunks are only located until the last one is in; their bytes
    are copied once, at the end.
    """
    spans: list[tuple[int, int]] = []
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[position:line_end]).split(b";", 1)[0], 16)
        except ValueError:
            raise HttpError(400, "malformed chunked body", close=True) from None
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            if trailer_end < 0:
                return None
            return b"".join(buffer[begin:end] for begin, end in spans), trailer_end + 4
        data_start = line_end + 2
        if len(buffer) < data_start + size + 2:
            return None
        spans.append((data_start, data_start + size))
        position = data_start + size + 2


class Parsed:
    """Result of looking at a connection's input buffer."""

    def __init__(self, request: Request | None, consumed: int, wants_continue: bool = False) -> None:
        self.request = request
        self.consumed = consumed
        self.wants_continue = wants_continue


def parse_request(buffer: bytearray, max_payload: int) -> Parsed:
    """The first complete request in the buffer, or `Parsed(None, 0)` while more bytes are needed."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buffer) > MAX_HEADER_BYTES:
            raise HttpError(431, "request headers too large", close=True)
        return Parsed(None, 0)
    lines = bytes(buffer[:head_end]).split(b"\r\n")
    try:
        method, target, version = lines[0].split(b" ")
    except ValueError:
        raise HttpError(400, "malformed request line", close=True) from None
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise HttpError(400, "malformed header line", close=True)
        headers[name.strip().lower()] = value.strip()
    connection = headers.get(b"connection", b"").lower()
    keep_alive = connection != b"close" if version == b"HTTP/1.1" else connection == b"keep-alive"
    body_start = head_end + 4
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        decoded = _chunked_body(buffer, body_start)
        if decoded is None:
            if len(buffer) - body_start > max_payload:
                raise HttpError(413, "payload too large", close=True)
            return Parsed(None, 0, wants_continue=b"expect" in headers)
        body, end = decoded
    else:
        try:
            length = int(headers.get(b"content-length", b"0"))
        except ValueError:
            raise HttpError(400, "malformed Content-Length", close=True) from None
        if length > max_payload:
            raise HttpError(413, f"payload larger than {max_payload // (1024 * 1024)} MB", close=True)
        end = body_start + length
        if len(buffer) < end:
            return Parsed(None, 0, wants_continue=b"expect" in headers)
        body = bytes(buffer[body_start:end])
    path = target.split(b"?", 1)[0]
    return Parsed(Request(method, path, headers, body, keep_alive), end)


def response(status: int, body: bytes, content_type: str, keep_alive: bool, extra: str = "") -> bytes:
    """The bytes of one HTTP/1.1 response."""
    connection = "" if keep_alive else "Connection: close\r\n"
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n{connection}{extra}\r\n"
    )
    return head.encode("latin-1") + body
