"""Deterministic names: a bundle key maps to one project and one run id, and every derived name is one
that Docker, ECR and SageMaker accept (checked against the patterns in botocore's own service models)."""

from __future__ import annotations

import re
from functools import cache

import botocore.session
import pytest

from chalicelib.domain import names

BUCKET = "sagedock-source"
KEY = "bundles/iris/v1.zip"
VERSION = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
LONGEST_PROJECT = "a" + "b-c" * 13  # 40 characters, the most PROJECT_PATTERN allows
DOCKER_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@cache
def _shape_metadata(service: str, shape: str) -> dict[str, object]:
    model = botocore.session.get_session().get_service_model(service)
    return dict(model.shape_for(shape).metadata)


def assert_valid(service: str, shape: str, value: str) -> None:
    """`value` fits the length and pattern the service model declares for `shape`."""
    meta = _shape_metadata(service, shape)
    assert int(str(meta.get("min", 0))) <= len(value) <= int(str(meta["max"])), (shape, value)
    if "pattern" in meta:
        assert re.fullmatch(str(meta["pattern"]), value), (shape, value)


# --- project_from_key -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "project"),
    [
        ("bundles/iris/v1.zip", "iris"),
        ("bundles/iris/nested/dir/v1.zip", "iris"),
        ("bundles/my-model-2/bundle.zip", "my-model-2"),
        ("bundles/Not_Valid/v1.zip", "Not_Valid"),  # the shape is right; validation rejects it later
        ("bundles/iris/v1.tar.gz", "iris"),  # likewise: the .zip rule is the validator's
    ],
)
def test_project_is_the_segment_after_bundles(key: str, project: str) -> None:
    assert names.project_from_key(key) == project


@pytest.mark.parametrize(
    "key",
    [
        "iris/v1.zip",
        "other/iris/v1.zip",
        "bundles/v1.zip",  # no project segment
        "bundles/iris/",  # a "folder" object, no name
        "bundles//v1.zip",  # empty project
        "bundles/",
        "",
        "Bundles/iris/v1.zip",
        "/bundles/iris/v1.zip",
    ],
)
def test_keys_without_the_bundle_shape_have_no_project(key: str) -> None:
    assert names.project_from_key(key) is None


# --- run_id_for ---------------------------------------------------------------------------------------


def test_run_id_is_deterministic_for_one_bundle_object() -> None:
    # Given the same object described twice (a duplicate S3 event): then both map to the same run
    assert names.run_id_for("iris", BUCKET, KEY, VERSION) == names.run_id_for("iris", BUCKET, KEY, VERSION)


@pytest.mark.parametrize(
    ("bucket", "key", "version"),
    [
        (BUCKET, KEY, "another-version-id"),  # the same key uploaded again
        (BUCKET, "bundles/iris/v2.zip", VERSION),
        ("another-bucket", KEY, VERSION),
        (BUCKET, KEY, ""),
    ],
)
def test_any_other_object_gets_another_run_id(bucket: str, key: str, version: str) -> None:
    assert names.run_id_for("iris", bucket, key, version) != names.run_id_for("iris", BUCKET, KEY, VERSION)


def test_fields_cannot_collide_by_shifting_text_between_them() -> None:
    # Given two objects whose fields concatenate to the same text: then their runs differ
    first = names.run_id_for("iris", "bucket", "bundles/iris/ab.zip", "c")
    second = names.run_id_for("iris", "bucket", "bundles/iris/a", "b.zipc")
    assert first != second


@pytest.mark.parametrize("project", ["iris", "a", "0", "my-model-2", LONGEST_PROJECT])
def test_run_id_shape(project: str) -> None:
    run_id = names.run_id_for(project, BUCKET, KEY, VERSION)

    assert re.fullmatch(rf"{re.escape(project)}-[0-9a-f]{{12}}", run_id)
    assert names.is_run_id(run_id)
    assert len(run_id) <= 53
    assert DOCKER_TAG.fullmatch(run_id)  # it is the image tag
    for shape in ("TrainingJobName", "ModelName", "EndpointConfigName"):
        assert_valid("sagemaker", shape, run_id)


@pytest.mark.parametrize("project", ["Iris", "my_model", "-iris", "a" * 41, "", "iris.v2", "ïris"])
def test_invalid_project_is_mapped_to_a_safe_run_id(project: str) -> None:
    # Given a key whose project segment is not a valid project (the run is recorded, then rejected)
    run_id = names.run_id_for(project, BUCKET, KEY, VERSION)

    # Then the run id still has the run id shape, so it can be stored, listed and looked up
    assert run_id.startswith("invalid-")
    assert names.is_run_id(run_id)
    assert run_id != names.run_id_for(project, BUCKET, "bundles/x/other.zip", VERSION)


@pytest.mark.parametrize(
    "value",
    ["iris", "iris-0123456789a", "iris-0123456789abc", "iris-0123456789AB", "Iris-0123456789ab", ""],
)
def test_is_run_id_rejects_other_shapes(value: str) -> None:
    assert not names.is_run_id(value)


# --- training job names -----------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2, 10, 999])
def test_training_job_name_round_trips_to_its_run(attempt: int) -> None:
    run_id = names.run_id_for("iris", BUCKET, KEY, VERSION)

    job = names.training_job_name(run_id, attempt)

    assert names.run_id_from_training_job(job) == run_id


def test_each_attempt_gets_its_own_training_job_name() -> None:
    run_id = names.run_id_for("iris", BUCKET, KEY, VERSION)
    assert len({names.training_job_name(run_id, attempt) for attempt in range(1, 6)}) == 5


def test_project_names_that_look_like_attempt_suffixes_round_trip() -> None:
    # Given projects whose own names contain "-t<digits>"
    for project in ("t1", "a-t1", "model-t2-t3"):
        run_id = names.run_id_for(project, BUCKET, KEY, VERSION)
        # Then the run is still found from the job name
        assert names.run_id_from_training_job(names.training_job_name(run_id, 4)) == run_id


@pytest.mark.parametrize(
    "job",
    [
        "my-own-training-job",
        "iris-0123456789ab",  # a run id without an attempt suffix
        "iris-0123456789ab-t",
        "iris-0123456789ab-tx",
        "iris-0123456789ab-1",
        "iris-t1",
        "Iris-0123456789ab-t1",
        "iris-0123456789abc-t1",
        "",
    ],
)
def test_foreign_training_job_names_name_no_run(job: str) -> None:
    assert names.run_id_from_training_job(job) is None


def test_longest_project_yields_valid_sagemaker_names() -> None:
    # Given the longest project name allowed
    run_id = names.run_id_for(LONGEST_PROJECT, BUCKET, KEY, VERSION)

    # Then every name SageMaker gets is within its length and pattern, up to attempt 99999999
    assert_valid("sagemaker", "TrainingJobName", names.training_job_name(run_id, 1))
    assert_valid("sagemaker", "TrainingJobName", names.training_job_name(run_id, 99_999_999))
    assert_valid("sagemaker", "ModelName", names.model_name(run_id))
    assert_valid("sagemaker", "EndpointConfigName", names.endpoint_config_name(run_id))
    assert_valid("sagemaker", "EndpointName", LONGEST_PROJECT)  # the default endpoint name
    assert_valid("ecr", "RepositoryName", names.ecr_repository("sagedock", LONGEST_PROJECT))


def test_model_and_endpoint_config_are_named_after_the_run() -> None:
    # An endpoint event names its config: the config's name must lead back to the run
    run_id = names.run_id_for("iris", BUCKET, KEY, VERSION)
    assert names.model_name(run_id) == run_id
    assert names.endpoint_config_name(run_id) == run_id


def test_ecr_repository_is_prefix_slash_project() -> None:
    assert names.ecr_repository("sagedock", "iris") == "sagedock/iris"


VALID_PROJECTS = ["iris", "a", "0-9", "a--b", LONGEST_PROJECT]


@pytest.mark.parametrize("project", VALID_PROJECTS)
def test_valid_projects(project: str) -> None:
    assert names.is_valid_project(project)


@pytest.mark.parametrize("project", ["", "-a", "A", "a_b", "a.b", "a/b", "a" * 41, "iris\nx", "iris-", "a-"])
def test_invalid_projects(project: str) -> None:
    assert not names.is_valid_project(project)


def test_a_trailing_newline_is_not_a_valid_project_or_run_id() -> None:
    # Given an S3 key whose project segment ends with a newline (S3 keys may hold any UTF-8)
    project = names.project_from_key("bundles/iris\n/v1.zip")
    assert project == "iris\n"

    # Then it is not a valid project, it is mapped like any invalid one, and no near-run-id passes
    assert not names.is_valid_project(project)
    assert names.run_id_for(project, BUCKET, KEY, VERSION).startswith("invalid-")
    assert not names.is_run_id(names.run_id_for("iris", BUCKET, KEY, VERSION) + "\n")


@pytest.mark.parametrize("project", VALID_PROJECTS)
def test_every_valid_project_names_a_valid_repository_and_endpoint(project: str) -> None:
    # Given a project the pipeline accepts
    assert names.is_valid_project(project)
    # Then it names a valid ECR repository and a valid default endpoint (design.md: <project> names both)
    assert_valid("ecr", "RepositoryName", names.ecr_repository("sagedock", project))
    assert_valid("sagemaker", "EndpointName", project)
