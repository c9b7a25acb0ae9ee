"""The HTTP API through the real app and moto: health, run listing and paging, uploads, invocations,
and the JSON errors a client gets for each bad request."""

from __future__ import annotations

import base64
import itertools
import json
import re
from typing import Any

import boto3
import pytest
from api_client import ACCOUNT, assert_bad_request, get, post_json
from moto_cloud import REGION, Cloud, make_bundle

from chalicelib import services as services_module
from chalicelib.domain import names


def walk(cloud: Cloud, query: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every run of a listing, following next_token page by page; (runs, pages)."""
    collected: list[dict[str, Any]] = []
    token: str | None = None
    for pages in itertools.count(1):
        path = f"/runs?{query}&limit={limit}" + (f"&next_token={token}" if token else "")
        status, body = get(cloud, path)
        assert status == 200, body
        assert len(body["runs"]) <= limit
        collected.extend(body["runs"])
        token = body["next_token"]
        if token is None:
            return collected, pages
        assert pages < 20, "pagination does not end"
    raise AssertionError("unreachable")


# --- health -------------------------------------------------------------------------------------------


def test_health(cloud: Cloud) -> None:
    assert get(cloud, "/health") == (200, {"status": "ok"})


# --- listing runs -------------------------------------------------------------------------------------


def test_no_runs_yet(cloud: Cloud) -> None:
    assert get(cloud, "/runs") == (200, {"runs": [], "next_token": None})


def test_runs_newest_first(cloud: Cloud, runs: dict[str, str]) -> None:
    status, body = get(cloud, "/runs")

    assert status == 200
    assert [r["run_id"] for r in body["runs"]] == list(reversed(runs.values()))
    assert body["next_token"] is None
    # Each run is the public record: what GET /runs/{id} returns
    for listed in body["runs"]:
        assert listed == cloud.run(listed["run_id"])
        assert "version" not in listed


def test_listing_never_shows_the_endpoint_ownership_items(cloud: Cloud, runs: dict[str, str]) -> None:
    # Given a run that reached DEPLOYING, so the runs table also holds an endpoint#iris item
    table = boto3.client("dynamodb", region_name=REGION)
    keys = [i["run_id"]["S"] for i in table.scan(TableName=cloud.settings["SAGEDOCK_RUNS_TABLE"])["Items"]]
    assert "endpoint#iris" in keys

    # When listing every run, and the project's runs
    for query in ("", "?project=iris", "?status=DEPLOYING"):
        status, body = get(cloud, f"/runs{query}")
        # Then only runs are listed
        assert status == 200
        assert body["runs"], query
        assert all(names.is_run_id(r["run_id"]) and r["status"] for r in body["runs"]), query


FILTERS = [
    ("project=wine", ["wine-failed", "wine-building"]),
    ("project=iris", ["iris-deploying", "iris-failed", "iris-building"]),
    ("project=nothing-here", []),
    ("status=FAILED", ["wine-failed", "iris-failed"]),
    ("status=BUILDING", ["wine-building", "iris-building"]),
    ("status=DEPLOYING", ["iris-deploying"]),
    ("status=SUCCEEDED", []),
    ("project=iris&status=FAILED", ["iris-failed"]),
    ("project=wine&status=BUILDING", ["wine-building"]),
]


def test_filters_by_project_and_status(cloud: Cloud, runs: dict[str, str]) -> None:
    for query, expected in FILTERS:
        status, body = get(cloud, f"/runs?{query}")

        assert status == 200, (query, body)
        assert [r["run_id"] for r in body["runs"]] == [runs[name] for name in expected], query
        assert body["next_token"] is None, query


def test_pagination_walks_every_run_newest_first_once(cloud: Cloud, runs: dict[str, str]) -> None:
    newest_first = list(reversed(runs.values()))
    for limit in (1, 2, 3, 5, 100):
        listed, pages = walk(cloud, "", limit)

        assert [r["run_id"] for r in listed] == newest_first, limit
        assert pages >= -(-len(runs) // limit), limit


def test_pagination_with_filters(cloud: Cloud, runs: dict[str, str]) -> None:
    for query, expected in FILTERS:
        for limit in (1, 2):
            listed, _pages = walk(cloud, query, limit)
            assert [r["run_id"] for r in listed] == [runs[name] for name in expected], (query, limit)


def test_a_page_with_more_to_come_says_so(cloud: Cloud, runs: dict[str, str]) -> None:
    status, body = get(cloud, "/runs?limit=2")
    assert status == 200
    assert len(body["runs"]) == 2
    assert isinstance(body["next_token"], str) and body["next_token"]


BAD_QUERIES = [
    *((f"limit={limit}", "limit") for limit in ("0", "101", "x", "-1", "1.5", "")),
    *((f"status={status}", "status") for status in ("DONE", "failed", "IN_PROGRESS")),
    *((f"project={project}", "project") for project in ("Iris", "-iris", "a_b", "a" * 41)),
    ("projetc=iris", "projetc"),  # an unknown parameter is refused, not ignored
]


def test_bad_list_queries_are_400s_naming_the_field(cloud: Cloud) -> None:
    for query, field in BAD_QUERIES:
        status, body = get(cloud, f"/runs?{query}")
        assert_bad_request(status, body, field)


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


GARBAGE_TOKENS = [
    "garbage",
    "%21%21%21",
    "%FF%FE",
    _b64([1, 2]),
    _b64({"run_id": "not-an-attribute-value"}),
    _b64({"run_id": {"N": "1"}}),
    base64.urlsafe_b64encode(b"\xff\xfe{").decode(),
    "x" * 3000,
]


def test_garbage_next_token_is_a_400(cloud: Cloud) -> None:
    for token in GARBAGE_TOKENS:
        status, body = get(cloud, f"/runs?next_token={token}")
        assert_bad_request(status, body)
        assert body["code"] in ("InvalidToken", "BadRequest"), token


def test_forged_key_tokens_are_a_400_not_a_500(cloud: Cloud, runs: dict[str, str]) -> None:
    # Given tokens that decode to a key, but not to a key of the index being queried
    for token in (
        _b64({"run_id": {"S": "iris-0123456789ab"}}),
        _b64({"run_id": {"S": "x"}, "kind": {"S": "run"}}),
        _b64({"bogus": {"S": "x"}}),
    ):
        # Then each is refused as a bad request
        status, body = get(cloud, f"/runs?next_token={token}")
        assert_bad_request(status, body)


def test_token_of_one_project_on_another_project_is_not_a_500(cloud: Cloud, runs: dict[str, str]) -> None:
    _status, first = get(cloud, "/runs?project=iris&limit=1")
    token = first["next_token"]
    assert token

    status, body = get(cloud, f"/runs?project=wine&next_token={token}")

    # Either refused as a bad token, or a page of wine's runs: never another project's runs, never a 500
    if status == 200:
        assert {r["project"] for r in body["runs"]} <= {"wine"}
    else:
        assert_bad_request(status, body)


# --- one run ------------------------------------------------------------------------------------------


def test_unknown_run_is_a_json_404(cloud: Cloud) -> None:
    for run_id in ("iris-0123456789ab", "nope", "invalid-ffffffffffff"):
        status, body = get(cloud, f"/runs/{run_id}")
        assert status == 404, run_id
        assert body["code"] == "NotFound"
        assert run_id in body["message"]


# --- uploads ------------------------------------------------------------------------------------------


def test_an_unexpected_error_is_a_json_500_that_reveals_nothing(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services_module.get_services().runs, "list", broken)
    status, body = get(cloud, "/runs")
    assert status == 500
    assert body == {"code": "Internal", "message": "internal error; see the API's logs"}


def test_upload_is_a_presigned_post_for_a_bundle_key(cloud: Cloud) -> None:
    status, body = post_json(cloud, "/uploads", {"project": "iris"})

    assert status == 200, body
    assert body["bucket"] == "sagedock-source"
    assert re.fullmatch(r"bundles/iris/uploads/[0-9a-f]{32}/bundle\.zip", body["key"])
    assert names.project_from_key(body["key"]) == "iris"
    assert body["url"].startswith("https://")
    assert body["fields"]["key"] == body["key"]
    assert body["expires_in"] == 900
    assert names.is_run_id(body["run_id"]) and body["run_id"].startswith("iris-")
    # The policy limits the size and the content type of what may be posted
    assert body["fields"]["Content-Type"] == "application/zip"
    policy = json.loads(base64.b64decode(body["fields"]["policy"]))
    assert ["content-length-range", 1, 5 * 1024**3] in policy["conditions"]
    assert {"Content-Type": "application/zip"} in policy["conditions"]


def test_each_upload_gets_its_own_key_and_run(cloud: Cloud) -> None:
    answers = [post_json(cloud, "/uploads", {"project": "iris", "name": "v1.zip"})[1] for _ in range(3)]
    assert len({a["key"] for a in answers}) == 3
    assert len({a["run_id"] for a in answers}) == 3


def test_upload_with_a_name(cloud: Cloud) -> None:
    status, body = post_json(cloud, "/uploads", {"project": "iris", "name": "v1.zip"})
    assert status == 200
    assert re.fullmatch(r"bundles/iris/uploads/[0-9a-f]{32}/v1\.zip", body["key"])


def test_the_upload_creates_the_run_the_api_announced(cloud: Cloud) -> None:
    # Given a presigned upload and its announced run id
    _status, answer = post_json(cloud, "/uploads", {"project": "iris"})

    # When the bundle lands in the (versioned) source bucket under that key and its event arrives
    event = cloud.upload(answer["key"], make_bundle())
    assert event["detail"]["object"]["version-id"]
    outcome = cloud.send("bundle_uploaded", event)

    # Then the run has exactly that id, and it is readable at once
    assert outcome["run_id"] == answer["run_id"]
    assert cloud.run(answer["run_id"])["source"]["key"] == answer["key"]
    # And a replay of the same upload (another version of that one-time key) is the same run, not a new one
    again = cloud.send("bundle_uploaded", cloud.upload(answer["key"], make_bundle()))
    assert again["run_id"] == answer["run_id"]
    _status, listed = get(cloud, "/runs?project=iris")
    assert [r["run_id"] for r in listed["runs"]] == [answer["run_id"]]


def test_presigned_post_uploads_the_bundle(cloud: Cloud) -> None:
    import requests

    # Given a presigned upload
    _status, upload_info = post_json(cloud, "/uploads", {"project": "iris", "name": "v9.zip"})
    bundle = make_bundle()

    # When a client with no AWS credentials posts the bundle to it
    response = requests.post(
        upload_info["url"],
        data=upload_info["fields"],
        files={"file": ("v9.zip", bundle)},
        timeout=10,
    )

    # Then the bundle is in the source bucket under its key
    assert response.status_code in (200, 204), response.text
    stored = cloud.s3.get_object(Bucket=upload_info["bucket"], Key=upload_info["key"])
    assert stored["Body"].read() == bundle


BAD_UPLOADS: list[tuple[dict[str, Any], str]] = [
    ({"project": "Iris"}, "project"),
    ({"project": "a" * 41}, "project"),
    ({"project": "../etc"}, "project"),
    ({}, "project"),
    ({"project": "iris", "name": "../evil.zip"}, "name"),
    ({"project": "iris", "name": "bundle.tar.gz"}, "name"),
    ({"project": "iris", "extra": 1}, "extra"),
]


def test_bad_upload_request_is_a_400_naming_the_field(cloud: Cloud) -> None:
    for body, field in BAD_UPLOADS:
        status, answer = post_json(cloud, "/uploads", body)
        assert_bad_request(status, answer, field)


def test_upload_body_that_is_not_a_json_object_is_a_400(cloud: Cloud) -> None:
    for raw in ("{not json", "project=iris", "", '["iris"]', '"iris"', "42", "null"):
        response = cloud.client.http.post("/uploads", headers={"Content-Type": "application/json"}, body=raw)
        assert_bad_request(response.status_code, json.loads(response.body))


# --- invocations --------------------------------------------------------------------------------------


@pytest.fixture
def runtime(cloud: Cloud) -> list[dict[str, Any]]:
    """The InvokeEndpoint calls the app makes, recorded as the app's own client sends them."""
    from chalicelib.adapters.clients import client

    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    client("sagemaker-runtime").meta.events.register(
        "provide-client-params.sagemaker-runtime.InvokeEndpoint", record
    )
    return calls


def answer_with(body: str, content_type: str) -> None:
    """Queue the endpoint's next answer in moto's SageMaker Runtime."""
    from moto.sagemakerruntime.models import sagemakerruntime_backends

    backend = sagemakerruntime_backends[ACCOUNT][REGION]
    backend.results_queue.append((body, content_type, "AllTraffic", ""))


def test_csv_invocation_is_forwarded_and_answered(cloud: Cloud, runtime: list[dict[str, Any]]) -> None:
    # Given an endpoint that answers a CSV row with a CSV prediction
    answer_with("setosa\n", "text/csv")

    # When a client posts a CSV row
    response = cloud.client.http.post(
        "/endpoints/iris/invocations",
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
        body="5.1,3.5,1.4,0.2\n",
    )

    # Then the body and content type went to that endpoint as they were, and its answer came back
    assert response.status_code == 200, response.body
    assert response.body == b"setosa\n"
    assert response.headers["Content-Type"] == "text/csv"
    assert len(runtime) == 1
    call = runtime[0]
    assert call["EndpointName"] == "iris"
    assert call["ContentType"] == "text/csv"
    assert call["Accept"] == "text/csv"
    body = call["Body"]
    assert (body.encode() if isinstance(body, str) else body) == b"5.1,3.5,1.4,0.2\n"


def test_json_invocation_without_accept(cloud: Cloud, runtime: list[dict[str, Any]]) -> None:
    answer_with('{"predictions": ["setosa"]}', "application/json")
    payload = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]})

    response = cloud.client.http.post(
        "/endpoints/iris-prod/invocations", headers={"Content-Type": "application/json"}, body=payload
    )

    assert response.status_code == 200, response.body
    assert json.loads(response.body) == {"predictions": ["setosa"]}
    assert response.headers["Content-Type"] == "application/json"
    (call,) = runtime
    assert call["EndpointName"] == "iris-prod"
    assert call["ContentType"] == "application/json"
    assert "Accept" not in call


def test_empty_invocation_body_is_a_400(cloud: Cloud, runtime: list[dict[str, Any]]) -> None:
    response = cloud.client.http.post(
        "/endpoints/iris/invocations", headers={"Content-Type": "text/csv"}, body=""
    )
    assert_bad_request(response.status_code, json.loads(response.body))
    assert runtime == []


def test_unsupported_content_type_is_a_json_415(cloud: Cloud, runtime: list[dict[str, Any]]) -> None:
    response = cloud.client.http.post(
        "/endpoints/iris/invocations", headers={"Content-Type": "application/xml"}, body="<row/>"
    )
    assert response.status_code == 415
    body = json.loads(response.body)
    assert body["code"] == "UnsupportedMediaType" and "application/xml" in body["message"]
    assert runtime == []


def test_a_body_above_sagemakers_6_mb_is_a_413(cloud: Cloud, runtime: list[dict[str, Any]]) -> None:
    response = cloud.client.http.post(
        "/endpoints/iris/invocations",
        headers={"Content-Type": "text/csv"},
        body="1," * (3 * 1024**2) + "1",
    )
    assert response.status_code == 413
    body = json.loads(response.body)
    assert body["code"] == "PayloadTooLarge" and "6291456" in body["message"]
    assert runtime == []


def test_a_body_of_exactly_6_mb_is_forwarded(cloud: Cloud, runtime: list[dict[str, Any]]) -> None:
    answer_with("ok", "text/plain")
    response = cloud.client.http.post(
        "/endpoints/iris/invocations", headers={"Content-Type": "text/plain"}, body="x" * (6 * 1024**2)
    )
    assert response.status_code == 200, response.body[:200]
    assert len(runtime) == 1


def runtime_answers(code: str, message: str, http_status: int = 400, **fields: Any) -> Any:
    """The app's SageMaker Runtime client answers the next InvokeEndpoint with the error `code`."""
    from botocore.stub import Stubber

    from chalicelib.adapters.clients import client

    stubber = Stubber(client("sagemaker-runtime"))
    stubber.add_client_error(
        "invoke_endpoint",
        service_error_code=code,
        service_message=message,
        http_status_code=http_status,
        modeled_fields=fields or None,
    )
    return stubber


def model_answers_error(status: int, message: str) -> Any:
    """The model's container answered the invocation with `status` (SageMaker's ModelError, 424)."""
    return runtime_answers(
        "ModelError",
        "Received client error from primary container",
        424,
        OriginalStatusCode=status,
        OriginalMessage=message,
    )


def test_the_models_own_4xx_is_passed_through_as_json(cloud: Cloud) -> None:
    # Given a model that refuses the row with a 400 of its own
    with model_answers_error(400, "expected 4 features, got 3"):
        response = cloud.client.http.post(
            "/endpoints/iris/invocations", headers={"Content-Type": "text/csv"}, body="1,2,3"
        )

    # Then the caller gets that status and the model's message, as a JSON error
    assert response.status_code == 400
    body = json.loads(response.body)
    assert body["code"] == "ModelError"
    assert "expected 4 features, got 3" in body["message"]


def test_the_models_5xx_is_a_502_never_a_500(cloud: Cloud) -> None:
    with model_answers_error(500, "boom"):
        response = cloud.client.http.post(
            "/endpoints/iris/invocations", headers={"Content-Type": "text/csv"}, body="1,2,3,4"
        )
    assert response.status_code == 502
    assert json.loads(response.body)["code"] == "ModelError"


DIGEST = "sha256:" + "a" * 64


def test_invoking_an_endpoint_that_does_not_exist_is_a_404(cloud: Cloud) -> None:
    # Given no endpoint named ghost (the runtime answers ValidationError, as for a bad request)
    with runtime_answers("ValidationError", "Endpoint ghost of account 123456789012 not found."):
        response = cloud.client.http.post(
            "/endpoints/ghost/invocations", headers={"Content-Type": "text/csv"}, body="1,2,3,4"
        )

    # Then the caller is told it does not exist, not that the request was bad
    assert response.status_code == 404, response.body
    body = json.loads(response.body)
    assert body["code"] == "NotFound"
    assert "no endpoint ghost" in body["message"]


def test_a_validation_error_of_an_existing_endpoint_stays_a_400(cloud: Cloud) -> None:
    # Given an endpoint that exists, and a runtime that refuses the request
    sm = cloud.sagemaker.inner
    sm.create_model(
        ModelName="iris-model",
        PrimaryContainer={"Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sagedock/iris@{DIGEST}"},
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/sagedock-sagemaker",
    )
    sm.create_endpoint_config(
        EndpointConfigName="iris-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "iris-model",
                "InstanceType": "ml.t2.medium",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName="iris", EndpointConfigName="iris-config")
    with runtime_answers("ValidationError", "Inference Component Name header is required"):
        response = cloud.client.http.post(
            "/endpoints/iris/invocations", headers={"Content-Type": "text/csv"}, body="1,2,3,4"
        )

    assert response.status_code == 400, response.body
    body = json.loads(response.body)
    assert body["code"] == "InvalidInvocation"
    assert "Inference Component Name header is required" in body["message"]


# --- what Chalice answers itself ----------------------------------------------------------------------


def test_an_unsupported_method_is_a_json_405(cloud: Cloud) -> None:
    for method, path in (
        ("DELETE", "/runs"),
        ("PUT", "/uploads"),
        ("POST", "/projects"),
        ("GET", "/endpoints/x/invocations"),
    ):
        response = cloud.client.http.request(
            method, path, headers={"Content-Type": "application/json"}, body=b""
        )
        assert response.status_code == 405, (method, path)
        body = json.loads(response.body)
        assert body["code"] == "MethodNotAllowed" and method in body["message"], body


def test_a_json_route_refuses_another_content_type_with_a_json_415(cloud: Cloud) -> None:
    response = cloud.client.http.post("/uploads", headers={"Content-Type": "text/plain"}, body="project=iris")
    assert response.status_code == 415
    assert json.loads(response.body)["code"] == "UnsupportedMediaType"


def test_invalid_endpoint_name_is_a_400(cloud: Cloud, runtime: list[dict[str, Any]]) -> None:
    for name in ("bad_name", "-iris", "iris-", "a" * 64):
        response = cloud.client.http.post(
            f"/endpoints/{name}/invocations", headers={"Content-Type": "text/csv"}, body="1,2"
        )
        assert_bad_request(response.status_code, json.loads(response.body))
    assert runtime == []
