"""What `serve` does: a lean pre-forking HTTP/1.1 server for SageMaker's inference contract.

The parent binds the port, loads the model once and forks one worker per CPU; it accepts connections
and hands each to the worker holding the fewest, which runs a small event loop over its keep-alive
connections. Per request there is no framework, no thread hand-off and no pandas: a one-row CSV body is
split and converted in a few microseconds. SIGTERM (or SIGINT) lets every worker finish the request it
is on and exit; the parent then exits 0. Settings come from the environment:

  SAGEMAKER_BIND_TO_PORT   port to listen on (default 8080)
  SAGEDOCK_BIND_HOST       address to listen on (default 0.0.0.0)
  SAGEDOCK_WORKERS         worker processes (also MODEL_SERVER_WORKERS; default: one per usable CPU)
  SAGEDOCK_MAX_PAYLOAD_MB  largest request body accepted (default 32)
  SAGEDOCK_OPT_ML          root of the SageMaker tree (default /opt/ml); the model is in <root>/model
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# One thread per worker: the workers already fill the CPUs. Set before numpy is imported.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

MAX_HEADER_BYTES = 64 * 1024
GRACEFUL_TIMEOUT = 20.0  # SageMaker sends SIGKILL 30 s after SIGTERM
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
CSV = "text/csv"
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


class Scorer(Protocol):
    """What the server needs from the model: the row width and a batch prediction."""

    n_features: int

    def predict(self, rows: Sequence[Sequence[float]]) -> list[Any]: ...


class HttpError(Exception):
    """A request the server answers with a 4xx status and a plain-text reason."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


@dataclass(frozen=True)
class Config:
    """The server's settings, read once from the environment."""

    host: str
    port: int
    workers: int
    max_payload: int
    model_dir: str

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str] = os.environ) -> Config:
        """Read and check the settings; a bad value raises ValueError naming the variable."""

        def number(name: str, default: int, minimum: int) -> int:
            text = env.get(name, "").strip()
            if not text:
                return default
            try:
                value = int(text)
            except ValueError:
                value = minimum - 1
            if value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {text!r}")
            return value

        workers = number("MODEL_SERVER_WORKERS", usable_cpus(), 1)
        return cls(
            host=env.get("SAGEDOCK_BIND_HOST", "0.0.0.0"),  # noqa: S104 - a container listens on all
            port=number("SAGEMAKER_BIND_TO_PORT", 8080, 1),
            workers=number("SAGEDOCK_WORKERS", workers, 1),
            max_payload=number("SAGEDOCK_MAX_PAYLOAD_MB", 32, 1) * 1024 * 1024,
            model_dir=os.path.join(env.get("SAGEDOCK_OPT_ML", "/opt/ml"), "model"),
        )


def usable_cpus() -> int:
    """CPUs this process may run on (affinity-aware where the platform tells)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------- request bodies -> rows -> bodies


def parse_csv(body: bytes, width: int) -> list[list[float]]:
    """Rows of numbers from a headerless CSV body, one row a line."""
    if b'"' in body:
        lines: list[list[bytes]] = [
            [cell.encode() for cell in row] for row in csv.reader(io.StringIO(body.decode("utf-8")))
        ]
    else:
        lines = [line.split(b",") for line in body.splitlines()]
    rows: list[list[float]] = []
    for lineno, cells in enumerate(lines, start=1):
        if len(cells) != width:
            if len(cells) == 1 and not cells[0].strip():
                continue  # blank line
            hint = " (send the features only, without the label)" if len(cells) == width + 1 else ""
            raise HttpError(400, f"line {lineno}: expected {width} values, got {len(cells)}{hint}")
        try:
            rows.append([float(cell) for cell in cells])
        except ValueError:
            for column, cell in enumerate(cells, start=1):
                try:
                    float(cell)
                except ValueError:
                    text = cell.decode("utf-8", "replace")
                    message = f"line {lineno}, column {column}: {text!r} is not a number"
                    raise HttpError(400, message) from None
    if not rows:
        raise HttpError(400, f"empty request: send one line of {width} comma-separated numbers per row")
    return rows


def parse_json(body: bytes, width: int) -> list[list[float]]:
    """Rows from `{"instances": [[...], ...]}`, `[[...], ...]` or a single row `[...]`; null is missing."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise HttpError(400, f"the body is not valid JSON: {exc}") from None
    if isinstance(document, dict):
        if "instances" not in document:
            raise HttpError(400, 'a JSON object must have "instances": a list of rows')
        document = document["instances"]
    if not isinstance(document, list) or not document:
        raise HttpError(400, "expected a non-empty list of rows (or one row) of numbers")
    if not isinstance(document[0], list):
        document = [document]
    rows: list[list[float]] = []
    for index, row in enumerate(document, start=1):
        if not isinstance(row, list) or len(row) != width:
            size = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            raise HttpError(400, f"row {index}: expected a list of {width} numbers, got {size}")
        values: list[float] = []
        for column, cell in enumerate(row, start=1):
            if cell is None:
                values.append(float("nan"))
            elif isinstance(cell, (int, float)) and not isinstance(cell, bool):
                values.append(float(cell))
            else:
                raise HttpError(400, f"row {index}, column {column}: {cell!r} is not a number")
        rows.append(values)
    return rows


def render_csv(predictions: list[Any]) -> bytes:
    """One prediction a line."""
    return "".join(f"{value}\n" for value in predictions).encode()


def render_json(predictions: list[Any]) -> bytes:
    """`{"predictions": [...]}`."""
    return json.dumps({"predictions": predictions}).encode()


PARSERS: dict[str, Callable[[bytes, int], list[list[float]]]] = {CSV: parse_csv, JSON: parse_json}
RENDERERS: dict[str, Callable[[list[Any]], bytes]] = {CSV: render_csv, JSON: render_json}


def media_type(value: bytes | None) -> str:
    """`text/csv; charset=utf-8` -> `text/csv`."""
    return value.split(b";", 1)[0].strip().lower().decode("latin-1") if value else ""


def choose_output(accept: bytes | None, default: str) -> str:
    """The first media type of the Accept header that we can produce (`*/*` or none: the input's)."""
    if not accept:
        return default
    for item in accept.split(b","):
        wanted = media_type(item)
        if wanted in RENDERERS:
            return wanted
        if wanted in ("*/*", "text/*", "application/*", ""):
            return default
    shown = accept.decode("latin-1")
    raise HttpError(406, f"cannot answer in {shown!r}: ask for text/csv or application/json")


# ---------------------------------------------------------------- HTTP/1.1


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


class Application:
    """Routes a request to its handler: the SageMaker inference endpoints."""

    def __init__(self, scorer: Scorer, config: Config) -> None:
        self.scorer = scorer
        self.config = config
        self.execution_parameters = json.dumps(
            {"MaxConcurrentTransforms": config.workers, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
        ).encode()

    def handle(self, request: Request) -> bytes:
        """The response bytes for one request (never raises)."""
        keep = request.keep_alive
        try:
            if request.path == b"/invocations":
                if request.method != b"POST":
                    raise HttpError(405, "use POST /invocations")
                content_type, body = self.invoke(request)
                return response(200, body, content_type, keep)
            if request.path == b"/ping":
                if request.method not in (b"GET", b"HEAD"):
                    raise HttpError(405, "use GET /ping")
                return response(200, b"", JSON, keep)
            if request.path == b"/execution-parameters" and request.method == b"GET":
                return response(200, self.execution_parameters, JSON, keep)
            raise HttpError(404, "not found: the endpoints are GET /ping and POST /invocations")
        except HttpError as exc:
            return response(exc.status, f"{exc}\n".encode(), TEXT, keep and not exc.close)
        except Exception as exc:
            traceback.print_exc()
            return response(500, f"{type(exc).__name__}: {exc}\n".encode(), TEXT, keep)

    def invoke(self, request: Request) -> tuple[str, bytes]:
        """Score the request's rows: (content type, body)."""
        content_type = media_type(request.headers.get(b"content-type"))
        parser = PARSERS.get(content_type)
        if parser is None:
            shown = content_type or "none"
            raise HttpError(415, f"unsupported content type {shown!r}: send text/csv or application/json")
        output = choose_output(request.headers.get(b"accept"), content_type)
        rows = parser(request.body, self.scorer.n_features)
        try:
            predictions = self.scorer.predict(rows)
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        return output, RENDERERS[output](predictions)


class Connection:
    """A client connection's buffers."""

    __slots__ = ("continued", "inbuf", "outbuf", "sock", "writing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = b""
        self.continued = False
        self.writing = False


_KEEP_ALIVE: list[socket.socket] = []


def signal_wakeup() -> socket.socket:
    """A socket that becomes readable (one byte per signal number) whenever a handled signal arrives."""
    wake_read, wake_write = socket.socketpair()
    wake_read.setblocking(False)
    wake_write.setblocking(False)
    signal.set_wakeup_fd(wake_write.fileno())
    _KEEP_ALIVE.append(wake_write)  # the writing end must outlive this function
    return wake_read


class Worker:
    """One process's event loop over the connections the parent hands it."""

    def __init__(self, control: socket.socket, app: Application) -> None:
        self.control = control
        self.app = app
        self.selector = selectors.DefaultSelector()
        self.connections: dict[int, Connection] = {}
        self.stopping = False

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (or the parent goes away); then close everything and return 0."""
        wake = signal_wakeup()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        self.control.setblocking(False)
        self.selector.register(self.control, selectors.EVENT_READ, None)
        self.selector.register(wake, selectors.EVENT_READ, None)
        while not self.stopping:
            for key, events in self.selector.select():
                sock = key.fileobj
                if sock is self.control:
                    self._adopt()
                elif sock is wake:
                    with contextlib.suppress(OSError):
                        wake.recv(64)
                else:
                    connection = self.connections.get(key.fd)
                    if connection is not None:
                        self._serve(connection, events)
        for connection in list(self.connections.values()):
            self._close(connection)
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _adopt(self) -> None:
        """Take the connections the parent sent over the control socket (SCM_RIGHTS)."""
        try:
            message, fds, _, _ = socket.recv_fds(self.control, 256, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            message, fds = b"", []
        if not message and not fds:
            self.stopping = True  # the parent is gone
            return
        for fd in fds:
            sock = socket.socket(fileno=fd)
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections[fd] = Connection(sock)
            self.selector.register(sock, selectors.EVENT_READ, None)

    def _close(self, connection: Connection) -> None:
        fd = connection.sock.fileno()
        if fd >= 0:
            self.selector.unregister(connection.sock)
            self.connections.pop(fd, None)
            with contextlib.suppress(OSError):
                self.control.send(b"x")  # tell the parent: one connection fewer here
        connection.sock.close()

    def _serve(self, connection: Connection, events: int) -> None:
        if events & selectors.EVENT_WRITE and not self._flush(connection):
            return
        if events & selectors.EVENT_READ:
            try:
                data = connection.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._close(connection)
                return
            if not data:
                self._close(connection)
                return
            connection.inbuf += data
        self._respond(connection)

    def _respond(self, connection: Connection) -> None:
        """Answer every complete request in the input buffer (pipelining included), in order."""
        replies: list[bytes] = []
        close = False
        while connection.inbuf and not connection.outbuf:
            try:
                parsed = parse_request(connection.inbuf, self.app.config.max_payload)
            except HttpError as exc:
                replies.append(response(exc.status, f"{exc}\n".encode(), TEXT, False))
                close = True
                break
            request = parsed.request
            if request is None:
                if parsed.wants_continue and not connection.continued:
                    connection.continued = True
                    replies.append(b"HTTP/1.1 100 Continue\r\n\r\n")
                break
            del connection.inbuf[: parsed.consumed]
            connection.continued = False
            replies.append(self.app.handle(request))
            if not request.keep_alive:
                close = True
                break
        if replies:
            connection.outbuf += b"".join(replies)
            if not self._flush(connection):
                return
        if close:
            self._close(connection)

    def _flush(self, connection: Connection) -> bool:
        """Send what is pending; True once all is sent (the connection may have been closed if not)."""
        try:
            sent = connection.sock.send(connection.outbuf)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(connection)
            return False
        connection.outbuf = connection.outbuf[sent:]
        if connection.outbuf:
            if not connection.writing:
                connection.writing = True
                self.selector.modify(connection.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, None)
            return False
        if connection.writing:
            connection.writing = False
            self.selector.modify(connection.sock, selectors.EVENT_READ, None)
        return True


# ---------------------------------------------------------------- process management


def _die_with_parent() -> None:
    """Linux: have the kernel send SIGTERM to this worker if the parent dies without stopping it."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class WorkerSlot:
    """The parent's view of one worker: its control socket and how many connections it holds."""

    pid: int
    control: socket.socket
    started: float
    connections: int = 0


class Master:
    """Accepts connections and hands each to the worker holding the fewest; replaces workers that die.

    Accepting in one place keeps long-lived keep-alive connections spread evenly over the workers
    (workers racing for a shared socket often leave one of them with most of the connections).
    """

    def __init__(self, listener: socket.socket, app: Application, config: Config) -> None:
        self.listener = listener
        self.app = app
        self.config = config
        self.selector = selectors.DefaultSelector()
        self.slots: dict[int, WorkerSlot] = {}  # by pid
        self.quick_deaths = 0

    def spawn(self) -> None:
        """Fork one worker with a fresh control socket."""
        parent = os.getpid()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # Signals stay blocked across the fork until the worker has its own handlers installed.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                self.selector.close()
                self.listener.close()
                ours.close()
                for slot in self.slots.values():
                    slot.control.close()
                _die_with_parent()
                if os.getppid() != parent:
                    os._exit(0)
                code = Worker(theirs, self.app).run()
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        theirs.close()
        ours.setblocking(False)
        self.slots[pid] = WorkerSlot(pid, ours, time.monotonic())
        self.selector.register(ours, selectors.EVENT_READ, pid)

    def run(self) -> int:
        """Serve until told to stop; 0 after a clean shutdown, 1 if the workers keep crashing."""
        wake = signal_wakeup()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, lambda *_: None)
        for _ in range(self.config.workers):
            self.spawn()
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.selector.register(wake, selectors.EVENT_READ, None)
        print(
            f"serve: listening on {self.config.host}:{self.config.port} "
            f"with {self.config.workers} worker(s), pid {os.getpid()}",
            flush=True,
        )
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.listener:
                    self._accept()
                elif key.fileobj is wake:
                    received = self._signals(wake)
                    if signal.SIGTERM in received or signal.SIGINT in received:
                        return self.stop(wake)
                    if signal.SIGCHLD in received and not self._replace_dead():
                        self.stop(wake)
                        return 1
                else:
                    self._closed_by(key.data)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: leave it in the backlog for a moment
                print(f"serve: accept failed: {exc}", file=sys.stderr, flush=True)
                return
            with sock:
                for slot in sorted(self.slots.values(), key=lambda s: s.connections):
                    try:
                        socket.send_fds(slot.control, [b"c"], [sock.fileno()])
                    except OSError:
                        continue  # that worker is stuck or gone: try the next
                    slot.connections += 1
                    break

    def _closed_by(self, pid: int) -> None:
        slot = self.slots.get(pid)
        if slot is None:
            return
        try:
            data = slot.control.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the worker is gone; SIGCHLD does the rest
            self.selector.unregister(slot.control)
            return
        slot.connections = max(0, slot.connections - len(data))

    def _replace_dead(self) -> bool:
        """Start a worker for each one that exited; False when they keep dying at start."""
        for pid, status in self._reap():
            slot = self.slots.pop(pid, None)
            if slot is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(slot.control)
            slot.control.close()
            print(f"serve: worker {pid} exited ({status}); starting another", file=sys.stderr, flush=True)
            self.quick_deaths = self.quick_deaths + 1 if time.monotonic() - slot.started < 1.0 else 0
            if self.quick_deaths >= 5:
                print("serve: workers keep crashing at start; giving up", file=sys.stderr, flush=True)
                return False
            self.spawn()
        return True

    def stop(self, wake: socket.socket) -> int:
        """Stop accepting, SIGTERM every worker, wait for them (SIGKILL after the grace time), return 0."""
        self.selector.unregister(self.listener)
        self.listener.close()
        for pid in self.slots:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACEFUL_TIMEOUT
        while self.slots and time.monotonic() < deadline:
            for pid, _ in self._reap():
                self.slots.pop(pid, None)
            if self.slots:
                with selectors.DefaultSelector() as selector:
                    selector.register(wake, selectors.EVENT_READ)
                    selector.select(min(0.5, max(0.0, deadline - time.monotonic())))
                self._signals(wake)
        for pid in list(self.slots):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        print("serve: stopped", flush=True)
        return 0

    @staticmethod
    def _signals(wake: socket.socket) -> set[int]:
        """The signal numbers received since the last call."""
        received: set[int] = set()
        while True:
            try:
                data = wake.recv(256)
            except (BlockingIOError, InterruptedError):
                return received
            if not data:
                return received
            received.update(data)

    @staticmethod
    def _reap() -> list[tuple[int, str]]:
        """Collect every exited child: (pid, how it ended)."""
        ended: list[tuple[int, str]] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return ended
            if pid == 0:
                return ended
            if os.WIFSIGNALED(status):
                ended.append((pid, f"signal {os.WTERMSIG(status)}"))
            else:
                ended.append((pid, f"exit code {os.waitstatus_to_exitcode(status)}"))


def main() -> int:
    """Entry point of the `serve` program."""
    try:
        config = Config.from_env()
    except ValueError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    listener = socket.create_server((config.host, config.port), backlog=2048)
    # Connections queue in the backlog while the model loads; they are answered once the workers run.
    import model

    try:
        scorer = model.load(Path(config.model_dir))
    except Exception as exc:
        print(f"serve: cannot load the model: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return Master(listener, Application(scorer, config), config).run()
