"""The statuses an AWS failure becomes: throttling is a 503 to retry, a refusal a 502, a retry of a run
that is not FAILED a 409; each one JSON {code, message}, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from api_client import get, upload
from botocore.exceptions import ClientError
from moto_cloud import Cloud

from chalicelib import services as services_module


def refusing(code: str, status: int) -> Any:
    def call(**_: Any) -> Any:
        raise ClientError(
            {
                "Error": {"Code": code, "Message": f"{code} says no"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
            "Op",
        )

    return call


def test_a_throttled_read_is_a_503_to_retry(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = upload(cloud, "bundles/iris/v1.zip")
    dynamodb = services_module.get_services().dynamodb
    monkeypatch.setattr(dynamodb, "get_item", refusing("ProvisionedThroughputExceededException", 400))
    monkeypatch.setattr(dynamodb, "query", refusing("ThrottlingException", 400))

    for path in (f"/runs/{run_id}", f"/runs/{run_id}/logs", "/runs", "/projects", "/projects/iris"):
        status, body = get(cloud, path)
        assert status == 503, (path, body)
        assert body["code"] in ("ProvisionedThroughputExceededException", "ThrottlingException"), body
        assert "says no" in body["message"]


def test_a_refused_log_read_is_a_502_naming_the_stream(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.adapters.clients import client

    run_id = upload(cloud, "bundles/iris/v1.zip")
    monkeypatch.setattr(client("logs"), "get_log_events", refusing("AccessDeniedException", 400))

    status, body = get(cloud, f"/runs/{run_id}/logs")

    assert status == 502, body
    assert body["code"] == "AccessDeniedException"
    assert "/aws/codebuild/sagedock-build" in body["message"]


def test_retrying_a_run_that_did_not_fail_is_a_409_and_an_unknown_one_a_404(cloud: Cloud) -> None:
    run_id = upload(cloud, "bundles/iris/v1.zip")
    response = cloud.client.http.post(f"/runs/{run_id}/retry")
    assert response.status_code == 409
    assert json.loads(response.body)["code"] in ("Conflict", "StaleEvent")
    for unknown in ("iris-0123456789ab", "nope"):
        response = cloud.client.http.post(f"/runs/{unknown}/retry")
        assert response.status_code == 404, unknown
