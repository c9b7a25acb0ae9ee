"""Asynchronous invocations and captured records of an endpoint, as the HTTP API offers them.

The endpoint's settings come from the run that deployed it (the runs table's endpoint owner): its
[deploy.async] output and failure prefixes, its [deploy.capture] destination.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.domain import inference, specs
from chalicelib.domain.errors import BadRequest, NotFound

if TYPE_CHECKING:
    from chalicelib.domain.models import Run
    from chalicelib.services import Services


@dataclass(frozen=True)
class AsyncAnswer:
    """An asynchronous invocation's state: `pending`, `completed` (body: the answer) or `failed` (body:
    SageMaker's failure text)."""

    status: str
    location: str
    body: bytes = b""
    content_type: str = "application/octet-stream"


def _deployed_run(svc: Services, endpoint: str) -> Run:
    owner = svc.runs.endpoint_owner(endpoint)
    run = svc.runs.find(owner) if owner else None
    if run is None:
        raise NotFound(f"no endpoint {endpoint} deployed by sagedock: deploy a run to create it")
    return run


def _async_locations(svc: Services, endpoint: str) -> tuple[Run, str, str]:
    run = _deployed_run(svc, endpoint)
    locations = specs.async_locations(run, svc.settings)
    if locations is None:
        raise BadRequest(
            f"endpoint {endpoint} is not asynchronous: add [deploy.async] to its sagedock.toml, "
            "or use POST /endpoints/{name}/invocations",
            code="NotAsynchronous",
        )
    return run, *locations


def invoke_async(
    svc: Services, endpoint: str, body: bytes, content_type: str, accept: str | None
) -> dict[str, Any]:
    """Put the body under the async input prefix and queue it: the inference id and where its answer
    (or failure) will be."""
    run, _, failure = _async_locations(svc, endpoint)
    inference_id = uuid.uuid4().hex
    key = inference.input_key(run.project, inference_id)
    found_id, output_location, failure_location = svc.endpoints.invoke_async(
        endpoint,
        body,
        content_type,
        accept,
        input_uri=f"s3://{svc.settings.artifact_bucket}/{key}",
        inference_id=inference_id,
    )
    return {
        "inference_id": found_id,
        "output_location": output_location,
        "failure_location": failure_location or inference.failure_location(failure, found_id),
    }


def async_answer(svc: Services, endpoint: str, inference_id: str) -> AsyncAnswer:
    """The answer SageMaker wrote for the invocation, its failure, or pending (neither exists yet)."""
    if not inference.INFERENCE_ID_PATTERN.fullmatch(inference_id):
        raise NotFound(f"no inference {inference_id}")
    _, output, failure = _async_locations(svc, endpoint)
    output_location = inference.output_location(output, inference_id)
    answer = svc.endpoints.read(output_location)
    if answer is not None:
        return AsyncAnswer("completed", output_location, *answer)
    failure_location = inference.failure_location(failure, inference_id)
    failed = svc.endpoints.read(failure_location)
    if failed is not None:
        return AsyncAnswer("failed", failure_location, *failed)
    return AsyncAnswer("pending", output_location)


def captures(svc: Services, endpoint: str, limit: int) -> dict[str, Any]:
    """The endpoint's newest captured records (SageMaker's JSON Lines records, newest first)."""
    run = _deployed_run(svc, endpoint)
    destination = specs.capture_destination(run, svc.settings)
    if destination is None:
        raise BadRequest(
            f"endpoint {endpoint} captures no data: add [deploy.capture] to its sagedock.toml",
            code="NoCapture",
        )
    prefix = inference.capture_prefix(destination, endpoint, specs.VARIANT_NAME)
    return {"endpoint": endpoint, "destination": prefix, "records": svc.endpoints.captures(prefix, limit)}
