"""S3 `Object Created` from the requests that create objects, as the emulator's WSGI layer sees them.

Which requests create an object is S3's REST API (path-style, as the SDKs address a loopback endpoint):
PutObject and CopyObject (`PUT /bucket/key`, the latter with `x-amz-copy-source`), CompleteMultipartUpload
(`POST /bucket/key?uploadId=`) and a browser upload (`POST /bucket`, multipart/form-data with a `key` field).
Once moto has answered one with success, the object's size, ETag and version are asked of the emulator
through S3's own API (HeadObject), as an outside observer would. Whether a bucket sends its events to
EventBridge is taken from the PutBucketNotificationConfiguration requests moto accepted: moto's
GetBucketNotificationConfiguration leaves `EventBridgeConfiguration` out of its answer.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_QUERY_SCOPE = re.compile(r"^[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request$")
# Query parameters that any request may carry: presigned-URL signatures and the SDK's operation hint.
_NEUTRAL_PARAMETER = re.compile(r"^(x-amz-.*|x-id)$", re.IGNORECASE)


@dataclass(frozen=True)
class ObjectWrite:
    """A request that creates an object if it succeeds: where, and the `reason` AWS gives in the event."""

    bucket: str
    key: str | None  # None for a browser upload until its form is read
    reason: str
    region: str | None


def object_write(environ: dict[str, Any]) -> ObjectWrite | None:
    """The object this request creates, or None when it is not one of the S3 calls that create one."""
    path = _decoded_path(environ)
    if path.startswith("/moto-api"):
        return None
    scope = _signing_scope(environ)
    if scope is not None and scope[1] != "s3":
        return None
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        return None
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    extra = {name for name in query if not _NEUTRAL_PARAMETER.match(name)}
    method = environ.get("REQUEST_METHOD", "")
    region = scope[0] if scope else None
    if method == "PUT" and key and not extra:
        reason = "CopyObject" if environ.get("HTTP_X_AMZ_COPY_SOURCE") else "PutObject"
        return ObjectWrite(bucket, key, reason, region)
    if method == "POST" and key and extra == {"uploadId"}:
        return ObjectWrite(bucket, key, "CompleteMultipartUpload", region)
    content_type = environ.get("CONTENT_TYPE", "")
    if method == "POST" and not key and not extra and content_type.startswith("multipart/form-data"):
        return ObjectWrite(bucket, None, "POST Object", region)
    return None


def form_key(environ: dict[str, Any], body: bytes) -> str | None:
    """The `key` field of a browser upload's form (the body is parsed from a copy)."""
    from werkzeug.formparser import parse_form_data

    copy = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
    _, form, _ = parse_form_data(copy)
    key = form.get("key")
    return str(key) if key else None


def notification_put(environ: dict[str, Any]) -> str | None:
    """The bucket whose notification configuration this request sets (`PUT /bucket?notification`), or None."""
    if environ.get("REQUEST_METHOD") != "PUT":
        return None
    scope = _signing_scope(environ)
    if scope is not None and scope[1] != "s3":
        return None
    bucket, _, key = _decoded_path(environ).lstrip("/").partition("/")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return bucket if bucket and not key and "notification" in query else None


def sends_to_eventbridge(configuration: bytes) -> bool:
    """Whether a NotificationConfiguration document turns EventBridge delivery on."""
    return b"EventBridgeConfiguration" in configuration


def _decoded_path(environ: dict[str, Any]) -> str:
    """PATH_INFO as text: WSGI hands over the request's bytes decoded as latin-1."""
    raw = str(environ.get("PATH_INFO", ""))
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return raw


def _signing_scope(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(region, service) the request was signed for, from its Authorization header or presigned URL."""
    match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match:
        return match.group(1), match.group(2)
    credential = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential")
    if credential:
        query_match = _QUERY_SCOPE.match(credential[0])
        if query_match:
            return query_match.group(1), query_match.group(2)
    return None
