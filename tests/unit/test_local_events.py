"""The events the local cloud emits have AWS's shapes: the envelope, and details the app's models accept."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from chalicelib.domain.event_models import (
    BuildStateChange,
    EndpointStateChange,
    ImageAction,
    ObjectCreated,
    TrainingJobStateChange,
)
from sagedock import eventshapes as events

ENVELOPE_KEYS = ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
STARTED = datetime(2025, 3, 4, 16, 12, 29, tzinfo=UTC)


def _assert_envelope(event: dict[str, object], source: str, detail_type: str) -> None:
    assert list(event) == ENVELOPE_KEYS
    assert event["version"] == "0"
    assert re.fullmatch(r"[0-9a-f-]{36}", str(event["id"]))
    assert event["source"] == source
    assert event["detail-type"] == detail_type
    assert event["account"] == "123456789012"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(event["time"]))


def test_object_created_has_the_s3_detail_and_parses() -> None:
    event = events.s3_object_created(
        bucket="src",
        key="bundles/demo/a.zip",
        size=5,
        etag='"abc"',
        version_id="v1",
        sequencer="0055AED6DCD90281E5",
        request_id="C3D13FE58DE4C810",
    )
    _assert_envelope(event, "aws.s3", "Object Created")
    assert event["resources"] == ["arn:aws:s3:::src"]
    detail = event["detail"]
    assert detail["version"] == "0"
    assert detail["object"] == {
        "key": "bundles/demo/a.zip",
        "size": 5,
        "etag": "abc",
        "version-id": "v1",
        "sequencer": "0055AED6DCD90281E5",
    }
    assert {"request-id", "requester", "source-ip-address"} <= set(detail)
    assert detail["reason"] == "PutObject"
    parsed = ObjectCreated.model_validate(detail)
    assert parsed.object.version_id == "v1"


def test_an_unversioned_object_has_no_version_id() -> None:
    event = events.s3_object_created(
        bucket="b", key="k", size=1, etag="e", version_id="null", sequencer="1", request_id="r"
    )
    assert "version-id" not in event["detail"]["object"]


def _build_event(status: str, failing: str | None = None) -> dict[str, object]:
    phases = [events.codebuild_phase("SUBMITTED", "SUCCEEDED", STARTED, STARTED)]
    if failing:
        phases.append(
            events.codebuild_phase(failing, "FAILED", STARTED, STARTED, ["COMMAND_EXECUTION_ERROR: boom"])
        )
    phases.append(events.codebuild_phase("COMPLETED", None, STARTED))
    return events.codebuild_build_state_change(
        project="p",
        build_arn="arn:aws:codebuild:us-east-1:123456789012:build/p:1234",
        status=status,
        current_phase="COMPLETED",
        phases=phases,
        environment_variables=[{"name": "RUN_ID", "type": "PLAINTEXT", "value": "demo-0123456789ab"}],
        exported_variables=[{"name": "IMAGE_DIGEST", "value": "sha256:" + "a" * 64}],
        source={"location": "src/bundles/demo/a.zip", "type": "S3"},
        started=STARTED,
        log_group="/aws/codebuild/p",
        log_stream="1234",
    )


def test_a_build_state_change_carries_variables_phases_and_the_build_arn() -> None:
    event = _build_event("SUCCEEDED")
    _assert_envelope(event, "aws.codebuild", "CodeBuild Build State Change")
    detail = BuildStateChange.model_validate(event["detail"])
    assert detail.build_id.startswith("arn:aws:codebuild:")
    assert event["resources"] == [detail.build_id]
    assert detail.environment_value("RUN_ID") == "demo-0123456789ab"
    assert detail.exported("IMAGE_DIGEST") == "sha256:" + "a" * 64
    assert event["detail"]["additional-information"]["build-start-time"] == "Mar 4, 2025 4:12:29 PM"


def test_a_failed_build_names_its_failing_phase() -> None:
    detail = BuildStateChange.model_validate(_build_event("FAILED", failing="BUILD")["detail"])
    assert detail.failure() == ("BUILD", "COMMAND_EXECUTION_ERROR: boom")


def test_an_image_push_has_the_ecr_detail() -> None:
    event = events.ecr_image_action(repository="sagedock/demo", digest="sha256:" + "b" * 64, tag="demo-1")
    _assert_envelope(event, "aws.ecr", "ECR Image Action")
    assert event["resources"] == []
    parsed = ImageAction.model_validate(event["detail"])
    assert (parsed.action_type, parsed.result, parsed.image_tag) == ("PUSH", "SUCCESS", "demo-1")


def test_a_training_event_mirrors_describe_with_millis_and_tag_map() -> None:
    description = {
        "TrainingJobName": "demo-1-t1",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/demo-1-t1",
        "TrainingJobStatus": "Failed",
        "SecondaryStatus": "Failed",
        "FailureReason": "AlgorithmError: no data",
        "CreationTime": STARTED,
        "Tags": [{"Key": "sagedock:run-id", "Value": "demo-1"}],
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }
    event = events.training_job_state_change(description)
    _assert_envelope(event, "aws.sagemaker", "SageMaker Training Job State Change")
    assert event["detail"]["CreationTime"] == int(STARTED.timestamp() * 1000)
    assert "ResponseMetadata" not in event["detail"]
    parsed = TrainingJobStateChange.model_validate(event["detail"])
    assert parsed.tags == {"sagedock:run-id": "demo-1"}
    assert parsed.failure_reason == "AlgorithmError: no data"


def test_an_endpoint_event_says_the_status_in_upper_snake_without_the_reason() -> None:
    description = {
        "EndpointName": "iris",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/iris",
        "EndpointConfigName": "demo-1",
        "EndpointStatus": "InService",
        "FailureReason": "kept for DescribeEndpoint",
    }
    event = events.endpoint_state_change(description)
    _assert_envelope(event, "aws.sagemaker", "SageMaker Endpoint State Change")
    assert event["detail"]["EndpointStatus"] == "IN_SERVICE"
    assert "FailureReason" not in event["detail"]
    assert EndpointStateChange.model_validate(event["detail"]).status == "InService"
    assert events.endpoint_status_for_event("UpdateRollbackFailed") == "UPDATE_ROLLBACK_FAILED"
