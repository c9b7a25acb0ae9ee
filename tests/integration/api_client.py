"""Helpers of the HTTP API tests: requests through the app's test client, and runs in known states."""

from __future__ import annotations

import itertools
import json
from typing import Any

from moto_cloud import Cloud, make_bundle

from chalicelib import services as services_module
from sagedock.eventshapes import ecr_image_action, training_state

ACCOUNT = "123456789012"
DIGEST = "sha256:" + "ab" * 32


# --- helpers ------------------------------------------------------------------------------------------


def get(cloud: Cloud, path: str) -> tuple[int, Any]:
    response = cloud.client.http.get(path)
    return response.status_code, json.loads(response.body)


def post_json(cloud: Cloud, path: str, body: Any) -> tuple[int, Any]:
    response = cloud.client.http.post(
        path, headers={"Content-Type": "application/json"}, body=json.dumps(body)
    )
    return response.status_code, json.loads(response.body)


def assert_bad_request(status: int, body: dict[str, Any], field: str | None = None) -> None:
    """A 400 in the API's error shape, naming `field` among its field errors when given."""
    assert status == 400, body
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["message"], str) and body["message"]
    if field is not None:
        assert field in [error["field"] for error in body["errors"]], body
        assert all(error["message"] for error in body["errors"])


def ticking_clock(cloud: Cloud) -> None:
    """One distinct, increasing timestamp per call, so "newest first" has one right answer."""
    seconds = itertools.count()

    def clock() -> str:
        n = next(seconds)
        return f"2026-11-21T12:{n // 60:02d}:{n % 60:02d}.000Z"

    services_module.get_services().clock = clock


def upload(cloud: Cloud, key: str, body: bytes | None = None) -> str:
    """Given a bundle uploaded and its event delivered: its run id."""
    outcome = cloud.send("bundle_uploaded", cloud.upload(key, body if body is not None else make_bundle()))
    return str(outcome["run_id"])


def to_deploying(cloud: Cloud, run_id: str, project: str) -> None:
    """Take a BUILDING run through its push and its training to DEPLOYING."""
    cloud.send("image_pushed", ecr_image_action(f"sagedock/{project}", DIGEST, run_id))
    job = cloud.run(run_id)["training_job_name"]
    cloud.send("training_state_changed", training_state(job, "Completed", tags={"sagedock:run-id": run_id}))
    assert cloud.run(run_id)["status"] == "DEPLOYING"
