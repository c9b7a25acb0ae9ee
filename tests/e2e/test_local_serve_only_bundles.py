"""Serve-only bundles on the local cloud (process mode): build -> deploy, from an uploaded model.tar.gz or
from a model baked into the image, driven only through S3 and the HTTP API."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest
from localcloud import BUNDLES, LocalCloudProcess

from sagedock.commands.submit import zip_directory

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 240.0
MODEL_KEY = "served/model/model.tar.gz"


def model_archive(model: dict[str, str]) -> bytes:
    """A model.tar.gz holding model.json, as a model trained elsewhere would come."""
    data = json.dumps(model).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def bundle(manifest: str) -> bytes:
    """tests/e2e/bundles/serve-only zipped, with `manifest` as its sagedock.toml."""
    import zipfile

    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(zip_directory(BUNDLES / "serve-only"))) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            if item.filename != "sagedock.toml":
                target.writestr(item, source.read(item))
        target.writestr("sagedock.toml", manifest)
    return out.getvalue()


@pytest.fixture(scope="module")
def runs(local_cloud: LocalCloudProcess) -> dict[str, dict[str, Any]]:
    """Both bundles uploaded up front (they deploy side by side), each followed to its end."""
    data_bucket = local_cloud.contract["SAGEDOCK_DATA_BUCKET"]
    local_cloud.aws("s3").put_object(
        Bucket=data_bucket, Key=MODEL_KEY, Body=model_archive({"source": "uploaded", "label": "virginica"})
    )
    uploaded = (
        '[train]\nenabled = false\n[deploy]\nendpoint_name = "served"\n'
        f'model_data = "s3://{data_bucket}/{MODEL_KEY}"\n'
    )
    keys = {
        "served": local_cloud.upload("served", bundle(uploaded), "v1"),
        "baked": local_cloud.upload("baked", zip_directory(BUNDLES / "serve-only"), "v1"),
    }
    return {
        project: local_cloud.wait_run(local_cloud.run_for_key(project, key), RUN_TIMEOUT)
        for project, key in keys.items()
    }


def invoke(local_cloud: LocalCloudProcess, endpoint: str) -> dict[str, Any]:
    _, body = local_cloud.api.invoke(endpoint, b"5.1,3.5,1.4,0.2")
    answer: dict[str, Any] = json.loads(body)
    return answer


def test_a_bundle_with_uploaded_model_data_serves_that_model_without_training(
    local_cloud: LocalCloudProcess, runs: dict[str, dict[str, Any]]
) -> None:
    run = runs["served"]
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert [(s["stage"], s["status"]) for s in run["stages"]] == [
        ("validate", "SUCCEEDED"),
        ("build", "SUCCEEDED"),
        ("train", "SKIPPED"),
        ("deploy", "SUCCEEDED"),
    ]
    assert run["training_job_name"] is None
    assert run["model_artifact"].endswith(f"/{MODEL_KEY}")
    sagemaker = local_cloud.aws("sagemaker")
    assert sagemaker.list_training_jobs()["TrainingJobSummaries"] == []
    model = sagemaker.describe_model(ModelName=run["model_name"])["PrimaryContainer"]
    assert model["ModelDataUrl"] == run["model_artifact"] and model["Image"] == run["image"]["uri"]
    # And the endpoint answers with the uploaded model, unpacked at /opt/ml/model
    answer = invoke(local_cloud, "served")
    assert answer == {"model": {"source": "uploaded", "label": "virginica"}, "model_files": ["model.json"]}


def test_a_bundle_with_its_model_baked_in_serves_with_an_empty_opt_ml_model(
    local_cloud: LocalCloudProcess, runs: dict[str, dict[str, Any]]
) -> None:
    run = runs["baked"]
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert run["model_artifact"] is None
    model = local_cloud.aws("sagemaker").describe_model(ModelName=run["model_name"])["PrimaryContainer"]
    assert "ModelDataUrl" not in model
    answer = invoke(local_cloud, "serve-only")
    assert answer == {"model": {"source": "baked into the image", "label": "setosa"}, "model_files": []}


def test_model_data_that_was_never_uploaded_fails_at_validate(local_cloud: LocalCloudProcess) -> None:
    data_bucket = local_cloud.contract["SAGEDOCK_DATA_BUCKET"]
    manifest = f'[train]\nenabled = false\n[deploy]\nmodel_data = "s3://{data_bucket}/nobody/model.tar.gz"\n'
    key = local_cloud.upload("missing-model", bundle(manifest), "v1")
    run = local_cloud.wait_run(local_cloud.run_for_key("missing-model", key), 60)
    assert run["status"] == "FAILED" and run["error"]["stage"] == "validate"
    assert run["error"]["code"] == "ModelDataMissing"
    assert f"s3://{data_bucket}/nobody/model.tar.gz" in run["error"]["message"]
