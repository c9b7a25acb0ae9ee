"""Container mode end to end: `sagedock local up --engine <the engine here>` runs the project's buildspec
for real, pushes to the loopback registry, trains and serves in containers. The sample, the classic
SageMaker bundle (unchanged, channel `training`) through a canary update with both versions up, and RUN
steps that install with apt and pip. Skips, saying why, where no container engine answers."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engines import DURATIONS
from localcloud import (
    BUNDLES,
    ROOT,
    LocalCloudProcess,
    classic_bundle,
    start_local_cloud,
    stop_local_cloud,
    wait_until,
    zip_bytes,
)

from sagedock.commands.submit import zip_directory
from sagedock.local.containerbuild import owner_of
from sagedock.local.containers import LABEL
from sagedock.local.engine import Engine

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a first build on a clean machine

RUN_TIMEOUT = 900.0  # a first build on a clean machine installs scikit-learn and friends
ROW = b"5.1,3.5,1.4,0.2\n"
CANARY = """
[deploy]
instance_type = "ml.t2.medium"
initial_instance_count = 2
[deploy.update]
strategy = "canary"
canary_percent = 50
wait_interval_seconds = 5
"""


def _names(engine: Engine, *filters: str) -> list[str]:
    assert engine.command is not None
    argv = [engine.command, "ps", "--format", "{{.Names}}", *(f"--filter={f}" for f in filters)]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()


def _listening(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", "/ping")
        connection.getresponse().read()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def cloud(container_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloudProcess]:
    began = time.monotonic()
    running = start_local_cloud(tmp_path_factory.mktemp("container-cloud"), engine=container_engine.name)
    DURATIONS["local up"] = time.monotonic() - began
    try:
        yield running
    finally:
        stop_local_cloud(running)


def _submit(cloud: LocalCloudProcess, project: str, bundle: bytes, name: str) -> dict[str, Any]:
    began = time.monotonic()
    run = cloud.wait_run(cloud.run_for_key(project, cloud.upload(project, bundle, name)), RUN_TIMEOUT)
    DURATIONS[f"{project} {name}"] = time.monotonic() - began
    assert run["status"] == "SUCCEEDED", run.get("error")
    return run


def _registry_digest(cloud: LocalCloudProcess, repository: str, tag: str) -> str:
    host, _, port = cloud.contract["SAGEDOCK_LOCAL_REGISTRY"].partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    accept = (
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    )
    connection.request("HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": accept})
    reply = connection.getresponse()
    reply.read()
    assert reply.status == 200, reply.status
    return str(reply.getheader("Docker-Content-Digest"))


def test_the_engine_is_chosen_and_said(cloud: LocalCloudProcess, container_engine: Engine) -> None:
    assert cloud.contract["SAGEDOCK_ENGINE"] == container_engine.name
    stderr = (cloud.state_dir / "local-up.stderr").read_text()
    assert f"engine: {container_engine.name} (" in stderr


def test_the_sample_builds_for_real_and_its_registry_digest_trains_and_serves(
    cloud: LocalCloudProcess,
) -> None:
    run = _submit(cloud, "demo", zip_directory(ROOT / "container"), "v1")
    digest = run["image"]["digest"]
    # The digest is the registry's manifest digest, and ECR and the build's exports say the same
    assert _registry_digest(cloud, "sagedock/demo", run["run_id"]) == digest
    ecr = cloud.aws("ecr").describe_images(
        repositoryName="sagedock/demo", imageIds=[{"imageTag": run["run_id"]}]
    )
    assert ecr["imageDetails"][0]["imageDigest"] == digest
    build = cloud.aws("codebuild").batch_get_builds(ids=[run["build_id"]])["builds"][0]
    exported = {v["name"]: v["value"] for v in build["exportedEnvironmentVariables"]}
    assert exported["IMAGE_DIGEST"] == digest
    job = cloud.aws("sagemaker").describe_training_job(TrainingJobName=run["training_job_name"])
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("@" + digest)
    # Every RUN step ran and the buildspec's smoke test ran the image
    log = next((cloud.state_dir / "logs" / "builds" / "logs").glob("*.log")).read_text()
    assert "smoke test: passed" in log and "RUN steps" not in log
    _, answer = cloud.api.invoke("iris", ROW, content_type="text/csv")
    assert b"setosa" in answer


def test_the_classic_bundle_unchanged_survives_a_canary_update_and_leaves_the_host_alone(
    cloud: LocalCloudProcess, container_engine: Engine
) -> None:
    nginx_logs_before = Path("/var/log/nginx").exists()
    s3 = cloud.aws("s3")
    for path in sorted((ROOT / "container" / "data").glob("*.csv")):
        s3.upload_file(str(path), cloud.contract["SAGEDOCK_DATA_BUCKET"], f"classic/training/{path.name}")
    first = _submit(cloud, "classic", classic_bundle(), "v1")
    assert b"setosa" in cloud.api.invoke("classic", ROW, content_type="text/csv")[1]
    # A canary update: the new run's serve comes up next to the old one, each with its own
    # /tmp/gunicorn.sock and /var/log/nginx, and the endpoint answers throughout
    key = cloud.upload("classic", classic_bundle(CANARY), "v2")
    run_id = cloud.run_for_key("classic", key)
    serving = f"label={LABEL}={owner_of(cloud.state_dir)}"  # this local cloud's, not another run's
    wait_until(
        lambda: (
            len([n for n in _names(container_engine, serving) if n.startswith("sagedock-serve-classic")]) == 2
        ),
        timeout=RUN_TIMEOUT,
        what="the old and the new serve containers to run side by side",
    )
    answers = [cloud.api.invoke("classic", ROW, content_type="text/csv")[1] for _ in range(6)]
    second = cloud.wait_run(run_id, RUN_TIMEOUT)
    assert second["status"] == "SUCCEEDED", second.get("error")
    assert all(b"setosa" in answer for answer in answers), answers
    stderr = (cloud.state_dir / "local-up.stderr").read_text()
    assert f"endpoint classic: 50% of the traffic on {second['endpoint_config_name']}" in stderr
    assert first["endpoint_config_name"] != second["endpoint_config_name"]
    # The host kept nothing of the containers: no nginx logs, no gunicorn socket
    assert Path("/var/log/nginx").exists() == nginx_logs_before
    assert not Path("/tmp/gunicorn.sock").exists()


def test_run_steps_installing_with_apt_and_pip_make_the_packages_importable(cloud: LocalCloudProcess) -> None:
    cloud.aws("s3").put_object(
        Bucket=cloud.contract["SAGEDOCK_DATA_BUCKET"], Key="installs/train/sample.csv", Body=b"a,1\n"
    )
    _submit(cloud, "installs", zip_directory(BUNDLES / "run-installs"), "v1")
    answer = json.loads(cloud.api.invoke("installs", b"{}", content_type="application/json")[1])
    assert answer["jq"].startswith("jq-1.")
    assert answer["six_at_train"] == answer["six_at_serve"] == "1.17.0"


def test_stopping_the_local_cloud_removes_its_containers_and_frees_its_ports(
    container_engine: Engine, tmp_path: Path
) -> None:
    # A local cloud of its own (the module's keeps running): an endpoint up, then ^C
    running = start_local_cloud(tmp_path, engine=container_engine.name)
    try:
        running.aws("s3").put_object(
            Bucket=running.contract["SAGEDOCK_DATA_BUCKET"], Key="installs/train/sample.csv", Body=b"a,1\n"
        )
        _submit(running, "installs", zip_directory(BUNDLES / "run-installs"), "again")
        stderr = (tmp_path / "local-up.stderr").read_text()
        port = int(stderr.split("InService on ")[1].split("(http://127.0.0.1:")[1].split(")")[0])
        assert _listening(port)
        owned = _names(container_engine, f"label={LABEL}={owner_of(tmp_path)}")
        assert len(owned) == 1 and owned[0].startswith("sagedock-serve-installs-"), owned
    finally:
        stop_local_cloud(running)
    assert not set(owned) & set(_names(container_engine))
    assert not _listening(port)
    # The engine keeps no names of a registry that is gone
    assert container_engine.command is not None
    images = subprocess.run(
        [container_engine.command, "images", "--format", "{{.Repository}}"], capture_output=True, text=True
    ).stdout.split()
    assert not [name for name in images if name.startswith(running.contract["SAGEDOCK_LOCAL_REGISTRY"] + "/")]


EXITING_SERVE = {
    "Dockerfile": "FROM python:3.11-slim-bookworm\nCOPY train serve /usr/local/bin/\n"
    "RUN chmod 0755 /usr/local/bin/train /usr/local/bin/serve\n",
    "train": "#!/bin/sh\necho trained > /opt/ml/model/model.txt\n",
    "serve": "#!/bin/sh\necho 'serve: no loader for model.txt'\nexit 5\n",
    "sagedock.toml": '[train.channels]\ntrain = "exiting/train/"\n[deploy]\ninstance_type = "ml.t2.medium"\n',
}


def test_a_serve_container_that_exits_before_its_first_ping_fails_the_deploy_saying_why(
    cloud: LocalCloudProcess,
) -> None:
    cloud.aws("s3").put_object(
        Bucket=cloud.contract["SAGEDOCK_DATA_BUCKET"], Key="exiting/train/sample.csv", Body=b"a,1\n"
    )
    key = cloud.upload("exiting", zip_bytes(EXITING_SERVE), "v1")
    run = cloud.wait_run(cloud.run_for_key("exiting", key), RUN_TIMEOUT)
    assert run["status"] == "FAILED" and run["error"]["stage"] == "deploy", run
    assert "exited with code 5" in run["error"]["message"], run["error"]
    assert "serve: no loader for model.txt" in run["error"]["message"], run["error"]


def test_serve_only_bundles_serve_in_containers_from_uploaded_model_data_or_the_image(
    cloud: LocalCloudProcess,
) -> None:
    from test_local_serve_only_bundles import bundle, model_archive

    # Given a model.tar.gz uploaded to the data bucket, and two serve-only bundles: one naming it, one not
    data_bucket = cloud.contract["SAGEDOCK_DATA_BUCKET"]
    cloud.aws("s3").put_object(
        Bucket=data_bucket, Key="served/model/model.tar.gz", Body=model_archive({"source": "uploaded"})
    )
    uploaded = (
        '[train]\nenabled = false\n[deploy]\nendpoint_name = "served"\n'
        f'model_data = "s3://{data_bucket}/served/model/model.tar.gz"\n'
    )
    # When both are built and deployed: no training job, each serve in a container of its own
    served = _submit(cloud, "served", bundle(uploaded), "v1")
    baked = _submit(cloud, "baked", zip_directory(BUNDLES / "serve-only"), "v1")
    assert served["training_job_name"] is None and baked["training_job_name"] is None
    assert [s["status"] for s in served["stages"] if s["stage"] == "train"] == ["SKIPPED"]
    # Then the one serves the uploaded model at /opt/ml/model, the other its own on an empty /opt/ml/model
    answer = json.loads(cloud.api.invoke("served", ROW, content_type="text/csv")[1])
    assert answer == {"model": {"source": "uploaded"}, "model_files": ["model.json"]}
    answer = json.loads(cloud.api.invoke("serve-only", ROW, content_type="text/csv")[1])
    assert answer == {"model": {"source": "baked into the image", "label": "setosa"}, "model_files": []}
