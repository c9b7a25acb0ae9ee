"""Serve-only bundles in the domain: the manifest's keys and refusals, the run's transitions and retries."""

from __future__ import annotations

import pytest

from chalicelib.domain import specs
from chalicelib.domain import statemachine as sm
from chalicelib.domain.errors import ManifestInvalid
from chalicelib.domain.manifest import parse_manifest
from chalicelib.domain.models import ImageRef, Run, RunError, SourceRef, Stage, Status
from chalicelib.settings import Settings

RUN_ID = "iris-0123456789ab"
REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagedock/iris"
DIGEST = "sha256:" + "ab" * 32
MODEL = "s3://sagedock-data/iris/model/model.tar.gz"
T0, T1, T2, T3 = (f"2026-11-21T12:00:0{i}.000Z" for i in range(4))
SERVE_ONLY = f'[train]\nenabled = false\n[deploy]\nmodel_data = "{MODEL}"\n'


def problems(text: str) -> str:
    with pytest.raises(ManifestInvalid) as raised:
        parse_manifest(text, project="iris")
    return raised.value.message


# --- the manifest -----------------------------------------------------------------------------------------
def test_training_is_on_and_there_is_no_model_data_by_default() -> None:
    manifest = parse_manifest(None, project="iris")
    assert manifest.train.enabled is True and manifest.deploy.model_data is None
    assert manifest.serve_only is False


def test_a_serve_only_manifest_keeps_its_model_data() -> None:
    manifest = parse_manifest(SERVE_ONLY, project="iris")
    assert manifest.serve_only is True and manifest.deploy.model_data == MODEL


def test_training_off_ignores_the_training_settings() -> None:
    text = '[train]\nenabled = false\ninstance_count = 3\n[train.channels]\ntrain = "nowhere/"\n'
    manifest = parse_manifest(text, project="iris")
    assert manifest.serve_only and manifest.deploy.model_data is None


@pytest.mark.parametrize(
    "uri",
    [
        "https://example.com/model.tar.gz",
        "s3://sagedock-data/",
        "s3://sagedock-data/iris/model.zip",
        "s3://Bad_Bucket/model.tar.gz",
        "s3://sagedock-data/" + "m" * 1020 + ".tar.gz",
        "iris/model.tar.gz",
    ],
)
def test_model_data_must_be_a_tar_gz_in_s3(uri: str) -> None:
    message = problems(f'[train]\nenabled = false\n[deploy]\nmodel_data = "{uri}"\n')
    assert "deploy.model_data:" in message and "s3://<bucket>/<key>.tar.gz" in message


def test_training_and_deploy_both_off_is_refused() -> None:
    message = problems("[train]\nenabled = false\n[deploy]\nenabled = false\n")
    assert "train.enabled" in message and "nothing to do" in message


def test_model_data_with_training_on_is_refused() -> None:
    message = problems(f'[deploy]\nmodel_data = "{MODEL}"\n')
    assert "deploy.model_data" in message and "enabled = false under [train]" in message


# --- the run ----------------------------------------------------------------------------------------------
def building(manifest_text: str = SERVE_ONLY) -> Run:
    run = sm.new_run(
        Run(
            run_id=RUN_ID,
            project="iris",
            status=Status.RECEIVED,
            source=SourceRef(bucket="sagedock-source", key="bundles/iris/v1.zip", version_id="v1"),
            created_at=T0,
            updated_at=T0,
            manifest=parse_manifest(manifest_text, project="iris"),
        )
    )
    return sm.start_build(run, image=ImageRef(repository=REPO, tag=RUN_ID), now=T1)


def serving(run: Run) -> Run:
    return sm.start_serving(
        run,
        digest=DIGEST,
        uri=f"{REPO}@{DIGEST}",
        model_artifact=specs.model_data(run),
        model_name=RUN_ID,
        endpoint_config_name=RUN_ID,
        endpoint_name="iris",
        now=T2,
    )


def test_start_serving_goes_from_building_to_deploying_with_train_skipped() -> None:
    run = serving(building())
    assert run.status == Status.DEPLOYING
    assert [(s.stage, s.status, s.started_at, s.ended_at) for s in run.stages] == [
        (Stage.VALIDATE, "SUCCEEDED", T0, T1),
        (Stage.BUILD, "SUCCEEDED", T1, T2),
        (Stage.TRAIN, "SKIPPED", T2, T2),
        (Stage.DEPLOY, "IN_PROGRESS", T2, None),
    ]
    assert run.image is not None and run.image.uri == f"{REPO}@{DIGEST}" and run.image.tag == RUN_ID
    assert run.model_artifact == MODEL and run.training_job_name is None
    assert run.endpoint_config_name == RUN_ID and run.model_name == RUN_ID


def test_start_serving_is_refused_once_the_run_moved_on() -> None:
    from chalicelib.domain.errors import StaleEvent

    with pytest.raises(StaleEvent):
        serving(serving(building()))


def test_a_failed_serve_only_deploy_is_retried_at_deploy_even_without_a_model() -> None:
    run = sm.fail(
        serving(building("[train]\nenabled = false\n")), stage=Stage.DEPLOY, code="X", message="x", now=T3
    )
    assert run.model_artifact is None
    assert sm.retry_stage(run) == Stage.DEPLOY


def test_a_trained_run_without_its_artifact_still_retries_from_training() -> None:
    run = building("").model_copy(
        update={"status": Status.FAILED, "error": RunError(stage=Stage.DEPLOY, code="X", message="x")}
    )
    run = run.model_copy(update={"image": ImageRef(repository=REPO, tag=RUN_ID, digest=DIGEST, uri="u")})
    assert sm.retry_stage(run) == Stage.TRAIN


def test_a_serve_only_deploy_without_its_image_retries_from_the_build() -> None:
    run = building().model_copy(
        update={"status": Status.FAILED, "error": RunError(stage=Stage.DEPLOY, code="X", message="x")}
    )
    assert sm.retry_stage(run) == Stage.BUILD


# --- the model request ------------------------------------------------------------------------------------
SETTINGS = Settings.model_validate(
    {
        "SAGEDOCK_SOURCE_BUCKET": "sagedock-source",
        "SAGEDOCK_DATA_BUCKET": "sagedock-data",
        "SAGEDOCK_ARTIFACT_BUCKET": "sagedock-artifacts",
        "SAGEDOCK_RUNS_TABLE": "runs",
        "SAGEDOCK_IDEMPOTENCY_TABLE": "idem",
        "SAGEDOCK_CODEBUILD_PROJECT": "build",
        "SAGEDOCK_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/sm",
    }
)


@pytest.mark.parametrize(("text", "data_url"), [(SERVE_ONLY, MODEL), ("[train]\nenabled = false\n", None)])
def test_create_model_carries_the_model_data_or_none_and_botocore_accepts_it(
    text: str, data_url: str | None
) -> None:
    from botocore.session import get_session
    from botocore.validate import validate_parameters

    run = serving(building(text))
    request = specs.model_request(run, SETTINGS, model_name=RUN_ID, model_artifact=run.model_artifact)
    assert request["PrimaryContainer"].get("ModelDataUrl") == data_url
    assert ("ModelDataUrl" in request["PrimaryContainer"]) == (data_url is not None)
    shape = get_session().get_service_model("sagemaker").operation_model("CreateModel").input_shape
    validate_parameters(request, shape)
