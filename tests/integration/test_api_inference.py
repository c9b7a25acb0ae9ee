"""Asynchronous endpoints and data capture through the real app and moto: the endpoint config a deploy
makes, POST /endpoints/{name}/async-invocations (the body in S3, then InvokeEndpointAsync), the answer or
failure read back, and the newest captured records."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from api_client import get, to_deploying, upload
from moto_cloud import MANIFEST, REGION, Cloud, make_bundle

ASYNC_MANIFEST = (
    MANIFEST
    + b"""
[deploy.async]
max_concurrent_invocations_per_instance = 2
[deploy.capture]
sampling_percent = 50
csv_content_types = ["text/csv"]
"""
)


@pytest.fixture
def artifacts(cloud: Cloud) -> str:
    return cloud.settings["SAGEDOCK_ARTIFACT_BUCKET"]


@pytest.fixture
def deployed(cloud: Cloud) -> str:
    """A run of project iris with [deploy.async] and [deploy.capture], deploying endpoint iris."""
    run_id = upload(cloud, "bundles/iris/async.zip", make_bundle({"sagedock.toml": ASYNC_MANIFEST}))
    to_deploying(cloud, run_id, "iris")
    return run_id


@pytest.fixture
def async_calls(cloud: Cloud) -> list[dict[str, Any]]:
    """The InvokeEndpointAsync calls the app makes, as its own client sends them."""
    from chalicelib.adapters.clients import client

    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    client("sagemaker-runtime").meta.events.register(
        "provide-client-params.sagemaker-runtime.InvokeEndpointAsync", record
    )
    return calls


def test_the_deploy_makes_an_asynchronous_capturing_endpoint_config(
    cloud: Cloud, deployed: str, artifacts: str
) -> None:
    config = cloud.run(deployed)["endpoint_config_name"]
    described = boto3.client("sagemaker", region_name=REGION).describe_endpoint_config(
        EndpointConfigName=config
    )
    assert described["AsyncInferenceConfig"] == {
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 2},
        "OutputConfig": {
            "S3OutputPath": f"s3://{artifacts}/iris/async/output/",
            "S3FailurePath": f"s3://{artifacts}/iris/async/failure/",
        },
    }
    assert described["DataCaptureConfig"]["DestinationS3Uri"] == f"s3://{artifacts}/iris/capture"
    assert described["DataCaptureConfig"]["InitialSamplingPercentage"] == 50
    # The run records the tables under their TOML keys
    assert cloud.run(deployed)["manifest"]["deploy"]["async"]["max_concurrent_invocations_per_instance"] == 2


def test_an_async_invocation_puts_the_body_in_s3_and_queues_it(
    cloud: Cloud, deployed: str, artifacts: str, async_calls: list[dict[str, Any]]
) -> None:
    response = cloud.client.http.post(
        "/endpoints/iris/async-invocations",
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
        body="5.1,3.5,1.4,0.2\n",
    )

    assert response.status_code == 202, response.body
    answer = json.loads(response.body)
    inference_id = answer["inference_id"]
    (call,) = async_calls
    key = f"iris/async/input/{inference_id}"
    assert call == {
        "EndpointName": "iris",
        "InputLocation": f"s3://{artifacts}/{key}",
        "ContentType": "text/csv",
        "Accept": "text/csv",
        "InferenceId": inference_id,
    }
    stored = boto3.client("s3", region_name=REGION).get_object(Bucket=artifacts, Key=key)
    assert stored["Body"].read() == b"5.1,3.5,1.4,0.2\n"
    assert answer["output_location"].startswith("s3://")  # where moto says
    assert answer["failure_location"].startswith("s3://")


def test_the_answer_is_pending_then_completed(cloud: Cloud, deployed: str, artifacts: str) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    assert get(cloud, "/endpoints/iris/async-invocations/abc123") == (
        202,
        {
            "inference_id": "abc123",
            "status": "pending",
            "location": f"s3://{artifacts}/iris/async/output/abc123.out",
        },
    )
    s3.put_object(
        Bucket=artifacts, Key="iris/async/output/abc123.out", Body=b"setosa\n", ContentType="text/csv"
    )
    status, body = get(cloud, "/endpoints/iris/async-invocations/abc123")
    assert status == 200
    assert body["status"] == "completed"
    assert body["body"] == "setosa\n"
    assert body["content_type"] == "text/csv"


def test_a_failed_invocation_shows_sagemakers_failure(cloud: Cloud, deployed: str, artifacts: str) -> None:
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=artifacts,
        Key="iris/async/failure/def456-error.out",
        Body=b"Received server error (500) from primary",
        ContentType="text/plain",
    )
    status, body = get(cloud, "/endpoints/iris/async-invocations/def456")
    assert status == 200
    assert body["status"] == "failed"
    assert body["location"] == f"s3://{artifacts}/iris/async/failure/def456-error.out"
    assert "server error" in body["body"]


def capture_record(event_id: str) -> dict[str, Any]:
    """One record as SageMaker's data capture writes it."""
    return {
        "captureData": {
            "endpointInput": {
                "observedContentType": "text/csv",
                "mode": "INPUT",
                "data": "5.1,3.5,1.4,0.2",
                "encoding": "CSV",
            },
            "endpointOutput": {
                "observedContentType": "text/csv",
                "mode": "OUTPUT",
                "data": "setosa",
                "encoding": "CSV",
            },
        },
        "eventMetadata": {"eventId": event_id, "inferenceTime": "2026-11-21T12:00:00Z"},
        "eventVersion": "0",
    }


def test_the_newest_captured_records_first(cloud: Cloud, deployed: str, artifacts: str) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    files = {
        "2026/11/21/09/10-00-000-a.jsonl": ["e1", "e2"],
        "2026/11/21/12/05-00-000-b.jsonl": ["e3"],
        "2026/11/21/12/40-00-000-c.jsonl": ["e4", "e5"],
        "2026/11/20/23/59-00-000-d.jsonl": ["e0"],
    }
    for name, events in files.items():
        body = "\n".join(json.dumps(capture_record(e)) for e in events) + "\n"
        s3.put_object(Bucket=artifacts, Key=f"iris/capture/iris/AllTraffic/{name}", Body=body.encode())

    status, body = get(cloud, "/endpoints/iris/captures?limit=4")

    assert status == 200, body
    assert body["destination"] == f"s3://{artifacts}/iris/capture/iris/AllTraffic/"
    assert [r["eventMetadata"]["eventId"] for r in body["records"]] == ["e5", "e4", "e3", "e2"]
    assert body["records"][0] == capture_record("e5")
    status, everything = get(cloud, "/endpoints/iris/captures?limit=100")
    assert [r["eventMetadata"]["eventId"] for r in everything["records"]] == [
        f"e{n}" for n in range(5, -1, -1)
    ]


def test_no_captures_yet_is_an_empty_list(cloud: Cloud, deployed: str) -> None:
    status, body = get(cloud, "/endpoints/iris/captures")
    assert status == 200
    assert body["records"] == []


def test_an_endpoint_without_the_tables_refuses_with_a_clear_code(cloud: Cloud) -> None:
    run_id = upload(cloud, "bundles/iris/plain.zip")
    to_deploying(cloud, run_id, "iris")

    response = cloud.client.http.post(
        "/endpoints/iris/async-invocations", headers={"Content-Type": "text/csv"}, body="1,2\n"
    )
    assert response.status_code == 400
    assert json.loads(response.body)["code"] == "NotAsynchronous"
    status, body = get(cloud, "/endpoints/iris/captures")
    assert (status, body["code"]) == (400, "NoCapture")


@pytest.mark.parametrize(
    "path",
    [
        "/endpoints/nobody/captures",
        "/endpoints/nobody/async-invocations/abc",
        "/endpoints/iris/async-invocations/a%20b",
    ],
)
def test_unknown_endpoints_and_malformed_ids_are_404(cloud: Cloud, deployed: str, path: str) -> None:
    status, body = get(cloud, path)
    assert status == 404, body
    assert body["code"] == "NotFound"


def test_an_async_invocation_needs_a_body_and_a_valid_limit(cloud: Cloud, deployed: str) -> None:
    response = cloud.client.http.post(
        "/endpoints/iris/async-invocations", headers={"Content-Type": "text/csv"}, body=""
    )
    assert response.status_code == 400
    status, body = get(cloud, "/endpoints/iris/captures?limit=0")
    assert status == 400
    assert body["errors"][0]["field"] == "limit"


def test_every_answer_of_the_new_routes_is_as_documented(cloud: Cloud, deployed: str, artifacts: str) -> None:
    from test_api_schema import conforms

    def check(method: str, path: str, body: str | None = None) -> int:
        headers = {"Content-Type": "text/csv"} if body is not None else {}
        response = cloud.client.http.request(method, path, headers=headers, body=body or b"")
        conforms(method, path, response.status_code, response.body)
        return int(response.status_code)

    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(
        Bucket=artifacts, Key="iris/async/output/done1.out", Body=b"\x00\x01", ContentType="application/x-npy"
    )
    s3.put_object(
        Bucket=artifacts, Key="iris/async/failure/bad1-error.out", Body=b"boom", ContentType="text/plain"
    )
    s3.put_object(
        Bucket=artifacts,
        Key="iris/capture/iris/AllTraffic/2026/11/21/12/00-00-000-x.jsonl",
        Body=(json.dumps(capture_record("e1")) + "\n").encode(),
    )
    assert check("POST", "/endpoints/iris/async-invocations", "1,2\n") == 202
    assert check("POST", "/endpoints/iris/async-invocations", "") == 400
    assert check("POST", "/endpoints/nobody/async-invocations", "1,2\n") == 404
    assert check("GET", "/endpoints/iris/async-invocations/pending1") == 202
    assert check("GET", "/endpoints/iris/async-invocations/done1") == 200
    assert check("GET", "/endpoints/iris/async-invocations/bad1") == 200
    assert check("GET", "/endpoints/nobody/async-invocations/x") == 404
    assert check("GET", "/endpoints/iris/captures?limit=2") == 200
    assert check("GET", "/endpoints/iris/captures?limit=x") == 400
    assert check("GET", "/endpoints/nobody/captures") == 404
    _, body = get(cloud, "/endpoints/iris/async-invocations/done1")
    assert body["body_base64"] == "AAE=" and body["content_type"] == "application/x-npy"
