"""The whole pipeline on the local cloud, driven only through its public faces: S3, the HTTP API and the CLI.

All bundles are submitted up front so the slow scenarios (a serve that never becomes healthy waits out its
60 s health timeout) overlap; each test then checks one scenario's outcome.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from localcloud import BUNDLES, ROOT, LocalCloudProcess, zip_bytes

from sagedock.commands.submit import zip_directory

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 240.0
# Validate reads the zip's directory and lists one channel: it ends within seconds, not minutes.
VALIDATE_TIMEOUT = 30.0
EMPTY_CHANNEL = {
    "Dockerfile": "FROM python:3.11-slim\n",
    "sagedock.toml": '[train.channels]\ntrain = "nobody-uploaded/train/"\n',
}


@pytest.fixture(scope="module")
def scenarios(local_cloud: LocalCloudProcess) -> dict[str, Any]:
    """Upload every bundle, then submit the sample with the CLI and follow it; scenario -> what it started."""
    keys = {
        "never-healthy": local_cloud.upload("never-healthy", zip_directory(BUNDLES / "never-healthy"), "v1"),
        "failing-train": local_cloud.upload("failing-train", zip_directory(BUNDLES / "failing-train"), "v1"),
        "no-dockerfile": local_cloud.upload(
            "no-dockerfile", zip_bytes({"train.py": "print('no Dockerfile next to me')\n"}), "v1"
        ),
        "empty-channel": local_cloud.upload("empty-channel", zip_bytes(EMPTY_CHANNEL), "v1"),
    }
    submitted = local_cloud.cli(
        "submit", str(ROOT / "container"), "--project", "demo", "--follow", timeout=300
    )
    return {"keys": keys, "demo": submitted}


@pytest.fixture(scope="module")
def demo_run(local_cloud: LocalCloudProcess, scenarios: dict[str, Any]) -> dict[str, Any]:
    submitted = scenarios["demo"]
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    run_id = re.search(r"^run (\S+)$", submitted.stdout, re.M)
    assert run_id, submitted.stdout
    return local_cloud.api.get_run(run_id.group(1))


def test_the_sample_bundle_goes_from_upload_to_a_live_endpoint(
    local_cloud: LocalCloudProcess, scenarios: dict[str, Any], demo_run: dict[str, Any]
) -> None:
    # The CLI showed the run stage by stage
    out = scenarios["demo"].stdout
    for stage in ("validate", "build", "train", "deploy"):
        assert re.search(rf"\] {stage}\s+SUCCEEDED", out), out
    assert "run SUCCEEDED" in out
    # And the run carries its provenance, image by digest
    assert demo_run["status"] == "SUCCEEDED"
    image = demo_run["image"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image["digest"])
    assert image["uri"].endswith("/sagedock/demo@" + image["digest"])
    assert demo_run["model_artifact"].endswith(f"/{demo_run['training_job_name']}/output/model.tar.gz")
    assert demo_run["endpoint_name"] == "iris"
    # And the train stage kept the last secondary status the training job's events reported
    train = next(s for s in demo_run["stages"] if s["stage"] == "train")
    assert re.match(r"(Starting|Downloading|Training|Uploading): \S", train["progress"] or ""), train
    # And the emulator answers like AWS about what was made
    sagemaker = local_cloud.aws("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName="iris")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == demo_run["endpoint_config_name"]
    job = sagemaker.describe_training_job(TrainingJobName=demo_run["training_job_name"])
    assert job["TrainingJobStatus"] == "Completed"
    assert job["AlgorithmSpecification"]["TrainingImage"] == image["uri"]
    pushed = local_cloud.aws("ecr").describe_images(
        repositoryName="sagedock/demo", imageIds=[{"imageTag": demo_run["run_id"]}]
    )["imageDetails"]
    assert pushed[0]["imageDigest"] == image["digest"]


def test_the_endpoint_answers_predictions_through_the_api_and_the_cli(
    local_cloud: LocalCloudProcess, demo_run: dict[str, Any]
) -> None:
    _, answer = local_cloud.api.invoke("iris", b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n", content_type="text/csv")
    assert b"setosa" in answer and b"virginica" in answer, answer
    invoked = local_cloud.cli("invoke", "iris", "--data", "5.1,3.5,1.4,0.2")
    assert invoked.returncode == 0, invoked.stderr
    assert "setosa" in invoked.stdout


def test_runs_and_status_show_the_run(local_cloud: LocalCloudProcess, demo_run: dict[str, Any]) -> None:
    listed = local_cloud.cli("runs", "--project", "demo")
    assert listed.returncode == 0, listed.stderr
    assert demo_run["run_id"] in listed.stdout and "SUCCEEDED" in listed.stdout
    status = local_cloud.cli("status", demo_run["run_id"])
    assert status.returncode == 0, status.stderr
    assert "timeline:" in status.stdout and "deploy" in status.stdout
    as_json = json.loads(local_cloud.cli("status", demo_run["run_id"], "--json").stdout)
    assert as_json["run_id"] == demo_run["run_id"]


def test_a_bundle_without_a_dockerfile_fails_validation_before_any_build(
    local_cloud: LocalCloudProcess, scenarios: dict[str, Any]
) -> None:
    run = _failed_run(local_cloud, scenarios, "no-dockerfile", stage="validate")
    assert "Dockerfile" in run["error"]["message"]
    assert not run.get("build_id")
    assert _builds_of(local_cloud, scenarios["keys"]["no-dockerfile"]) == []


def test_an_empty_channel_fails_at_validate_within_seconds_and_nothing_is_built(
    local_cloud: LocalCloudProcess, scenarios: dict[str, Any]
) -> None:
    key = scenarios["keys"]["empty-channel"]
    run = local_cloud.wait_run(local_cloud.run_for_key("empty-channel", key), VALIDATE_TIMEOUT)
    assert (run["status"], run["error"]["stage"], run["error"]["code"]) == (
        "FAILED",
        "validate",
        "EmptyChannel",
    )
    data_bucket = local_cloud.contract["SAGEDOCK_DATA_BUCKET"]
    assert f"s3://{data_bucket}/nobody-uploaded/train/" in run["error"]["message"]
    assert not run.get("build_id")
    assert _builds_of(local_cloud, key) == []


def test_sagedock_check_finds_the_empty_channel_in_the_running_local_cloud(
    local_cloud: LocalCloudProcess, tmp_path: Any
) -> None:
    for name, text in EMPTY_CHANNEL.items():
        (tmp_path / name).write_text(text)
    checked = local_cloud.cli("check", str(tmp_path), "--project", "checked")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "EmptyChannel train.channels.train:" in checked.stdout
    (tmp_path / "sagedock.toml").unlink()  # no channels named: the SDK's convention, as at validate
    conventional = local_cloud.cli("check", str(tmp_path), "--project", "nodata")
    assert conventional.returncode == 1, conventional.stdout + conventional.stderr
    assert "EmptyChannel train.channels: no channel named" in conventional.stdout
    assert f"s3://{local_cloud.contract['SAGEDOCK_DATA_BUCKET']}/nodata/training/" in conventional.stdout
    clean = local_cloud.cli("check", str(ROOT / "container"), "--project", "demo")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "not checked" not in clean.stderr


def test_the_cli_refuses_a_directory_without_a_dockerfile_before_uploading(
    local_cloud: LocalCloudProcess, tmp_path: Any
) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    refused = local_cloud.cli("submit", str(tmp_path), "--project", "refused")
    assert refused.returncode == 2
    assert "Dockerfile" in refused.stderr
    listed = local_cloud.aws("s3").list_objects_v2(
        Bucket=local_cloud.contract["SAGEDOCK_SOURCE_BUCKET"], Prefix="bundles/refused/"
    )
    assert listed.get("KeyCount", 0) == 0


def test_a_failing_train_fails_the_run_with_the_trains_own_message(
    local_cloud: LocalCloudProcess, scenarios: dict[str, Any]
) -> None:
    run = _failed_run(local_cloud, scenarios, "failing-train", stage="train")
    assert "the label column is missing from train/iris.csv" in run["error"]["message"]
    assert "Traceback" not in run["error"]["message"]
    job = local_cloud.aws("sagemaker").describe_training_job(TrainingJobName=run["training_job_name"])
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(("the label column", "AlgorithmError: the label column"))


def test_a_serve_that_never_answers_ping_fails_the_deploy(
    local_cloud: LocalCloudProcess, scenarios: dict[str, Any]
) -> None:
    run = _failed_run(local_cloud, scenarios, "never-healthy", stage="deploy")
    endpoint = local_cloud.aws("sagemaker").describe_endpoint(EndpointName="never-healthy")
    assert endpoint["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check" in endpoint["FailureReason"]
    assert "ping health check" in run["error"]["message"]


def test_a_retry_of_the_failed_deploy_deploys_again_and_ends(
    local_cloud: LocalCloudProcess, scenarios: dict[str, Any]
) -> None:
    # Given the run whose endpoint failed its ping health check
    run = _failed_run(local_cloud, scenarios, "never-healthy", stage="deploy")
    # When it is retried, the Failed endpoint is deleted and created again on the new attempt's config
    retried = local_cloud.api.retry_run(run["run_id"])
    assert (retried["status"], retried["attempt"]) == ("DEPLOYING", run["attempt"] + 1), retried
    # Then the attempt ends (the same serve fails its ping again), never left DEPLOYING
    ended = local_cloud.wait_run(run["run_id"], RUN_TIMEOUT)
    assert (ended["status"], ended["attempt"]) == ("FAILED", run["attempt"] + 1), ended
    assert (ended["error"]["stage"], ended["error"]["code"]) == ("deploy", "EndpointFailed")
    endpoint = local_cloud.aws("sagemaker").describe_endpoint(EndpointName="never-healthy")
    assert endpoint["EndpointConfigName"] == ended["endpoint_config_name"] != run["endpoint_config_name"]


def test_the_same_s3_event_delivered_twice_makes_one_run_and_one_build(
    local_cloud: LocalCloudProcess,
) -> None:
    # Given a bundle uploaded once (its build fails fast: the Dockerfile copies a missing file)
    key = local_cloud.upload("twice", zip_directory(BUNDLES / "broken-build"), "v1")
    run_id = local_cloud.run_for_key("twice", key)
    first = local_cloud.wait_run(run_id, RUN_TIMEOUT)
    assert first["error"]["stage"] == "build"
    assert "missing.py" in first["error"]["message"]
    # When EventBridge delivers its Object Created event again, twice
    head = local_cloud.aws("s3").head_object(Bucket=local_cloud.contract["SAGEDOCK_SOURCE_BUCKET"], Key=key)
    detail = {
        "version": "0",
        "bucket": {"name": local_cloud.contract["SAGEDOCK_SOURCE_BUCKET"]},
        "object": {
            "key": key,
            "size": head["ContentLength"],
            "etag": head["ETag"].strip('"'),
            "version-id": head["VersionId"],
            "sequencer": "0062E99A88DC407460",
        },
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "123456789012",
        "source-ip-address": "127.0.0.1",
        "reason": "PutObject",
    }
    ids = _put_events(local_cloud, "aws.s3", "Object Created", detail, copies=2)
    for event_id in ids:
        local_cloud.wait_handled(event_id)
    # Then there is still one run and one build, and the run is unchanged
    runs = [r for r in local_cloud.api.iter_runs(project="twice") if r["source"]["key"] == key]
    assert [r["run_id"] for r in runs] == [run_id]
    assert len(_builds_of(local_cloud, key)) == 1
    assert local_cloud.api.get_run(run_id) == first


def test_a_replayed_ecr_push_starts_no_second_training_job(
    local_cloud: LocalCloudProcess, demo_run: dict[str, Any]
) -> None:
    # Given the sample's run SUCCEEDED with one training job
    jobs_before = _training_jobs(local_cloud, demo_run["run_id"])
    assert jobs_before == [demo_run["training_job_name"]]
    # When the ECR push event of its image is put on the bus again
    detail = {
        "result": "SUCCESS",
        "repository-name": "sagedock/demo",
        "image-digest": demo_run["image"]["digest"],
        "action-type": "PUSH",
        "image-tag": demo_run["run_id"],
    }
    (event_id,) = _put_events(local_cloud, "aws.ecr", "ECR Image Action", detail)
    handled = local_cloud.wait_handled(event_id)
    # Then it reached the app and changed nothing
    assert handled
    assert _training_jobs(local_cloud, demo_run["run_id"]) == jobs_before
    assert local_cloud.api.get_run(demo_run["run_id"])["status"] == "SUCCEEDED"


def _api_get(cloud: LocalCloudProcess, path: str) -> dict[str, Any]:
    """GET a path of the local cloud's HTTP API, as any HTTP client would; the JSON body of its 200."""
    with urllib.request.urlopen(cloud.contract["SAGEDOCK_API_URL"] + path, timeout=30) as answer:
        assert answer.status == 200
        body: dict[str, Any] = json.loads(answer.read())
        return body


def test_the_runs_logs_are_the_executors_output_under_the_aws_stream_names(
    local_cloud: LocalCloudProcess, demo_run: dict[str, Any]
) -> None:
    run_id = demo_run["run_id"]
    build = _api_get(local_cloud, f"/runs/{run_id}/logs?stage=build&limit=1000")
    assert build["source"] == {
        "log_group": "/aws/codebuild/" + demo_run["build_id"].split(":", 1)[0],
        "log_stream": demo_run["build_id"].split(":", 1)[1],
    }
    assert any("Entering phase BUILD" in e["message"] for e in build["events"]), build["events"]
    train = _api_get(local_cloud, f"/runs/{run_id}/logs?stage=train")
    assert train["source"]["log_group"] == "/aws/sagemaker/TrainingJobs"
    assert train["source"]["log_stream"].startswith(demo_run["training_job_name"] + "/algo-1-")
    assert train["events"], train
    # A SUCCEEDED run's default stage is its endpoint's
    deploy = _api_get(local_cloud, f"/runs/{run_id}/logs")
    assert deploy["stage"] == "deploy"
    assert deploy["source"]["log_group"] == "/aws/sagemaker/Endpoints/iris"
    assert deploy["source"]["log_stream"].startswith("AllTraffic/i-")
    assert deploy["events"] and deploy["next_token"]


def test_a_failed_runs_logs_show_the_failing_stage(
    local_cloud: LocalCloudProcess, scenarios: dict[str, Any]
) -> None:
    run = _failed_run(local_cloud, scenarios, "failing-train", stage="train")
    logs = _api_get(local_cloud, f"/runs/{run['run_id']}/logs")
    assert logs["stage"] == "train"
    assert logs["source"]["log_stream"].startswith(run["training_job_name"] + "/algo-1-")
    assert "reading train/iris.csv" in [e["message"] for e in logs["events"]], logs["events"]


def test_the_project_view_shows_the_image_and_the_live_endpoint(
    local_cloud: LocalCloudProcess, demo_run: dict[str, Any]
) -> None:
    project = _api_get(local_cloud, "/projects/demo")
    assert project["latest_successful_image"]["digest"] == demo_run["image"]["digest"]
    assert project["endpoint"]["name"] == "iris"
    assert project["endpoint"]["status"] == "InService"
    listed = _api_get(local_cloud, "/projects?limit=100")["projects"]
    assert "demo" in [p["project"] for p in listed]


def _failed_run(
    cloud: LocalCloudProcess, scenarios: dict[str, Any], project: str, *, stage: str
) -> dict[str, Any]:
    """The run of a scenario's upload, once ended: FAILED at `stage`."""
    run = cloud.wait_run(cloud.run_for_key(project, scenarios["keys"][project]), RUN_TIMEOUT)
    assert (run["status"], run["error"]["stage"]) == ("FAILED", stage), run
    return run


def _put_events(
    cloud: LocalCloudProcess, source: str, detail_type: str, detail: dict[str, Any], copies: int = 1
) -> list[str]:
    entry = {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail)}
    answer = cloud.aws("events").put_events(Entries=[entry] * copies)
    assert answer["FailedEntryCount"] == 0
    return [e["EventId"] for e in answer["Entries"]]


def _builds_of(cloud: LocalCloudProcess, key: str) -> list[str]:
    codebuild = cloud.aws("codebuild")
    project = codebuild.list_projects()["projects"][0]
    ids = codebuild.list_builds_for_project(projectName=project)["ids"]
    builds = codebuild.batch_get_builds(ids=ids)["builds"] if ids else []
    return [b["id"] for b in builds if b["source"]["location"].endswith("/" + key)]


def _training_jobs(cloud: LocalCloudProcess, run_id: str) -> list[str]:
    found = cloud.aws("sagemaker").list_training_jobs(NameContains=run_id, MaxResults=100)
    return [j["TrainingJobName"] for j in found["TrainingJobSummaries"]]


def test_a_new_bundle_of_the_project_updates_the_live_endpoint(
    local_cloud: LocalCloudProcess, demo_run: dict[str, Any]
) -> None:
    # Given the sample's endpoint in service, When a new version of the bundle is uploaded
    key = local_cloud.upload("demo", zip_directory(ROOT / "container"), "second")
    run = local_cloud.wait_run(local_cloud.run_for_key("demo", key), RUN_TIMEOUT)
    # Then the run deploys by updating the same endpoint to its own config, which serves predictions
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert run["endpoint_name"] == "iris"
    assert run["endpoint_config_name"] != demo_run["endpoint_config_name"]
    endpoint = local_cloud.aws("sagemaker").describe_endpoint(EndpointName="iris")
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == (
        "InService",
        run["endpoint_config_name"],
    )
    _, answer = local_cloud.api.invoke("iris", b"6.7,3.0,5.2,2.3\n", content_type="text/csv")
    assert b"virginica" in answer


def test_without_a_bucket_the_cli_uploads_through_the_api_and_reports_the_failure(
    local_cloud: LocalCloudProcess,
) -> None:
    # Given a user with the API but no bucket (no S3 rights of their own)
    env_without_bucket = {k: v for k, v in local_cloud.env.items() if k != "SAGEDOCK_SOURCE_BUCKET"}
    # When they submit a bundle whose build fails, following it
    submitted = local_cloud.cli(
        "submit", str(BUNDLES / "broken-build"), "--project", "viaapi", "--follow", env=env_without_bucket
    )
    # Then the upload went through POST /uploads, and the CLI exits 1 with the run's error
    assert submitted.returncode == 1, submitted.stdout + submitted.stderr
    assert "uploaded s3://sagedock-local-source/bundles/viaapi/" in submitted.stdout
    assert "] build     FAILED" in submitted.stdout
    assert "FAILED: build/" in submitted.stderr and "missing.py" in submitted.stderr


def test_a_second_local_cloud_on_the_same_state_refuses_to_start(local_cloud: LocalCloudProcess) -> None:
    second = local_cloud.cli("local", "up", "--state-dir", str(local_cloud.state_dir), timeout=60)
    assert second.returncode == 1
    assert "already running" in second.stderr
    assert local_cloud.api.health() == {"status": "ok"}


def test_the_cli_finds_the_running_local_cloud_by_its_state_directory(local_cloud: LocalCloudProcess) -> None:
    # Given a shell with none of the contract's variables but the state directory
    bare = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEDOCK_"))}
    bare["SAGEDOCK_LOCAL_STATE"] = str(local_cloud.state_dir)

    # When a bundle is submitted and the runs are listed, Then both reach the running local cloud
    submitted = local_cloud.cli("submit", str(BUNDLES / "broken-build"), "--project", "found", env=bare)
    assert submitted.returncode == 0, submitted.stderr
    assert "uploaded s3://sagedock-local-source/bundles/found/" in submitted.stdout
    run_id = submitted.stdout.split("run ", 1)[1].split()[0]
    listed = local_cloud.cli("runs", "--project", "found", env=bare)
    assert listed.returncode == 0, listed.stderr
    assert run_id in listed.stdout


EXITING_SERVE = {
    "Dockerfile": "FROM python:3.11-slim-bookworm\nCOPY train serve /opt/program/\n"
    "ENV PATH=/opt/program:$PATH\n",
    "train": "#!/bin/sh\necho trained > /opt/ml/model/model.txt\n",
    "serve": "#!/bin/sh\necho 'serve: no loader for model.txt'\nexit 5\n",
    "sagedock.toml": '[train.channels]\ntrain = "exiting/train/"\n[deploy]\ninstance_type = "ml.t2.medium"\n',
}


def test_a_serve_that_exits_before_its_first_ping_fails_the_deploy_with_its_exit_and_last_lines(
    local_cloud: LocalCloudProcess, tmp_path: Path
) -> None:
    # Given a bundle whose serve prints why and exits 5 at once (its programs executable, as zipped by users)
    for name, text in EXITING_SERVE.items():
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755 if name in ("train", "serve") else 0o644)
    local_cloud.aws("s3").put_object(
        Bucket=local_cloud.contract["SAGEDOCK_DATA_BUCKET"], Key="exiting/train/sample.csv", Body=b"a,1\n"
    )
    key = local_cloud.upload("exiting", zip_directory(tmp_path), "v1")
    # When it is deployed, the run fails at deploy saying how serve ended and what it printed last
    run = local_cloud.wait_run(local_cloud.run_for_key("exiting", key), RUN_TIMEOUT)
    assert (run["status"], run["error"]["stage"]) == ("FAILED", "deploy"), run["error"]
    assert "exited with code 5" in run["error"]["message"], run["error"]
    assert "serve: no loader for model.txt" in run["error"]["message"], run["error"]
