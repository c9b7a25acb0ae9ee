"""Pre-flight through the real app and moto: each refusal ends FAILED with no build and no training job."""

from __future__ import annotations

from typing import Any

import pytest
from moto_cloud import Cloud, make_bundle

from sagedock.eventshapes import ecr_image_action
from tests.settings_env import ROLE_ARN

DIGEST = "sha256:" + "cd" * 32
KEY = "bundles/iris/v1.zip"


def received(cloud: Cloud, manifest: bytes | None = None) -> dict[str, Any]:
    files = {"sagedock.toml": manifest} if manifest is not None else None
    return cloud.send("bundle_uploaded", cloud.upload(KEY, make_bundle(files)))  # type: ignore[arg-type]


def assert_refused_before_any_build(cloud: Cloud, outcome: dict[str, Any], code: str) -> dict[str, Any]:
    assert outcome["action"] == "failed", outcome
    run = cloud.run(outcome["run_id"])
    assert run["status"] == "FAILED"
    assert run["error"]["stage"] == "validate" and run["error"]["code"] == code, run["error"]
    assert not run.get("build_id")
    assert cloud.codebuild.named("start_build") == []
    assert cloud.sagemaker.named("create_training_job") == []
    return run


def existing_endpoint(cloud: Cloud, name: str, tags: list[dict[str, str]]) -> None:
    """An endpoint someone else made (model, config and endpoint, straight through moto)."""
    sm = cloud.sagemaker.inner
    sm.create_model(
        ModelName=f"{name}-model",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x@" + DIGEST},
        ExecutionRoleArn=ROLE_ARN,
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{name}-model",
                "InstanceType": "ml.t2.medium",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config", Tags=tags)


@pytest.mark.parametrize(
    ("manifest", "uri", "says"),
    [
        (
            b'[train.channels]\ntrain = "iris/nothing-here/"\n',
            "s3://sagedock-data/iris/nothing-here/",
            "aws s3 cp",
        ),
        (b"", "s3://sagedock-data/iris/training/", "train.channels: no channel named"),  # the convention
        (b'[train.channels]\ntrain = "s3://no-bucket-here/x/"\n', "s3://no-bucket-here/x/", "does not exist"),
    ],
)
def test_an_empty_channel_fails_validate_naming_its_uri(
    cloud: Cloud, manifest: bytes, uri: str, says: str
) -> None:
    cloud.s3.delete_object(Bucket="sagedock-data", Key="iris/train/iris.csv")
    outcome = received(cloud, manifest)
    run = assert_refused_before_any_build(cloud, outcome, "EmptyChannel")
    assert uri in run["error"]["message"] and says in run["error"]["message"]


def test_with_no_channels_named_each_project_prefix_holding_data_is_a_channel(cloud: Cloud) -> None:
    # Given data under iris/train/ (provisioned) and iris/training/ (the SageMaker SDK's default channel),
    # an empty "folder" and a prefix that is no channel name, and a bundle that names no channels
    for key in ("iris/training/part-0.csv", "iris/training/part-1.csv", "iris/not a channel/x.csv"):
        cloud.s3.put_object(Bucket="sagedock-data", Key=key, Body=b"5.1,3.5,1.4,0.2,setosa\n")
    cloud.s3.put_object(Bucket="sagedock-data", Key="iris/notes.txt", Body=b"beside the channels")
    outcome = received(cloud, b"[train]\ninstance_count = 1\n")
    assert outcome["action"] == "build started", outcome

    # Then the run records the two channels found, and its training job reads exactly those
    run = cloud.run(outcome["run_id"])
    assert run["manifest"]["train"]["channels"] == {"train": "iris/train/", "training": "iris/training/"}
    cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, outcome["run_id"]))
    (job,) = cloud.sagemaker.named("create_training_job")
    assert {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]} == {
        "train": "s3://sagedock-data/iris/train/",
        "training": "s3://sagedock-data/iris/training/",
    }


def test_with_no_channels_named_more_prefixes_than_sagemaker_takes_fail_validate(cloud: Cloud) -> None:
    for n in range(21):
        cloud.s3.put_object(Bucket="sagedock-data", Key=f"iris/c{n:02}/x.csv", Body=b"1\n")
    run = assert_refused_before_any_build(cloud, received(cloud, b""), "TooManyChannels")
    assert "[train.channels]" in run["error"]["message"]


def test_a_bundle_with_no_channels_needs_no_data(cloud: Cloud) -> None:
    cloud.s3.delete_object(Bucket="sagedock-data", Key="iris/train/iris.csv")
    outcome = received(cloud, b"[train]\nchannels = {}\n")
    assert outcome["action"] == "build started", outcome


def test_an_instance_type_sagemaker_does_not_offer_fails_validate(cloud: Cloud) -> None:
    outcome = received(cloud, b'[train]\ninstance_type = "ml.t2.medium"\n')
    run = assert_refused_before_any_build(cloud, outcome, "InvalidManifest")
    assert "not a SageMaker training instance type" in run["error"]["message"]


@pytest.mark.parametrize("tags", [[{"Key": "sagedock:project", "Value": "kiwi"}], []])
def test_an_endpoint_of_another_project_or_made_outside_sagedock_is_not_taken_over(
    cloud: Cloud, tags: list[dict[str, str]]
) -> None:
    existing_endpoint(cloud, "iris", tags)
    outcome = received(cloud, b"")
    run = assert_refused_before_any_build(cloud, outcome, "EndpointOwned")
    assert "claim_endpoint = true" in run["error"]["message"]


def test_an_endpoint_another_project_deployed_through_sagedock_is_refused(cloud: Cloud) -> None:
    # Given project kiwi's run deployed endpoint "shared" (the runs table records it; its tag says kiwi)
    existing_endpoint(cloud, "shared", [{"Key": "sagedock:project", "Value": "kiwi"}])
    from chalicelib.services import get_services

    get_services().runs.set_endpoint_owner("shared", "kiwi-0123456789ab")

    # When iris names it, it is refused; when iris claims it, its build starts
    outcome = received(cloud, b'[deploy]\nendpoint_name = "shared"\n')
    assert_refused_before_any_build(cloud, outcome, "EndpointOwned")
    claimed = cloud.send(
        "bundle_uploaded",
        cloud.upload(
            "bundles/iris/v2.zip",
            make_bundle({"sagedock.toml": b'[deploy]\nendpoint_name = "shared"\nclaim_endpoint = true\n'}),
        ),
    )
    assert claimed["action"] == "build started", claimed


def test_an_endpoint_of_this_project_is_redeployed(cloud: Cloud) -> None:
    existing_endpoint(cloud, "iris", [{"Key": "sagedock:project", "Value": "iris"}])
    assert received(cloud, b"")["action"] == "build started"


def test_every_problem_is_reported_at_once(cloud: Cloud) -> None:
    existing_endpoint(cloud, "iris", [{"Key": "sagedock:project", "Value": "kiwi"}])
    outcome = received(cloud, b'[train.channels]\na = "empty/a/"\nb = "empty/b/"\n')
    run = assert_refused_before_any_build(cloud, outcome, "PreflightFailed")
    message = run["error"]["message"]
    for part in ("train.channels.a:", "train.channels.b:", "deploy.endpoint_name:"):
        assert part in message


def test_data_deleted_while_building_fails_before_the_training_job_and_a_retry_trains(cloud: Cloud) -> None:
    # Given a run whose build started while its channel held data
    outcome = received(cloud)
    assert outcome["action"] == "build started", outcome
    run_id = outcome["run_id"]

    # When the data is deleted and the image is pushed
    cloud.s3.delete_object(Bucket="sagedock-data", Key="iris/train/iris.csv")
    cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))

    # Then the run failed at train before any training job was created
    run = cloud.run(run_id)
    assert run["status"] == "FAILED" and run["error"]["stage"] == "train"
    assert run["error"]["code"] == "EmptyChannel"
    assert cloud.sagemaker.named("create_training_job") == []

    # And once the data is back, a retry creates the job
    cloud.s3.put_object(Bucket="sagedock-data", Key="iris/train/iris.csv", Body=b"1,2,3,4,setosa\n")
    response = cloud.client.http.post(f"/runs/{run_id}/retry")
    assert response.status_code == 200, response.body
    assert cloud.run(run_id)["status"] == "TRAINING"
    assert len(cloud.sagemaker.named("create_training_job")) == 1


def test_the_cli_check_reports_channels_and_the_endpoint_owner_from_the_account(
    cloud: Cloud, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an endpoint of another project and a bundle whose channel is empty
    from sagedock.cli import main

    existing_endpoint(cloud, "iris", [{"Key": "sagedock:project", "Value": "kiwi"}])
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (tmp_path / "sagedock.toml").write_text('[train.channels]\ntrain = "iris/nothing-here/"\n')

    # When checked against the data bucket
    code = main(["check", str(tmp_path), "--project", "iris", "--data-bucket", "sagedock-data"])

    # Then both problems are printed, and nothing was uploaded or built
    out = capsys.readouterr().out
    assert code == 1
    assert "EmptyChannel train.channels.train: " in out and "s3://sagedock-data/iris/nothing-here/" in out
    assert "EndpointOwned deploy.endpoint_name: " in out
    assert cloud.codebuild.named("start_build") == []
    assert cloud.s3.list_objects_v2(Bucket="sagedock-source").get("KeyCount", 0) == 0


def test_a_data_bucket_sagedock_may_not_list_ends_the_run_with_that_reason(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployment whose functions may not list the data bucket (a policy was edited by hand)
    from botocore.exceptions import ClientError

    from chalicelib.services import get_services

    s3 = get_services().s3

    def denied(**kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "ListObjectsV2")

    monkeypatch.setattr(s3, "list_objects_v2", denied)

    # When a bundle arrives, Then its run ends FAILED at validate naming the refusal, not stuck RECEIVED
    run = assert_refused_before_any_build(cloud, received(cloud), "AccessDenied")
    assert "a pre-flight check could not run" in run["error"]["message"]
    assert "training channel train" in run["error"]["message"]


def test_a_retrain_onto_an_empty_channel_fails_before_its_training_job(cloud: Cloud) -> None:
    # Given a project whose run succeeded (one training job so far)
    from test_run_events import retrain_request, succeeded

    succeeded(cloud)

    # When a retrain points the train channel at a prefix with no data
    request = retrain_request({"project": "iris", "channels": {"train": "iris/not-uploaded/"}})
    outcome = cloud.send("retrain_requested", request)

    # Then its run is FAILED at train, naming the prefix, and no second job was created
    run = cloud.run(outcome["run_id"])
    assert (run["status"], run["error"]["stage"], run["error"]["code"]) == ("FAILED", "train", "EmptyChannel")
    assert "s3://sagedock-data/iris/not-uploaded/" in run["error"]["message"]
    assert len(cloud.sagemaker.named("create_training_job")) == 1
