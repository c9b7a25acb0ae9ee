"""The HTTP API (a Chalice blueprint): uploads, runs, logs, projects, retries, invocations; errors as JSON."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from chalice.app import Blueprint, IAMAuthorizer, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chalicelib.domain import names
from chalicelib.domain.errors import (
    BadRequest,
    Conflict,
    ModelFailed,
    NotFound,
    PayloadTooLarge,
    SagedockError,
    SettingsError,
    StaleEvent,
    TransientError,
    UpstreamError,
)
from chalicelib.domain.models import Stage, Status
from chalicelib.observability import logger
from chalicelib.services import get_services

api = Blueprint(__name__)
# In AWS every route needs SigV4-signed requests from principals allowed execute-api:Invoke.
iam = IAMAuthorizer()

# The one place where domain errors become HTTP statuses.
STATUS_OF_ERROR: tuple[tuple[type[SagedockError], int], ...] = (
    (BadRequest, 400),
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (StaleEvent, 409),
    (TransientError, 503),
    (UpstreamError, 502),
    (SettingsError, 500),
)
BINARY_CONTENT_TYPES = ["application/x-npy", "application/x-recordio-protobuf"]
INVOCATION_CONTENT_TYPES = [
    "text/csv",
    "application/json",
    "text/plain",
    "application/jsonlines",
    "application/x-npy",
    "application/octet-stream",
    "application/x-recordio-protobuf",
]
MAX_UPLOAD_BYTES = 5 * 1024**3  # the largest object one presigned POST can create
UPLOAD_CONTENT_TYPE = "application/zip"
UPLOAD_EXPIRES_SECONDS = 900
MAX_INVOCATION_BYTES = 6 * 1024**2  # SageMaker real-time endpoints refuse larger payloads
# Chalice answers an unsupported method or content type itself, as {"Code", "Message"}: these become ours.
CHALICE_ERROR_CODES = {"MethodNotAllowedError": "MethodNotAllowed", "InternalServerError": "Internal"}


def error_response(exc: SagedockError) -> Response:
    """A domain error as a JSON response with the right status."""
    status = exc.status if isinstance(exc, ModelFailed) else 500
    for kind, code in STATUS_OF_ERROR:
        if isinstance(exc, kind):
            status = code
            break
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if isinstance(exc, BadRequest) and exc.errors:
        body["errors"] = exc.errors
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


F = TypeVar("F", bound=Callable[..., Any])


def json_errors(view: F) -> F:
    """Every domain error leaves the API as JSON; anything else is logged and becomes a plain 500."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except SagedockError as exc:
            return error_response(exc)
        except Exception:
            logger.exception("unhandled error in the HTTP API")
            return error_response(SagedockError("internal error; see the API's logs"))

    return wrapper  # type: ignore[return-value]


@api.middleware("http")
def chalice_errors_as_ours(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Chalice's own 405/415 (and 400 for a binary answer without Accept) in the API's error shape."""
    response = get_response(event)
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and set(body) == {"Code", "Message"}:
        code = str(body["Code"])
        response.body = {"code": CHALICE_ERROR_CODES.get(code, code), "message": str(body["Message"])}
        response.headers["Content-Type"] = "application/json"
    return response


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListRunsQuery(_Query):
    """GET /runs query string."""

    project: str | None = Field(default=None, pattern=f"^{names.PROJECT_REGEX}$")
    status: Status | None = None
    limit: int = Field(default=20, ge=1, le=100)
    next_token: str | None = Field(default=None, max_length=2048)


class UploadRequest(_Query):
    """POST /uploads body."""

    project: str = Field(pattern=f"^{names.PROJECT_REGEX}$")
    name: str | None = Field(default=None, pattern=f"^{names.UPLOAD_NAME_REGEX}$")


class LogsQuery(_Query):
    """GET /runs/{run_id}/logs query string."""

    stage: Stage | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    next_token: str | None = Field(default=None, min_length=1, max_length=4096)


class ListProjectsQuery(_Query):
    """GET /projects query string."""

    limit: int = Field(default=20, ge=1, le=100)
    next_token: str | None = Field(default=None, max_length=2048)


def _validated(model: type[_Query], data: Any) -> Any:
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
            for err in exc.errors()
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise BadRequest(f"invalid request: {summary}", code="BadRequest", errors=errors) from exc


def _json_body(request: Request) -> Any:
    try:
        return request.json_body
    except Exception as exc:  # chalice raises BadRequestError for unparsable JSON
        raise BadRequest("the body is not valid JSON", code="BadRequest") from exc


@api.route("/health", methods=["GET"], authorizer=iam)
@json_errors
def health() -> dict[str, str]:
    """Liveness: answers without touching AWS."""
    return {"status": "ok"}


@api.route("/uploads", methods=["POST"], authorizer=iam)
@json_errors
def create_upload() -> dict[str, Any]:
    """A presigned POST for a new bundle, so API users need no S3 permissions of their own."""
    upload = _validated(UploadRequest, _json_body(api.current_request))
    svc = get_services()
    bucket = svc.settings.source_bucket
    # A fresh one-time key names the run alone, so its id is known before the bundle exists.
    key = names.upload_key(upload.project, uuid.uuid4().hex, upload.name)
    presigned = svc.s3.generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": UPLOAD_CONTENT_TYPE},
        Conditions=[
            ["content-length-range", 1, MAX_UPLOAD_BYTES],
            {"Content-Type": UPLOAD_CONTENT_TYPE},
        ],
        ExpiresIn=UPLOAD_EXPIRES_SECONDS,
    )
    return {
        "bucket": bucket,
        "key": key,
        "url": presigned["url"],
        "fields": presigned["fields"],
        "expires_in": UPLOAD_EXPIRES_SECONDS,
        "run_id": names.run_id_for(upload.project, bucket, key, ""),
    }


@api.route("/runs", methods=["GET"], authorizer=iam)
@json_errors
def list_runs() -> dict[str, Any]:
    """Runs newest first, filtered by project and status, paginated with next_token."""
    query = _validated(ListRunsQuery, api.current_request.query_params)
    runs, token = get_services().runs.list(
        project=query.project, status=query.status, limit=query.limit, next_token=query.next_token
    )
    return {"runs": [run.public() for run in runs], "next_token": token}


@api.route("/runs/{run_id}", methods=["GET"], authorizer=iam)
@json_errors
def get_run(run_id: str) -> dict[str, Any]:
    """One run with its timeline, provenance and error."""
    if not names.is_run_id(run_id):
        raise NotFound(f"no run {run_id}")
    return get_services().runs.get(run_id).public()


@api.route("/runs/{run_id}/logs", methods=["GET"], authorizer=iam)
@json_errors
def run_logs(run_id: str) -> dict[str, Any]:
    """The tail of a stage's logs (the failed or current one by default); next_token for what follows."""
    from chalicelib.flows.log_reading import run_logs

    query = _validated(LogsQuery, api.current_request.query_params)
    if not names.is_run_id(run_id):
        raise NotFound(f"no run {run_id}")
    svc = get_services()
    return run_logs(
        svc.runs.get(run_id),
        query.stage,
        limit=query.limit,
        next_token=query.next_token,
        codebuild_project=svc.settings.codebuild_project,
        logs=svc.logs,
    )


@api.route("/projects", methods=["GET"], authorizer=iam)
@json_errors
def list_projects() -> dict[str, Any]:
    """Projects, the one with the newest run first, with their latest run's status."""
    query = _validated(ListProjectsQuery, api.current_request.query_params)
    projects, token = get_services().runs.list_projects(limit=query.limit, next_token=query.next_token)
    return {"projects": projects, "next_token": token}


@api.route("/projects/{project}", methods=["GET"], authorizer=iam)
@json_errors
def get_project(project: str) -> dict[str, Any]:
    """A project's latest run, latest successful image and endpoint."""
    from chalicelib.flows.project_view import project_view

    if not names.is_valid_project(project):
        raise NotFound(f"no project {project}: project names are {names.PROJECT_RULE}")
    return project_view(project, get_services())


@api.route("/runs/{run_id}/retry", methods=["POST"], authorizer=iam)
@json_errors
def retry_run(run_id: str) -> dict[str, Any]:
    """Restart a FAILED run from its failed stage."""
    from chalicelib.flows.retry import retry

    if not names.is_run_id(run_id):
        raise NotFound(f"no run {run_id}")
    return retry(run_id, get_services()).public()


def endpoint_name(name: str) -> str:
    """`name`, if it can name a SageMaker endpoint; else a 400 saying so."""
    if not names.SAGEMAKER_NAME_PATTERN.fullmatch(name):
        raise BadRequest(f"{name!r} is not a valid endpoint name", code="BadRequest")
    return name


def invocation(request: Request) -> tuple[bytes, str, str | None]:
    """What an invocation route sends its endpoint: the body (a 400 when empty), its content type, Accept."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    raw = request.raw_body or b""
    body = raw.encode() if isinstance(raw, str) else raw
    if not body:
        raise BadRequest("the invocation body is empty", code="BadRequest")
    return body, headers.get("content-type", "application/octet-stream"), headers.get("accept")


@api.route(
    "/endpoints/{name}/invocations", methods=["POST"], content_types=INVOCATION_CONTENT_TYPES, authorizer=iam
)
@json_errors
def invoke_endpoint(name: str) -> Response:
    """Forward the body and content type to the endpoint and return its answer as it is."""
    endpoint_name(name)
    body, content_type, accept = invocation(api.current_request)
    if len(body) > MAX_INVOCATION_BYTES:
        raise PayloadTooLarge(
            f"the invocation body is {len(body)} bytes; SageMaker endpoints accept at most "
            f"{MAX_INVOCATION_BYTES} bytes (6 MB): send smaller batches, or use batch transform"
        )
    answer, answer_type = get_services().endpoints.invoke(name, body, content_type, accept)
    text = answer_type.startswith("text/") or "json" in answer_type
    payload: str | bytes = answer.decode("utf-8", errors="replace") if text else answer
    return Response(body=payload, status_code=200, headers={"Content-Type": answer_type})
