"""GET /runs/{run_id}/logs through the real app and moto's CloudWatch Logs: which stream each stage reads,
the tail, following with next_token, and the errors of a bad request."""

from __future__ import annotations

import base64
import contextlib
import re
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from api_client import DIGEST, assert_bad_request, get, upload
from moto_cloud import REGION, Cloud, make_bundle

from sagedock.eventshapes import build_state, ecr_image_action, training_state

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
# CloudWatch refuses events from the future or older than 14 days: an hour ago, on a whole second.
BASE_MS = (int(time.time()) - 3600) * 1000


@pytest.fixture
def logs(cloud: Cloud) -> Any:
    return boto3.client("logs", region_name=REGION)


def write(logs: Any, group: str, stream: str, messages: list[str], offset: int = 0) -> None:
    """Put events as the service that owns the stream would (one second apart)."""
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[
            {"timestamp": BASE_MS + (offset + i) * 1000, "message": message}
            for i, message in enumerate(messages)
        ],
    )


def run_logs(cloud: Cloud, run_id: str, query: str = "") -> dict[str, Any]:
    status, body = get(cloud, f"/runs/{run_id}/logs" + (f"?{query}" if query else ""))
    assert status == 200, body
    assert set(body) == {"run_id", "stage", "source", "events", "next_token"}
    for event in body["events"]:
        assert set(event) == {"timestamp", "message"} and ISO.fullmatch(event["timestamp"]), event
    return body


def messages(body: dict[str, Any]) -> list[str]:
    return [event["message"] for event in body["events"]]


def building(cloud: Cloud) -> tuple[str, str]:
    """A BUILDING run and the stream its build writes to (CodeBuild's: the build id after the colon)."""
    run_id = upload(cloud, "bundles/iris/v1.zip")
    build_id = cloud.run(run_id)["build_id"]
    return run_id, build_id.split(":", 1)[1]


def training(cloud: Cloud) -> tuple[str, str]:
    """A TRAINING run and its training job."""
    run_id, _stream = building(cloud)
    cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
    run = cloud.run(run_id)
    assert run["status"] == "TRAINING"
    return run_id, run["training_job_name"]


def test_a_building_run_shows_the_tail_of_its_build_stream(cloud: Cloud, logs: Any) -> None:
    # Given a build that wrote five lines to CodeBuild's stream
    run_id, stream = building(cloud)
    write(logs, "/aws/codebuild/sagedock-build", stream, [f"line {i}" for i in range(5)])

    # When the logs are asked for, at most three lines
    body = run_logs(cloud, run_id, "limit=3")

    # Then the build stage's source and its last three lines, oldest first, are returned
    assert body["run_id"] == run_id
    assert body["stage"] == "build"
    assert body["source"] == {"log_group": "/aws/codebuild/sagedock-build", "log_stream": stream}
    assert messages(body) == ["line 2", "line 3", "line 4"]
    second = datetime.fromtimestamp(BASE_MS / 1000 + 2, UTC)
    assert body["events"][0]["timestamp"] == second.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert body["next_token"]


def test_next_token_returns_only_newer_events(cloud: Cloud, logs: Any) -> None:
    run_id, stream = building(cloud)
    write(logs, "/aws/codebuild/sagedock-build", stream, ["a", "b"])
    first = run_logs(cloud, run_id)
    assert messages(first) == ["a", "b"]

    # Nothing new: no events, and a token to keep following with
    idle = run_logs(cloud, run_id, f"next_token={first['next_token']}")
    assert messages(idle) == []
    assert idle["next_token"]

    # Two more lines: exactly those
    write(logs, "/aws/codebuild/sagedock-build", stream, ["c", "d"], offset=2)
    after = run_logs(cloud, run_id, f"next_token={idle['next_token']}")
    assert messages(after) == ["c", "d"]
    assert messages(run_logs(cloud, run_id, f"next_token={after['next_token']}")) == []


def test_following_goes_on_reading_the_stage_of_the_token_after_the_run_moved_on(
    cloud: Cloud, logs: Any
) -> None:
    # Given a client following a building run's log
    run_id, stream = building(cloud)
    write(logs, "/aws/codebuild/sagedock-build", stream, ["building"])
    token = run_logs(cloud, run_id)["next_token"]

    # When the build's last lines arrive after the run moved on to training
    cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
    assert cloud.run(run_id)["status"] == "TRAINING"
    write(logs, "/aws/codebuild/sagedock-build", stream, ["pushed"], offset=1)

    # Then the token still reads the build's stream, and says so
    after = run_logs(cloud, run_id, f"next_token={token}")
    assert after["stage"] == "build"
    assert messages(after) == ["pushed"]
    # While without a token the run's current stage is shown
    assert run_logs(cloud, run_id)["stage"] == "train"


def test_a_build_that_has_not_logged_yet_is_empty(cloud: Cloud) -> None:
    run_id, stream = building(cloud)
    body = run_logs(cloud, run_id)
    assert body["stage"] == "build"
    assert body["source"] == {"log_group": "/aws/codebuild/sagedock-build", "log_stream": stream}
    assert body["events"] == []
    assert body["next_token"] is None


def test_a_training_run_reads_its_jobs_stream_by_prefix(cloud: Cloud, logs: Any) -> None:
    # Given the training job's stream (<job>/algo-1-<epoch>), and another job's whose name extends it
    run_id, job = training(cloud)
    group = "/aws/sagemaker/TrainingJobs"
    write(logs, group, f"{job}0/algo-1-1700000000", ["not ours"])
    write(logs, group, f"{job}/algo-1-1700000000", ["epoch 1", "epoch 2"])

    body = run_logs(cloud, run_id)

    assert body["stage"] == "train"
    assert body["source"] == {"log_group": group, "log_stream": f"{job}/algo-1-1700000000"}
    assert messages(body) == ["epoch 1", "epoch 2"]


def test_a_run_that_failed_in_training_shows_training_and_any_stage_on_request(
    cloud: Cloud, logs: Any
) -> None:
    run_id, job = training(cloud)
    write(logs, "/aws/sagemaker/TrainingJobs", f"{job}/algo-1-1", ["Traceback", "ValueError: no data"])
    build_stream = cloud.run(run_id)["build_id"].split(":", 1)[1]
    write(logs, "/aws/codebuild/sagedock-build", build_stream, ["built"])
    cloud.send(
        "training_state_changed",
        training_state(
            job, "Failed", failure_reason="AlgorithmError: no data", tags={"sagedock:run-id": run_id}
        ),
    )
    assert cloud.run(run_id)["status"] == "FAILED"

    # By default: the failed stage
    body = run_logs(cloud, run_id)
    assert body["stage"] == "train"
    assert messages(body) == ["Traceback", "ValueError: no data"]

    # On request: the build's
    build = run_logs(cloud, run_id, "stage=build")
    assert build["stage"] == "build"
    assert messages(build) == ["built"]


def test_a_deploying_run_reads_the_endpoints_latest_stream(cloud: Cloud, logs: Any) -> None:
    run_id, job = training(cloud)
    cloud.send("training_state_changed", training_state(job, "Completed", tags={"sagedock:run-id": run_id}))
    run = cloud.run(run_id)
    assert run["status"] == "DEPLOYING"
    group = f"/aws/sagemaker/Endpoints/{run['endpoint_name']}"
    write(logs, group, "AllTraffic/i-old", ["old instance"])
    write(logs, group, "AllTraffic/i-new", ["booting", "listening on 8080"], offset=10)

    body = run_logs(cloud, run_id)

    assert body["stage"] == "deploy"
    assert body["source"] == {"log_group": group, "log_stream": "AllTraffic/i-new"}
    assert messages(body) == ["booting", "listening on 8080"]


def test_a_stage_with_nothing_to_read_has_no_source(cloud: Cloud) -> None:
    # A bundle rejected in validation ran nothing that logs to a stream of its own
    rejected = upload(cloud, "bundles/iris/bad.zip", b"not a zip")
    body = run_logs(cloud, rejected)
    assert body == {"run_id": rejected, "stage": "validate", "source": None, "events": [], "next_token": None}

    # A building run has no training stream yet
    run_id, _stream = building(cloud)
    later = run_logs(cloud, run_id, "stage=deploy")
    assert later["source"] is None and later["events"] == [] and later["next_token"] is None


def test_a_failed_build_defaults_to_the_build_stage(cloud: Cloud, logs: Any) -> None:
    run_id, stream = building(cloud)
    write(logs, "/aws/codebuild/sagedock-build", stream, ["COMMAND_EXECUTION_ERROR"])
    build_id = cloud.run(run_id)["build_id"]
    cloud.send(
        "build_state_changed",
        build_state("sagedock-build", build_id, "FAILED", run_id=run_id, failed_phase=("BUILD", "error")),
    )
    assert cloud.run(run_id)["error"]["stage"] == "build"
    assert messages(run_logs(cloud, run_id)) == ["COMMAND_EXECUTION_ERROR"]


# --- errors -------------------------------------------------------------------------------------------


def test_unknown_run_is_a_404(cloud: Cloud) -> None:
    for run_id in ("iris-0123456789ab", "nope"):
        status, body = get(cloud, f"/runs/{run_id}/logs")
        assert status == 404 and body["code"] == "NotFound", body


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("stage=compile", "stage"),
        ("stage=BUILD", "stage"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("follow=1", "follow"),
        ("next_token=", "next_token"),
    ],
)
def test_bad_queries_are_400s_naming_the_field(cloud: Cloud, query: str, field: str) -> None:
    run_id = upload(cloud, "bundles/iris/v1.zip", make_bundle())
    status, body = get(cloud, f"/runs/{run_id}/logs?{query}")
    assert_bad_request(status, body, field)


def test_a_token_of_another_run_or_a_garbage_token_is_a_400(cloud: Cloud, logs: Any) -> None:
    run_id, stream = building(cloud)
    write(logs, "/aws/codebuild/sagedock-build", stream, ["a"])
    token = run_logs(cloud, run_id)["next_token"]
    other = upload(cloud, "bundles/iris/v2.zip")

    forged = base64.urlsafe_b64encode(b'{"t":"build","g":"a","s":"b","f":"c"}').decode()
    for bad in (token, "garbage", "e30", "eyJnIjoiYSIsInMiOiJiIiwiZiI6ImMifQ", forged):
        status, body = get(cloud, f"/runs/{other}/logs?next_token={bad}")
        assert_bad_request(status, body)
        assert body["code"] == "InvalidToken"
    # The token of the run's build stage is not one of its train stage
    status, body = get(cloud, f"/runs/{run_id}/logs?stage=train&next_token={token}")
    assert_bad_request(status, body)
