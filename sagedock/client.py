"""The CLI's HTTP API client: the local cloud's API as it is, a deployed one signed with SigV4 (IAM auth).

Where to talk to comes from flags, else the environment (SAGEDOCK_API_URL, SAGEDOCK_SOURCE_BUCKET,
AWS_ENDPOINT_URL), else the local cloud that `sagedock local up` is running on this machine.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_TIMEOUT = 60.0


class ApiError(Exception):
    """The API answered with an error ({code, message}) or could not be reached."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.status = status
        self.code = code
        self.message = message


class NoTarget(Exception):
    """Neither flags, nor the environment, nor a running local cloud say where the API is."""


@dataclass(frozen=True)
class Target:
    """Where the CLI sends requests and uploads bundles."""

    api_url: str
    source_bucket: str | None
    endpoint_url: str | None
    region: str
    local: bool
    # The running local cloud's dummy credentials, when it was found through its state directory.
    credentials: tuple[str, str] | None = None


def resolve_target(
    *,
    api_url: str | None = None,
    source_bucket: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    environ: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
) -> Target:
    """Flags first, then the environment, then the local cloud running on this machine (the one whose state
    directory SAGEDOCK_LOCAL_STATE names, by default the checkout's .sagedock/local)."""
    env = os.environ if environ is None else environ
    local: dict[str, str] = {}
    if not (api_url or env.get("SAGEDOCK_API_URL")):
        from sagedock.local.cloud import PROJECT_DIR, running_contract

        state = state_dir or Path(env.get("SAGEDOCK_LOCAL_STATE") or PROJECT_DIR / ".sagedock" / "local")
        local = running_contract(state)
        if not local:
            raise NoTarget(
                "no API to talk to: start the local cloud (`sagedock local up`), or set SAGEDOCK_API_URL "
                "(and SAGEDOCK_SOURCE_BUCKET) or pass --api-url for a deployed sagedock"
            )

    def pick(flag: str | None, name: str) -> str | None:
        return flag or env.get(name) or local.get(name) or None

    url = pick(api_url, "SAGEDOCK_API_URL") or ""
    host = urllib.parse.urlparse(url).hostname or ""
    return Target(
        api_url=url.rstrip("/"),
        source_bucket=pick(source_bucket, "SAGEDOCK_SOURCE_BUCKET"),
        endpoint_url=pick(endpoint_url, "AWS_ENDPOINT_URL"),
        region=pick(region, "AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
        or local.get("AWS_REGION")
        or "us-east-1",
        local=bool(local) or host in LOOPBACK_HOSTS,
        credentials=(local["AWS_ACCESS_KEY_ID"], local["AWS_SECRET_ACCESS_KEY"])
        if "AWS_ACCESS_KEY_ID" in local and "AWS_SECRET_ACCESS_KEY" in local
        else None,
    )


class ApiClient:
    """GET/POST against the sagedock API; errors become ApiError with the API's code and message."""

    def __init__(self, target: Target, *, timeout: float = DEFAULT_TIMEOUT, credentials: Any = None) -> None:
        self._target = target
        self._timeout = timeout
        self._credentials = credentials

    # -- routes ---------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._json("GET", f"/runs/{urllib.parse.quote(run_id, safe='')}")

    def list_runs(
        self,
        *,
        project: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        query = {"project": project, "status": status, "limit": limit, "next_token": next_token}
        return self._json("GET", "/runs", query={k: str(v) for k, v in query.items() if v is not None})

    def iter_runs(
        self, *, project: str | None = None, status: str | None = None, limit: int = 50
    ) -> Iterator[dict[str, Any]]:
        """Every run matching the filters, page by page."""
        token: str | None = None
        while True:
            page = self.list_runs(project=project, status=status, limit=limit, next_token=token)
            yield from page.get("runs", [])
            token = page.get("next_token")
            if not token:
                return

    def retry_run(self, run_id: str) -> dict[str, Any]:
        """Restart a FAILED run from its failed stage; returns the run."""
        return self._json("POST", f"/runs/{urllib.parse.quote(run_id, safe='')}/retry", body=b"{}")

    def get_logs(
        self,
        run_id: str,
        *,
        stage: str | None = None,
        limit: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        """A page of a stage's log events; passing back next_token returns only newer events."""
        query = {"stage": stage, "limit": limit, "next_token": next_token}
        return self._json(
            "GET",
            f"/runs/{urllib.parse.quote(run_id, safe='')}/logs",
            query={k: str(v) for k, v in query.items() if v is not None},
        )

    def list_projects(self, *, limit: int | None = None, next_token: str | None = None) -> dict[str, Any]:
        query = {"limit": limit, "next_token": next_token}
        return self._json("GET", "/projects", query={k: str(v) for k, v in query.items() if v is not None})

    def get_project(self, project: str) -> dict[str, Any]:
        return self._json("GET", f"/projects/{urllib.parse.quote(project, safe='')}")

    def create_upload(self, project: str, name: str) -> dict[str, Any]:
        """A presigned POST for a bundle (for callers with no S3 rights of their own)."""
        body = json.dumps({"project": project, "name": name}).encode()
        return self._json("POST", "/uploads", body=body)

    def retrain(self, project: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """POST /projects/{project}/retrain: a new run on the project's latest successful image."""
        body = json.dumps(dict(overrides)).encode()
        return self._json("POST", f"/projects/{urllib.parse.quote(project, safe='')}/retrain", body=body)

    def invoke(
        self, endpoint: str, body: bytes, *, content_type: str = "text/csv", accept: str | None = None
    ) -> tuple[str, bytes]:
        """POST the body to the endpoint; returns (content type, body) of its answer."""
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        _, answer_type, data = self._request(
            "POST",
            f"/endpoints/{urllib.parse.quote(endpoint, safe='')}/invocations",
            body=body,
            headers=headers,
        )
        return answer_type, data

    def invoke_async(
        self, endpoint: str, body: bytes, *, content_type: str = "text/csv", accept: str | None = None
    ) -> dict[str, Any]:
        """Queue the body on an asynchronous endpoint: {inference_id, output_location, failure_location}."""
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        _, _, data = self._request(
            "POST",
            f"/endpoints/{urllib.parse.quote(endpoint, safe='')}/async-invocations",
            body=body,
            headers=headers,
        )
        loaded: dict[str, Any] = json.loads(data)
        return loaded

    def async_answer(self, endpoint: str, inference_id: str) -> dict[str, Any]:
        """The invocation's state: `status` pending, completed (with `body`) or failed."""
        quoted = "/".join(urllib.parse.quote(part, safe="") for part in (endpoint, inference_id))
        endpoint_path, inference_path = quoted.split("/")
        return self._json("GET", f"/endpoints/{endpoint_path}/async-invocations/{inference_path}")

    def captures(self, endpoint: str, *, limit: int | None = None) -> dict[str, Any]:
        """The endpoint's newest captured records."""
        query = {"limit": str(limit)} if limit is not None else None
        return self._json("GET", f"/endpoints/{urllib.parse.quote(endpoint, safe='')}/captures", query=query)

    # -- transport ------------------------------------------------------------------------------------------
    def _json(
        self, method: str, path: str, *, query: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        _, _, data = self._request(method, path, query=query, body=body, headers=headers)
        loaded = json.loads(data) if data else {}
        return loaded if isinstance(loaded, dict) else {"value": loaded}

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, str, bytes]:
        url = self._target.api_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        all_headers = {"Accept": "application/json", **(headers or {})}
        if not url.startswith(("http://", "https://")):  # before signing: a typo is not a credentials problem
            raise ApiError(0, "BadUrl", f"not an http(s) URL: {url!r}")
        if not self._target.local:
            all_headers = self._signed(method, url, body, all_headers)
        status, answer_headers, data = _http(method, url, body, all_headers, self._timeout)
        return status, answer_headers.get("content-type", ""), data

    def _signed(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        """SigV4 for API Gateway with IAM auth (service `execute-api`), with the caller's AWS credentials."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = self._credentials
        if credentials is None:
            import boto3

            credentials = boto3.session.Session().get_credentials()
            if credentials is None:
                raise ApiError(
                    0, "NoCredentials", "a deployed API needs AWS credentials to sign requests (IAM auth)"
                )
        request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
        SigV4Auth(credentials, "execute-api", self._target.region).add_auth(request)
        return dict(request.headers.items())


def post_form(
    url: str, fields: Mapping[str, str], file_name: str, data: bytes, timeout: float = 300
) -> dict[str, str]:
    """A browser-style multipart upload (an S3 presigned POST); returns the response headers."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        "Content-Type: application/zip\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f"multipart/form-data; boundary={boundary}"
    return _http("POST", url, b"".join(parts), {"Content-Type": content_type}, timeout)[1]


def _http(
    method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: float
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP(S) exchange: (status, lower-cased headers, body); errors become ApiError."""
    if not url.startswith(("http://", "https://")):
        raise ApiError(0, "BadUrl", f"not an http(s) URL: {url!r}")
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) checked above)
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        raise _api_error(exc.code, exc.read()) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise ApiError(0, "Unreachable", f"cannot reach {url}: {reason}") from exc


def _api_error(status: int, data: bytes) -> ApiError:
    try:
        payload = json.loads(data)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and ("code" in payload or "message" in payload or "Message" in payload):
        return ApiError(
            status, str(payload.get("code", "")), str(payload.get("message") or payload.get("Message"))
        )
    return ApiError(status, f"HTTP{status}", data.decode("utf-8", "replace")[:500] or f"HTTP {status}")


def add_target_arguments(parser: Any) -> None:
    """--api-url, --source-bucket, --endpoint-url, --region: where to go (default: the local cloud)."""
    group = parser.add_argument_group("target (default: the local cloud, or SAGEDOCK_*/AWS_* variables)")
    group.add_argument("--api-url", help="the sagedock API (default: $SAGEDOCK_API_URL)")
    group.add_argument("--source-bucket", help="the bucket bundles go to (default: $SAGEDOCK_SOURCE_BUCKET)")
    group.add_argument("--endpoint-url", help="an AWS endpoint override (default: $AWS_ENDPOINT_URL)")
    group.add_argument("--region", help="the AWS region (default: $AWS_REGION)")


def target_from_args(args: Any) -> Target:
    """The Target the common flags (and the environment) name."""
    return resolve_target(
        api_url=getattr(args, "api_url", None),
        source_bucket=getattr(args, "source_bucket", None),
        endpoint_url=getattr(args, "endpoint_url", None),
        region=getattr(args, "region", None),
    )
