"""The embedded AWS emulator: moto's server on a loopback port, with the hooks that make it behave like AWS.

Two things moto does not do are added here, at the WSGI layer in front of moto's server app:
- an event bus: S3 `Object Created` (for buckets with EventBridge notifications on; `s3_notifications.py`
  tells which requests create an object) and every PutEvents entry on the default bus are published to
  subscribers, shaped exactly as AWS delivers them;
- API hooks: an executor can watch a call (after moto answered it) or answer it itself (moto lacks the
  operation, or answers it unlike AWS), keyed by the signing service and the operation name.
Nothing of moto is patched. State is cleared through moto's documented reset endpoint (`POST
/moto-api/reset`). What remains of moto's insides is its server app, built as `moto.server.ThreadedMotoServer`
builds it (`moto.moto_server.werkzeug_app`): that class takes no WSGI middleware, and the hooks need one.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sagedock import eventshapes
from sagedock.local.s3_notifications import (
    ObjectWrite,
    form_key,
    notification_put,
    object_write,
    sends_to_eventbridge,
)

log = logging.getLogger("local_cloud.emulator")

Event = dict[str, Any]
Subscriber = Callable[[Event], None]

# The emulator accepts any credentials; these are the conventional placeholders, never real ones.
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_INVOCATIONS_PATH = re.compile(r"^/endpoints/([^/]+)/invocations/?$")
_ASYNC_INVOCATIONS_PATH = re.compile(r"^/endpoints/([^/]+)/async-invocations/?$")


@dataclass
class ApiCall:
    """One AWS API request that reached the emulator, as a hook sees it."""

    service: str
    operation: str
    region: str
    params: dict[str, Any]
    body: bytes
    headers: dict[str, str]
    path: str


@dataclass
class ApiReply:
    """An answer a hook gives instead of moto's."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> ApiReply:
        """A JSON-protocol success."""
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/x-amz-json-1.1"})

    @classmethod
    def error(cls, code: str, message: str, status: int = 400) -> ApiReply:
        """An error the SDKs parse into ClientError with this code (JSON and REST-JSON protocols)."""
        body = json.dumps({"__type": code, "message": message}).encode()
        return cls(status, body, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code})


BeforeHook = Callable[[ApiCall], ApiReply | None]
AfterHook = Callable[[ApiCall, dict[str, Any]], None]


class EventBus:
    """The emulator's default event bus as seen by its subscribers (the local Lambda service)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> None:
        """Receive every event on the bus from now on."""
        with self._lock:
            self._subscribers.append(subscriber)

    def publish(self, event: Event) -> None:
        """Deliver one event to every subscriber; a failing subscriber never fails the publisher."""
        with self._lock:
            subscribers = list(self._subscribers)
        log.debug("event %s %s", event.get("detail-type"), json.dumps(event.get("detail"))[:300])
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber failed on %s", event.get("detail-type"))


class _HookedApp:
    """WSGI middleware in front of moto: runs the hooks registered for a call, else passes it through."""

    def __init__(self, inner: Callable[..., Iterable[bytes]], emulator: Emulator) -> None:
        self._inner = inner
        self._emulator = emulator
        self._atomic = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        write = object_write(environ)
        if write is not None:
            return self._observe_write(write, environ, start_response)
        bucket = notification_put(environ)
        if bucket is not None:
            return self._observe_notification(bucket, environ, start_response)
        key = _identify(environ)
        if key and key[0] == "dynamodb":
            # DynamoDB checks a condition and writes as one step; moto does not, and this server is
            # threaded, so its requests are applied one at a time (the pipeline's guards rely on it).
            with self._atomic:
                return list(_iterate(self._dispatch(key, environ, start_response)))
        return self._dispatch(key, environ, start_response)

    def _dispatch(
        self, key: tuple[str, str, str] | None, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        hooks = self._emulator._hooks_for(key) if key else None
        if not key or not hooks:
            return self._inner(environ, start_response)
        before, after = hooks
        call = _read_call(environ, key)
        for hook in before:
            reply = hook(call)
            if reply is not None:
                return _respond(start_response, reply)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        body = b"".join(_iterate(self._inner(environ, capture)))
        status_code = int(str(captured["status"]).split()[0])
        if 200 <= status_code < 300 and after:
            try:
                payload = json.loads(body) if body else {}
            except ValueError:
                payload = {}
            for after_hook in after:
                try:
                    after_hook(call, payload)
                except Exception:
                    log.exception("hook after %s.%s failed", call.service, call.operation)
        start_response(captured["status"], captured["headers"])
        return [body]

    def _observe_write(
        self, write: ObjectWrite, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Pass an object-creating S3 request to moto; once it succeeded, publish `Object Created`."""
        key = write.key
        if key is None:  # a browser upload: the key is a field of its form
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            key = form_key(environ, body)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        answer = b"".join(_iterate(self._inner(environ, capture)))
        start_response(captured["status"], captured["headers"])
        if key and 200 <= int(str(captured["status"]).split()[0]) < 300:
            version_id = {name.lower(): value for name, value in captured["headers"]}.get("x-amz-version-id")
            self._emulator._object_created(write, key, version_id)
        return [answer]

    def _observe_notification(
        self, bucket: str, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Pass PutBucketNotificationConfiguration to moto; once accepted, remember the EventBridge switch."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        answer = b"".join(_iterate(self._inner(environ, capture)))
        if 200 <= int(str(captured["status"]).split()[0]) < 300:
            self._emulator._eventbridge_buckets[bucket] = sends_to_eventbridge(body)
        start_response(captured["status"], captured["headers"])
        return [answer]


def _iterate(result: Iterable[bytes]) -> Iterator[bytes]:
    try:
        yield from result
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


def _identify(environ: dict[str, Any]) -> tuple[str, str, str] | None:
    """(signing service, operation, region) of a signed JSON-protocol or runtime-invocation request."""
    match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not match:
        return None
    region, service = match.group(1), match.group(2)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return service, target.rsplit(".", 1)[-1], region
    if environ.get("REQUEST_METHOD") == "POST" and _INVOCATIONS_PATH.match(environ.get("PATH_INFO", "")):
        return "sagemaker-runtime", "InvokeEndpoint", region
    if environ.get("REQUEST_METHOD") == "POST" and _ASYNC_INVOCATIONS_PATH.match(
        environ.get("PATH_INFO", "")
    ):
        return "sagemaker-runtime", "InvokeEndpointAsync", region
    return None


def _read_call(environ: dict[str, Any], key: tuple[str, str, str]) -> ApiCall:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    headers = {
        name[5:].replace("_", "-").title(): value
        for name, value in environ.items()
        if name.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    params: dict[str, Any] = {}
    if environ.get("HTTP_X_AMZ_TARGET") and body:
        try:
            loaded = json.loads(body)
            params = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            params = {}
    service, operation, region = key
    return ApiCall(service, operation, region, params, body, headers, environ.get("PATH_INFO", ""))


def _respond(start_response: Callable[..., Any], reply: ApiReply) -> list[bytes]:
    reasons = {
        200: "OK",
        202: "Accepted",
        400: "Bad Request",
        404: "Not Found",
        424: "Failed Dependency",
        500: "Server Error",
    }
    headers = {"x-amzn-RequestId": str(uuid.uuid4()), **reply.headers, "Content-Length": str(len(reply.body))}
    start_response(f"{reply.status} {reasons.get(reply.status, 'Status')}", list(headers.items()))
    return [reply.body]


class Emulator:
    """moto in server mode on a loopback port, plus the event bus and the API hooks."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self.bus = EventBus()
        self._before: dict[tuple[str, str], list[BeforeHook]] = {}
        self._after: dict[tuple[str, str], list[AfterHook]] = {}
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._moto: Any = None
        self._eventbridge_buckets: dict[str, bool] = {}  # bucket -> its notifications go to EventBridge
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.url = ""
        self.region = eventshapes.REGION

    def client(self, service: str) -> Any:
        """A boto3 client for the emulator (cached; boto3 clients are thread-safe once made)."""
        with self._clients_lock:
            if service not in self._clients:
                import boto3

                session: Any = boto3.session.Session(
                    aws_access_key_id=DUMMY_CREDENTIALS["aws_access_key_id"],
                    aws_secret_access_key=DUMMY_CREDENTIALS["aws_secret_access_key"],
                    region_name=self.region,
                )
                self._clients[service] = session.client(service, endpoint_url=self.url)
            return self._clients[service]

    # -- hooks ----------------------------------------------------------------------------------------------
    def before(self, service: str, operation: str, hook: BeforeHook) -> None:
        """Run `hook` before moto sees the call; a reply it returns is the call's answer."""
        self._before.setdefault((service, operation), []).append(hook)

    def after(self, service: str, operation: str, hook: AfterHook) -> None:
        """Run `hook` with moto's JSON answer once moto has answered the call successfully."""
        self._after.setdefault((service, operation), []).append(hook)

    def _hooks_for(self, key: tuple[str, str, str]) -> tuple[list[BeforeHook], list[AfterHook]] | None:
        before = self._before.get(key[:2], [])
        after = self._after.get(key[:2], [])
        return (before, after) if before or after else None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> str:
        """Serve on loopback; returns the endpoint URL (what AWS_ENDPOINT_URL should be)."""
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        self._moto = DomainDispatcherApplication(create_backend_app)
        self._reset()
        self.after("events", "PutEvents", self._on_put_events)

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                """Requests are not logged: the local cloud logs what happens, not every call."""

        app = _HookedApp(self._moto, self)
        self._server = make_server(self._host, self._port, app, threaded=True, request_handler=QuietHandler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="emulator", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving, undo the in-process hooks and forget every resource."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._moto is not None:
            self._reset()
        self._server = self._thread = self._moto = None

    def _reset(self) -> None:
        """Forget every resource, through moto's reset endpoint (in process: the server may be stopped)."""
        from werkzeug.test import Client

        self._eventbridge_buckets.clear()
        reply = Client(self._moto).post("/moto-api/reset")
        if reply.status_code != 200:
            raise RuntimeError(f"moto refused to reset: {reply.status} {reply.get_data(as_text=True)[:200]}")

    # -- S3 -> EventBridge ----------------------------------------------------------------------------------
    def _object_created(self, write: ObjectWrite, key: str, version_id: str | None) -> None:
        """Publish `Object Created` for an object just written, if its bucket sends events to EventBridge."""
        s3 = self.client("s3")
        try:
            if not self._eventbridge_buckets.get(write.bucket):
                return
            version = {"VersionId": version_id} if version_id and version_id != "null" else {}
            head = s3.head_object(Bucket=write.bucket, Key=key, **version)
            self.bus.publish(
                eventshapes.s3_object_created(
                    write.bucket,
                    key,
                    size=int(head["ContentLength"]),
                    etag=str(head["ETag"]),
                    version_id=head.get("VersionId"),
                    reason=write.reason,
                    region=write.region or self.region,
                )
            )
        except Exception:  # S3 delivers asynchronously: the upload itself never fails because of this
            log.exception("could not emit the S3 event for %s/%s", write.bucket, key)

    # -- PutEvents ------------------------------------------------------------------------------------------
    def _on_put_events(self, call: ApiCall, answer: dict[str, Any]) -> None:
        """Entries put on the default bus reach the subscribers, with the ids moto returned."""
        for entry, result in zip(call.params.get("Entries", []), answer.get("Entries", []), strict=False):
            bus_name = str(entry.get("EventBusName") or "default")
            if "EventId" not in result or not (
                bus_name == "default" or bus_name.endswith(":event-bus/default")
            ):
                continue
            try:
                detail = json.loads(entry.get("Detail") or "{}")
            except ValueError:
                continue
            when = entry.get("Time")
            self.bus.publish(
                eventshapes.envelope(
                    source=entry["Source"],
                    detail_type=entry["DetailType"],
                    detail=detail if isinstance(detail, dict) else {},
                    resources=entry.get("Resources", []),
                    time=eventshapes.iso_time(_from_epoch(when)) if when is not None else None,
                    event_id=result["EventId"],
                    region=call.region,
                )
            )


def _from_epoch(value: Any) -> Any:
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError):
        return None
