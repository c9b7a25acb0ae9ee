"""Asynchronous invocations and captured records of an endpoint (a blueprint of its own, in the API Lambda):
POST /endpoints/{name}/async-invocations, GET /endpoints/{name}/async-invocations/{inference_id},
GET /endpoints/{name}/captures."""

from __future__ import annotations

import base64
import json

from chalice.app import Blueprint, Response
from pydantic import Field

from chalicelib.domain.errors import PayloadTooLarge
from chalicelib.http.api import (
    INVOCATION_CONTENT_TYPES,
    _Query,
    _validated,
    endpoint_name,
    iam,
    invocation,
    json_errors,
)
from chalicelib.services import get_services

inference_api = Blueprint(__name__)

# API Gateway takes at most 10 MB; SageMaker takes up to 1 GB from S3 (put it there yourself for more).
MAX_ASYNC_INVOCATION_BYTES = 6 * 1024**2
JSON: dict[str, str | list[str]] = {"Content-Type": "application/json"}


class CapturesQuery(_Query):
    """GET /endpoints/{name}/captures query string."""

    limit: int = Field(default=10, ge=1, le=100)


@inference_api.route(
    "/endpoints/{name}/async-invocations",
    methods=["POST"],
    content_types=INVOCATION_CONTENT_TYPES,
    authorizer=iam,
)
@json_errors
def invoke_endpoint_async(name: str) -> Response:
    """Put the body in S3 and queue it on the asynchronous endpoint: 202 with the inference id and where
    the answer (or the failure) will be."""
    from chalicelib.flows import inference

    endpoint = endpoint_name(name)
    body, content_type, accept = invocation(inference_api.current_request)
    if len(body) > MAX_ASYNC_INVOCATION_BYTES:
        raise PayloadTooLarge(
            f"the invocation body is {len(body)} bytes; the API takes at most {MAX_ASYNC_INVOCATION_BYTES} "
            "bytes (6 MB): send a smaller body"
        )
    queued = inference.invoke_async(
        get_services(),
        endpoint,
        body,
        content_type,
        accept,
    )
    return Response(body=queued, status_code=202, headers=JSON)


@inference_api.route("/endpoints/{name}/async-invocations/{inference_id}", methods=["GET"], authorizer=iam)
@json_errors
def async_invocation(name: str, inference_id: str) -> Response:
    """202 while pending; 200 with the answer (status completed) or the failure (status failed)."""
    from chalicelib.flows import inference

    answer = inference.async_answer(get_services(), endpoint_name(name), inference_id)
    body = {"inference_id": inference_id, "status": answer.status, "location": answer.location}
    if answer.status == "pending":
        return Response(body=json.dumps(body), status_code=202, headers=JSON)
    text = answer.content_type.startswith("text/") or "json" in answer.content_type
    if text:
        body["body"] = answer.body.decode("utf-8", errors="replace")
    else:
        body["body_base64"] = base64.b64encode(answer.body).decode()
    body["content_type"] = answer.content_type
    return Response(body=json.dumps(body), status_code=200, headers=JSON)


@inference_api.route("/endpoints/{name}/captures", methods=["GET"], authorizer=iam)
@json_errors
def endpoint_captures(name: str) -> Response:
    """The endpoint's newest captured records, newest first."""
    from chalicelib.flows import inference

    query = _validated(CapturesQuery, inference_api.current_request.query_params)
    found = inference.captures(get_services(), endpoint_name(name), query.limit)
    return Response(body=json.dumps(found), status_code=200, headers=JSON)
