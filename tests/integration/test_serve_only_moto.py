"""Serve-only bundles (`[train] enabled = false`) through the real app and moto: build -> deploy, no training.

The image's push (or the build's end, or with the scan gate its scan) starts the deploy directly; replayed
and out-of-order deliveries make one model, one endpoint config and one endpoint per run.
"""

from __future__ import annotations

from typing import Any

import pytest
from moto_cloud import Cloud, make_bundle
from test_pipeline import DIGEST, _moto_sagemaker, received
from test_scan_sweeper import EcrScan, HandClock, sweep

from chalicelib import services as services_module
from chalicelib.services import Services
from sagedock.eventshapes import build_state, ecr_image_action, ecr_image_scan, endpoint_state

MODEL_KEY = "iris/model/model.tar.gz"

SERVE_ONLY = b"""
[train]
enabled = false

[deploy]
model_data = "s3://sagedock-data/iris/model/model.tar.gz"
"""

BAKED_IN = b"""
[train]
enabled = false
"""


def uploaded_model(cloud: Cloud, key: str = MODEL_KEY) -> str:
    """A model.tar.gz in the data bucket, as a user uploads one trained elsewhere."""
    bucket = cloud.settings["SAGEDOCK_DATA_BUCKET"]
    cloud.s3.put_object(Bucket=bucket, Key=key, Body=b"\x1f\x8b not really a tar, SageMaker reads it")
    return f"s3://{bucket}/{key}"


def serve_only_run(cloud: Cloud, manifest: bytes = SERVE_ONLY) -> str:
    outcome = received(cloud, body=make_bundle({"sagedock.toml": manifest}))
    assert outcome["action"] == "build started", outcome
    return str(outcome["run_id"])


def pushed(run_id: str) -> dict[str, Any]:
    return ecr_image_action("sagedock/iris", DIGEST, run_id)


def succeeded_build(cloud: Cloud, run_id: str) -> dict[str, Any]:
    build_id = cloud.run(run_id)["build_id"]
    return build_state(
        "sagedock-build", build_id, "SUCCEEDED", run_id=run_id, exported={"IMAGE_DIGEST": DIGEST}
    )


class TestServeOnly:
    def test_the_push_deploys_the_image_with_the_uploaded_model_and_training_is_skipped(
        self, cloud: Cloud
    ) -> None:
        # Given a serve-only bundle whose model.tar.gz is in the data bucket, validated and building
        model = uploaded_model(cloud)
        run_id = serve_only_run(cloud)

        # When its image is pushed
        outcome = cloud.send("image_pushed", pushed(run_id))

        # Then the build had been told not to smoke-test `train` (a serve-only image does not train)
        (build,) = cloud.codebuild.named("start_build")
        env = {v["name"]: v["value"] for v in build["environmentVariablesOverride"]}
        assert env["SMOKE_TEST"] == "off"
        # And no training job: the model (the image by digest, the archive) and the endpoint are made
        assert outcome["action"] == "deploy started, training skipped", outcome
        assert cloud.sagemaker.named("create_training_job") == []
        (model_request,) = cloud.sagemaker.named("create_model")
        run = cloud.run(run_id)
        assert model_request["PrimaryContainer"] == {"Image": run["image"]["uri"], "ModelDataUrl": model}
        assert run["image"]["uri"].endswith(f"/sagedock/iris@{DIGEST}")
        assert [c["EndpointName"] for c in cloud.sagemaker.named("create_endpoint")] == ["iris"]
        # And the run is DEPLOYING, its train stage SKIPPED, with no training job and the archive as model
        assert run["status"] == "DEPLOYING"
        assert [(s["stage"], s["status"]) for s in run["stages"]] == [
            ("validate", "SUCCEEDED"),
            ("build", "SUCCEEDED"),
            ("train", "SKIPPED"),
            ("deploy", "IN_PROGRESS"),
        ]
        assert run["stages"][2]["detail"] == "train.enabled = false"
        assert run["training_job_name"] is None and run["model_artifact"] == model
        assert run["manifest"]["train"]["enabled"] is False

        # When the endpoint is in service
        cloud.send(
            "endpoint_state_changed", endpoint_state("iris", run["endpoint_config_name"], "IN_SERVICE")
        )

        # Then the run SUCCEEDED
        done = cloud.run(run_id)
        assert done["status"] == "SUCCEEDED" and done["error"] is None
        assert [s["stage"] for s in done["stages"]] == ["validate", "build", "train", "deploy"]

    def test_a_model_baked_into_the_image_makes_a_model_without_model_data(self, cloud: Cloud) -> None:
        run_id = serve_only_run(cloud, BAKED_IN)
        cloud.send("image_pushed", pushed(run_id))
        (model_request,) = cloud.sagemaker.named("create_model")
        assert "ModelDataUrl" not in model_request["PrimaryContainer"]
        run = cloud.run(run_id)
        assert run["status"] == "DEPLOYING" and run["model_artifact"] is None
        assert _moto_sagemaker().endpoints["iris"].endpoint_config_name == run["endpoint_config_name"]

    def test_replayed_and_out_of_order_image_events_deploy_once(self, cloud: Cloud) -> None:
        # Given a serve-only run building
        uploaded_model(cloud)
        run_id = serve_only_run(cloud)

        # When the build's SUCCEEDED event comes before ECR's push, then the push twice, then the build again
        first = cloud.send("build_state_changed", succeeded_build(cloud, run_id))
        later = [
            cloud.send("image_pushed", pushed(run_id)),
            cloud.send("image_pushed", pushed(run_id)),
            cloud.send("build_state_changed", succeeded_build(cloud, run_id)),
        ]

        # Then the first deployed, the others changed nothing: one model, config and endpoint
        assert first["action"] == "deploy started, training skipped", first
        assert [(o["action"], o["endpoint_action"]) for o in later] == [("deploying", "created")] * 3, later
        assert len(cloud.sagemaker.named("create_endpoint")) == 1
        assert len({c["ModelName"] for c in cloud.sagemaker.named("create_model")}) == 1
        assert len({c["EndpointConfigName"] for c in cloud.sagemaker.named("create_endpoint_config")}) == 1
        assert cloud.sagemaker.named("create_training_job") == []
        run = cloud.run(run_id)
        assert run["status"] == "DEPLOYING"
        assert [s["stage"] for s in run["stages"]].count("train") == 1
        # And once the run is done, a late push is ignored
        cloud.send(
            "endpoint_state_changed", endpoint_state("iris", run["endpoint_config_name"], "IN_SERVICE")
        )
        assert cloud.send("image_pushed", pushed(run_id))["action"] == "ignored"
        assert len(cloud.sagemaker.named("create_endpoint")) == 1

    def test_a_push_of_another_digest_while_deploying_is_ignored(self, cloud: Cloud) -> None:
        run_id = serve_only_run(cloud, BAKED_IN)
        cloud.send("image_pushed", pushed(run_id))
        other = ecr_image_action("sagedock/iris", "sha256:" + "cd" * 32, run_id)
        assert cloud.send("image_pushed", other)["action"] == "ignored"
        assert len(cloud.sagemaker.named("create_model")) == 1

    def test_with_the_scan_gate_the_clean_scan_deploys(self, cloud: Cloud) -> None:
        run_id = serve_only_run(cloud, BAKED_IN + b"\n[build]\nscan = true\n")
        waiting = cloud.send("image_pushed", pushed(run_id))
        assert waiting["reason"] == "waiting for the image scan"
        assert cloud.sagemaker.named("create_model") == []
        scan = ecr_image_scan("sagedock/iris", DIGEST, [run_id], {"LOW": 1})
        outcomes = [cloud.send("image_scanned", scan) for _ in range(2)]
        assert outcomes[0]["action"] == "deploy started, training skipped", outcomes
        assert len(cloud.sagemaker.named("create_endpoint")) == 1
        run = cloud.run(run_id)
        assert run["status"] == "DEPLOYING" and run["scan"]["counts"] == {"LOW": 1}

    def test_a_failed_endpoint_is_retried_at_deploy_on_the_same_image(self, cloud: Cloud) -> None:
        # Given a serve-only run FAILED at deploy because its endpoint failed
        run_id = serve_only_run(cloud, BAKED_IN)
        cloud.send("image_pushed", pushed(run_id))
        run = cloud.run(run_id)
        endpoint = _moto_sagemaker().endpoints["iris"]
        endpoint.endpoint_status = "Failed"
        endpoint.failure_reason = "The primary container for production variant AllTraffic did not pass ping"
        cloud.send("endpoint_state_changed", endpoint_state("iris", run["endpoint_config_name"], "FAILED"))
        assert cloud.run(run_id)["error"]["code"] == "EndpointFailed"

        # When it is retried
        response = cloud.client.http.post(f"/runs/{run_id}/retry")

        # Then it deploys again (no build, no training) on a config of the new attempt, and can succeed
        assert response.status_code == 200, response.body
        retried = cloud.run(run_id)
        assert retried["status"] == "DEPLOYING" and retried["attempt"] == 2
        assert retried["endpoint_config_name"] == f"{run_id}-d2"
        assert len(cloud.codebuild.named("start_build")) == 1
        assert cloud.sagemaker.named("create_training_job") == []
        _moto_sagemaker().endpoints["iris"].endpoint_status = "InService"
        cloud.send("endpoint_state_changed", endpoint_state("iris", f"{run_id}-d2", "IN_SERVICE"))
        assert cloud.run(run_id)["status"] == "SUCCEEDED"

    def test_a_retrain_of_a_serve_only_project_is_refused(self, cloud: Cloud) -> None:
        run_id = serve_only_run(cloud, BAKED_IN)
        cloud.send("image_pushed", pushed(run_id))
        config = cloud.run(run_id)["endpoint_config_name"]
        cloud.send("endpoint_state_changed", endpoint_state("iris", config, "IN_SERVICE"))
        assert cloud.run(run_id)["status"] == "SUCCEEDED"
        response = cloud.client.http.post("/projects/iris/retrain", body=b"{}", headers=JSON)
        assert response.status_code == 409, response.body
        assert b"NothingToTrain" in response.body and b"nothing to retrain" in response.body
        assert cloud.sagemaker.named("create_training_job") == []


JSON = {"Content-Type": "application/json"}


class TestValidate:
    def test_model_data_that_does_not_exist_fails_validate_naming_the_uri(self, cloud: Cloud) -> None:
        outcome = received(cloud, body=make_bundle({"sagedock.toml": SERVE_ONLY}))
        run = cloud.run(outcome["run_id"])
        assert run["status"] == "FAILED" and run["error"]["stage"] == "validate"
        assert run["error"]["code"] == "ModelDataMissing"
        assert "s3://sagedock-data/iris/model/model.tar.gz" in run["error"]["message"]
        assert cloud.codebuild.named("start_build") == []

    def test_model_data_in_the_artifact_bucket_is_checked_there(self, cloud: Cloud) -> None:
        bucket = cloud.settings["SAGEDOCK_ARTIFACT_BUCKET"]
        cloud.s3.put_object(Bucket=bucket, Key="elsewhere/model.tar.gz", Body=b"model")
        manifest = (
            f'[train]\nenabled = false\n[deploy]\nmodel_data = "s3://{bucket}/elsewhere/model.tar.gz"\n'
        )
        outcome = received(cloud, body=make_bundle({"sagedock.toml": manifest.encode()}))
        assert outcome["action"] == "build started", outcome

    def test_model_data_in_another_bucket_is_refused(self, cloud: Cloud) -> None:
        cloud.s3.put_object(Bucket="elsewhere", Key="model.tar.gz", Body=b"model")
        manifest = b'[train]\nenabled = false\n[deploy]\nmodel_data = "s3://elsewhere/model.tar.gz"\n'
        run = cloud.run(received(cloud, body=make_bundle({"sagedock.toml": manifest}))["run_id"])
        assert run["error"]["code"] == "ModelDataOutsideBuckets"
        assert "s3://elsewhere/model.tar.gz" in run["error"]["message"]
        assert "s3://sagedock-data/" in run["error"]["message"]

    def test_training_channels_are_not_looked_for(self, cloud: Cloud) -> None:
        # Given a serve-only bundle naming a channel with no data (training would refuse it)
        manifest = BAKED_IN + b'[train.channels]\ntrain = "nowhere/"\n'
        outcome = received(cloud, body=make_bundle({"sagedock.toml": manifest}))
        assert outcome["action"] == "build started", outcome

    @pytest.mark.parametrize(
        ("manifest", "expected"),
        [
            (b"[train]\nenabled = false\n[deploy]\nenabled = false\n", "nothing to do"),
            (b'[deploy]\nmodel_data = "s3://sagedock-data/m.tar.gz"\n', "deploy.model_data"),
        ],
    )
    def test_combinations_that_make_no_sense_fail_validate(
        self, cloud: Cloud, manifest: bytes, expected: str
    ) -> None:
        run = cloud.run(received(cloud, body=make_bundle({"sagedock.toml": manifest}))["run_id"])
        assert run["error"]["code"] == "InvalidManifest" and expected in run["error"]["message"]


def test_the_cli_check_of_a_serve_only_bundle_looks_for_its_model_not_for_channels(
    cloud: Cloud, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from sagedock.cli import main

    # Given a serve-only folder whose model archive was not uploaded (and no channel data anywhere)
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (tmp_path / "sagedock.toml").write_text(SERVE_ONLY.decode() + '[train.channels]\ntrain = "none/"\n')
    args = ["check", str(tmp_path), "--project", "iris", "--data-bucket", "sagedock-data"]

    # When checked against the data bucket, then the missing archive is the one problem
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "ModelDataMissing deploy.model_data: " in out and MODEL_KEY in out
    assert "EmptyChannel" not in out

    # And once it is uploaded the bundle is clean
    uploaded_model(cloud)
    assert main(args) == 0, capsys.readouterr().out


@pytest.fixture
def svc() -> Services:
    return services_module.get_services()


@pytest.fixture
def clock(svc: Services, monkeypatch: pytest.MonkeyPatch) -> HandClock:
    hand = HandClock()
    monkeypatch.setattr(svc, "clock", hand)
    return hand


@pytest.fixture
def ecr(svc: Services, monkeypatch: pytest.MonkeyPatch) -> EcrScan:
    scan = EcrScan()
    monkeypatch.setattr(svc.ecr._client, "describe_image_scan_findings", scan)
    return scan


def test_a_serve_only_run_whose_scan_event_is_lost_is_deployed_by_the_sweeper(
    cloud: Cloud, svc: Services, clock: HandClock, ecr: EcrScan
) -> None:
    # Given a gated serve-only run whose push came while ECR was still scanning
    run_id = serve_only_run(cloud, BAKED_IN + b"\n[build]\nscan = true\n")
    ecr.status = "IN_PROGRESS"
    assert cloud.send("image_pushed", pushed(run_id))["reason"] == "waiting for the image scan"
    assert svc.runs.waiting_for_scan() == (run_id,)

    # When the scan completes, its event is lost, and the sweeper runs
    ecr.status, ecr.counts = "COMPLETE", {"LOW": 1}
    clock.advance(minutes=5)
    assert sweep(cloud) == {"runs": 1, "deploy started, training skipped": 1}

    # Then the run deploys once, and the sweeper stops looking at it
    assert len(cloud.sagemaker.named("create_endpoint")) == 1
    assert cloud.run(run_id)["status"] == "DEPLOYING"
    assert svc.runs.waiting_for_scan() == ()
    assert sweep(cloud) == {"runs": 0}
    assert cloud.sagemaker.named("create_training_job") == []
