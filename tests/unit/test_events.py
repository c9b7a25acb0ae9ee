"""Event models: AWS-shaped details parse into typed models; a malformed detail names what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain.errors import BadRequest
from chalicelib.domain.event_models import (
    BuildStateChange,
    EndpointStateChange,
    ImageAction,
    ObjectCreated,
    TrainingJobStateChange,
    normalise_endpoint_status,
    parse_detail,
)
from sagedock.eventshapes import (
    build_state,
    ecr_image_action,
    endpoint_state,
    s3_object_created,
    training_state,
)

RUN_ID = "iris-0123456789ab"
BUILD_ID = "sagedock-build:7d2c9a0e-1111-2222-3333-444455556666"
DIGEST = "sha256:" + "ab" * 32


def detail(event: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = event["detail"]
    return value


# --- S3 Object Created --------------------------------------------------------------------------------


def test_object_created() -> None:
    event = s3_object_created(
        "sagedock-source", "bundles/iris/v1.zip", size=1234, etag="abc", version_id="v1"
    )

    parsed = parse_detail(ObjectCreated, detail(event))

    assert parsed.bucket.name == "sagedock-source"
    assert parsed.object.key == "bundles/iris/v1.zip"
    assert parsed.object.size == 1234
    assert parsed.object.etag == "abc"
    assert parsed.object.version_id == "v1"
    assert parsed.reason == "PutObject"


def test_object_created_in_an_unversioned_bucket_has_no_version() -> None:
    event = s3_object_created("sagedock-source", "bundles/iris/v1.zip", size=1, etag="abc", version_id=None)
    assert parse_detail(ObjectCreated, detail(event)).object.version_id is None


# --- CodeBuild Build State Change ---------------------------------------------------------------------


def test_build_succeeded_with_exported_digest() -> None:
    event = build_state(
        "sagedock-build",
        BUILD_ID,
        "SUCCEEDED",
        run_id=RUN_ID,
        exported={"IMAGE_DIGEST": DIGEST, "IMAGE_URI": "repo@" + DIGEST},
    )

    parsed = parse_detail(BuildStateChange, detail(event))

    assert parsed.build_status == "SUCCEEDED"
    assert parsed.project_name == "sagedock-build"
    assert parsed.build_id.endswith(f":build/{BUILD_ID}")
    assert parsed.exported("IMAGE_DIGEST") == DIGEST
    assert parsed.exported("IMAGE_URI") == "repo@" + DIGEST
    assert parsed.exported("MISSING") is None
    assert parsed.environment_value("RUN_ID") == RUN_ID
    assert parsed.environment_value("IMAGE_TAG") == RUN_ID
    assert parsed.environment_value("MISSING") is None
    logs = parsed.additional_information.logs
    assert (
        logs is not None and logs.deep_link and logs.deep_link.startswith("https://console.aws.amazon.com/")
    )


def test_an_empty_exported_variable_counts_as_not_exported() -> None:
    # A variable listed under exported-variables but never set arrives with an empty value
    event = build_state("sagedock-build", BUILD_ID, "SUCCEEDED", run_id=RUN_ID, exported={"IMAGE_DIGEST": ""})
    assert parse_detail(BuildStateChange, detail(event)).exported("IMAGE_DIGEST") is None


def test_build_failure_names_the_failing_phase_and_its_context() -> None:
    context = "COMMAND_EXECUTION_ERROR: Error while executing command: docker build. Reason: exit status 1"
    event = build_state("sagedock-build", BUILD_ID, "FAILED", run_id=RUN_ID, failed_phase=("BUILD", context))

    parsed = parse_detail(BuildStateChange, detail(event))

    assert parsed.failure() == ("BUILD", context)


def test_build_failure_skips_empty_phase_contexts() -> None:
    raw = detail(build_state("sagedock-build", BUILD_ID, "FAILED", run_id=RUN_ID))
    raw["additional-information"]["phases"].append(
        {"phase-type": "POST_BUILD", "phase-status": "FAILED", "phase-context": [": ", "", "push denied"]}
    )
    assert parse_detail(BuildStateChange, raw).failure() == ("POST_BUILD", "push denied")


def test_build_failure_falls_back_on_the_current_phase() -> None:
    # Given a failure event whose phases list shows no failed phase (e.g. a stopped build)
    raw = {
        "build-status": "STOPPED",
        "project-name": "sagedock-build",
        "build-id": BUILD_ID,
        "current-phase": "PROVISIONING",
        "current-phase-context": "[stopped by user]",
    }
    parsed = parse_detail(BuildStateChange, raw)

    assert parsed.failure() == ("PROVISIONING", "[stopped by user]")
    assert parsed.exported("IMAGE_DIGEST") is None
    assert parsed.environment_value("RUN_ID") is None


def test_build_failure_without_any_phase_information() -> None:
    parsed = parse_detail(
        BuildStateChange, {"build-status": "FAILED", "project-name": "p", "build-id": BUILD_ID}
    )
    assert parsed.failure() == ("UNKNOWN", "")


# --- ECR Image Action ---------------------------------------------------------------------------------


def test_image_pushed() -> None:
    parsed = parse_detail(ImageAction, detail(ecr_image_action("sagedock/iris", DIGEST, RUN_ID)))

    assert (parsed.result, parsed.action_type) == ("SUCCESS", "PUSH")
    assert parsed.repository_name == "sagedock/iris"
    assert parsed.image_digest == DIGEST
    assert parsed.image_tag == RUN_ID


@pytest.mark.parametrize("tag", ["", None])
def test_image_action_without_a_tag(tag: str | None) -> None:
    # Attestations and indexes come with an empty tag, or none at all
    raw = detail(ecr_image_action("sagedock/iris", DIGEST, ""))
    if tag is None:
        del raw["image-tag"]
    assert not parse_detail(ImageAction, raw).image_tag


# --- SageMaker ----------------------------------------------------------------------------------------


def test_training_job_failed() -> None:
    reason = "AlgorithmError: column 'species' not found\nTraceback (most recent call last): ..."
    event = training_state(f"{RUN_ID}-t1", "Failed", failure_reason=reason, tags={"sagedock:run-id": RUN_ID})

    parsed = parse_detail(TrainingJobStateChange, detail(event))

    assert parsed.training_job_name == f"{RUN_ID}-t1"
    assert parsed.training_job_status == "Failed"
    assert parsed.secondary_status == "Failed"
    assert parsed.failure_reason == reason
    assert parsed.tags == {"sagedock:run-id": RUN_ID}


def test_training_job_completed_has_no_failure_reason() -> None:
    parsed = parse_detail(TrainingJobStateChange, detail(training_state(f"{RUN_ID}-t1", "Completed")))
    assert parsed.failure_reason is None
    assert parsed.tags == {}


def test_endpoint_in_service() -> None:
    parsed = parse_detail(EndpointStateChange, detail(endpoint_state("iris", RUN_ID, "IN_SERVICE")))

    assert parsed.endpoint_name == "iris"
    assert parsed.endpoint_config_name == RUN_ID
    assert parsed.endpoint_status == "IN_SERVICE"
    assert parsed.status == "InService"


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        ("IN_SERVICE", "InService"),
        ("FAILED", "Failed"),
        ("UPDATING", "Updating"),
        ("CREATING", "Creating"),
        ("SYSTEM_UPDATING", "SystemUpdating"),
        ("ROLLING_BACK", "RollingBack"),
        ("OUT_OF_SERVICE", "OutOfService"),
        ("UPDATE_ROLLBACK_FAILED", "UpdateRollbackFailed"),
        ("InService", "InService"),
        ("Failed", "Failed"),
        ("SystemUpdating", "SystemUpdating"),
    ],
)
def test_normalise_endpoint_status(value: str, normal: str) -> None:
    assert normalise_endpoint_status(value) == normal


# --- malformed details --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "make", "missing"),
    [
        (ObjectCreated, lambda: s3_object_created("b", "k", size=1, etag="e", version_id=None), "bucket"),
        (BuildStateChange, lambda: build_state("p", BUILD_ID, "FAILED", run_id=RUN_ID), "build-status"),
        (BuildStateChange, lambda: build_state("p", BUILD_ID, "FAILED", run_id=RUN_ID), "build-id"),
        (ImageAction, lambda: ecr_image_action("sagedock/iris", DIGEST, RUN_ID), "image-digest"),
        (TrainingJobStateChange, lambda: training_state("j", "Completed"), "TrainingJobName"),
        (EndpointStateChange, lambda: endpoint_state("iris", RUN_ID, "FAILED"), "EndpointStatus"),
    ],
)
def test_a_missing_field_is_named(model: Any, make: Any, missing: str) -> None:
    raw = detail(make())
    del raw[missing]

    with pytest.raises(BadRequest) as caught:
        parse_detail(model, raw)

    assert caught.value.code == "MalformedEvent"
    assert missing in caught.value.message
    assert model.__name__ in caught.value.message


def test_a_missing_nested_field_is_named_by_its_path() -> None:
    raw = detail(s3_object_created("b", "k", size=1, etag="e", version_id=None))
    del raw["object"]["key"]

    with pytest.raises(BadRequest) as caught:
        parse_detail(ObjectCreated, raw)

    assert "object.key" in caught.value.message


@pytest.mark.parametrize("raw", [None, "text", [], 42])
def test_a_detail_that_is_not_an_object_is_rejected(raw: Any) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_detail(TrainingJobStateChange, raw)
    assert caught.value.code == "MalformedEvent"
    assert "detail" in caught.value.message


def test_a_wrongly_typed_field_is_named() -> None:
    raw = detail(s3_object_created("b", "k", size=1, etag="e", version_id=None))
    raw["object"]["size"] = "large"

    with pytest.raises(BadRequest) as caught:
        parse_detail(ObjectCreated, raw)

    assert "object.size" in caught.value.message
