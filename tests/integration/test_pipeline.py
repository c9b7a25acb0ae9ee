"""The whole pipeline through the real app and moto: happy path, every failure, duplicates, disorder."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto_cloud import REGION, Cloud, make_bundle

from chalicelib.domain.errors import TransientError
from sagedock.eventshapes import build_state, ecr_image_action, endpoint_state, training_state

DIGEST = "sha256:" + "ab" * 32
KEY = "bundles/iris/v1.zip"


def _moto_sagemaker() -> Any:
    from moto.backends import get_backend

    return get_backend("sagemaker")["123456789012"][REGION]


def put_log(cloud: Cloud, group: str, stream: str, lines: list[str]) -> None:
    """Lines a container wrote, in the CloudWatch Logs stream SageMaker puts them in."""
    import boto3

    logs = boto3.client("logs", region_name=REGION)
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)  # CloudWatch refuses events older than 14 days
    events = [{"timestamp": now + n, "message": line} for n, line in enumerate(lines)]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def received(cloud: Cloud, key: str = KEY, body: bytes | None = None) -> dict[str, Any]:
    """Given a bundle uploaded and its event delivered: the handler's outcome."""
    return cloud.send("bundle_uploaded", cloud.upload(key, body if body is not None else make_bundle()))


def built(cloud: Cloud) -> str:
    """A run whose build started; returns the run id."""
    outcome = received(cloud)
    assert outcome["action"] == "build started", outcome
    return str(outcome["run_id"])


def trained(cloud: Cloud) -> tuple[str, str]:
    """A run whose training started; returns (run id, training job name)."""
    run_id = built(cloud)
    cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
    run = cloud.run(run_id)
    assert run["status"] == "TRAINING"
    return run_id, run["training_job_name"]


def deploying(cloud: Cloud) -> tuple[str, dict[str, Any]]:
    """A run whose endpoint is being created."""
    run_id, job = trained(cloud)
    cloud.send("training_state_changed", training_state(job, "Completed", tags={"sagedock:run-id": run_id}))
    run = cloud.run(run_id)
    assert run["status"] == "DEPLOYING", run
    return run_id, run


class TestHappyPath:
    def test_bundle_to_endpoint(self, cloud: Cloud) -> None:
        # Given a valid bundle uploaded to bundles/iris/
        outcome = received(cloud)

        # Then the run is BUILDING, with its provenance, and one build started with the buildspec variables
        run_id = outcome["run_id"]
        run = cloud.run(run_id)
        assert run["status"] == "BUILDING"
        assert run["project"] == "iris"
        assert run["source"]["key"] == KEY and run["source"]["version_id"]
        assert run["image"]["tag"] == run_id
        builds = cloud.codebuild.named("start_build")
        assert len(builds) == 1
        env = {v["name"]: v["value"] for v in builds[0]["environmentVariablesOverride"]}
        assert env["RUN_ID"] == run_id and env["IMAGE_TAG"] == run_id and env["IMAGE_REPO"] == "sagedock/iris"
        assert builds[0]["sourceLocationOverride"] == f"sagedock-source/{KEY}"
        assert builds[0]["sourceVersion"] == run["source"]["version_id"]
        repo = cloud.ecr.describe_repositories(repositoryNames=["sagedock/iris"])["repositories"][0]
        assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
        assert repo["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "latest"}]
        assert env["CACHE_TAG"] == "latest"
        assert "SMOKE_TEST" not in env  # the buildspec's default: a bundle that trains is smoke-tested
        assert json.loads(env["BUILD_ARGS"]) == {}
        assert repo["imageScanningConfiguration"]["scanOnPush"] is True

        # When the image is pushed
        cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))

        # Then training runs on the image by digest, with the manifest's settings
        run = cloud.run(run_id)
        assert run["status"] == "TRAINING"
        assert run["image"]["uri"].endswith(f"/sagedock/iris@{DIGEST}")
        (job,) = cloud.sagemaker.named("create_training_job")
        assert job["AlgorithmSpecification"]["TrainingImage"] == run["image"]["uri"]
        assert job["HyperParameters"] == {"max_leaf_nodes": "5", "criterion": "gini", "prune": "true"}
        channels = {
            c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]
        }
        assert channels == {"train": "s3://sagedock-data/iris/train/", "extra": "s3://elsewhere/extra/"}
        assert job["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
        assert {"Key": "sagedock:run-id", "Value": run_id} in job["Tags"]
        assert "VpcConfig" not in job

        # When training completes
        cloud.send(
            "training_state_changed",
            training_state(run["training_job_name"], "Completed", tags={"sagedock:run-id": run_id}),
        )

        # Then model (same image by digest), config and endpoint exist
        run = cloud.run(run_id)
        assert run["status"] == "DEPLOYING"
        (model,) = cloud.sagemaker.named("create_model")
        assert model["PrimaryContainer"]["Image"] == run["image"]["uri"]
        assert model["PrimaryContainer"]["ModelDataUrl"] == run["model_artifact"]
        assert run["model_artifact"].endswith(f"{run['training_job_name']}/output/model.tar.gz")
        (config,) = cloud.sagemaker.named("create_endpoint_config")
        variant = config["ProductionVariants"][0]
        assert variant["InstanceType"] == "ml.m5.large"
        assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 300
        assert cloud.sagemaker.named("create_endpoint")[0]["EndpointName"] == "iris"

        # When the endpoint is in service
        cloud.send(
            "endpoint_state_changed", endpoint_state("iris", run["endpoint_config_name"], "IN_SERVICE")
        )

        # Then the run SUCCEEDED with a complete timeline
        run = cloud.run(run_id)
        assert run["status"] == "SUCCEEDED"
        assert [(s["stage"], s["status"]) for s in run["stages"]] == [
            ("validate", "SUCCEEDED"),
            ("build", "SUCCEEDED"),
            ("train", "SUCCEEDED"),
            ("deploy", "SUCCEEDED"),
        ]
        assert all(s["ended_at"] for s in run["stages"])
        assert run["error"] is None

    def test_build_event_alone_advances_the_run(self, cloud: Cloud) -> None:
        # Given a build started and no ECR event (they are best-effort)
        run_id = built(cloud)
        build_id = cloud.run(run_id)["build_id"]
        # When the build SUCCEEDED event carries the exported digest
        event = build_state(
            "sagedock-build", build_id, "SUCCEEDED", run_id=run_id, exported={"IMAGE_DIGEST": DIGEST}
        )
        cloud.send("build_state_changed", event)
        # Then training started on that digest
        run = cloud.run(run_id)
        assert run["status"] == "TRAINING" and run["image"]["digest"] == DIGEST

    def test_second_run_updates_the_existing_endpoint(
        self, cloud: Cloud, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a project whose endpoint is in service from an earlier run
        first, run = deploying(cloud)
        cloud.send(
            "endpoint_state_changed", endpoint_state("iris", run["endpoint_config_name"], "IN_SERVICE")
        )
        updates: list[dict[str, Any]] = []
        moto = _moto_sagemaker()

        def update_endpoint(**kwargs: Any) -> dict[str, Any]:
            updates.append(kwargs)
            moto.endpoints["iris"].endpoint_config_name = kwargs["EndpointConfigName"]
            return {"EndpointArn": moto.endpoints["iris"].arn}

        monkeypatch.setattr(cloud.sagemaker.inner, "update_endpoint", update_endpoint, raising=False)
        # When a new bundle for the project goes through training
        second = received(cloud, "bundles/iris/v2.zip")["run_id"]
        cloud.send("image_pushed", ecr_image_action("sagedock/iris", "sha256:" + "cd" * 32, second))
        job = cloud.run(second)["training_job_name"]
        cloud.send("training_state_changed", training_state(job, "Completed"))
        # Then the endpoint is updated (not re-created) to the new config, and its event ends the run
        assert updates == [{"EndpointName": "iris", "EndpointConfigName": second}]
        cloud.send("endpoint_state_changed", endpoint_state("iris", second, "IN_SERVICE"))
        assert cloud.run(second)["status"] == "SUCCEEDED"
        assert cloud.run(first)["status"] == "SUCCEEDED"

    def test_deploy_disabled_ends_after_training(self, cloud: Cloud) -> None:
        bundle = make_bundle({"sagedock.toml": b"[deploy]\nenabled = false\n"})
        run_id = received(cloud, body=bundle)["run_id"]
        cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
        job = cloud.run(run_id)["training_job_name"]
        cloud.send("training_state_changed", training_state(job, "Completed"))
        run = cloud.run(run_id)
        assert run["status"] == "SUCCEEDED"
        assert run["model_artifact"]
        assert run["stages"][-1] == {**run["stages"][-1], "stage": "deploy", "status": "SKIPPED"}
        assert cloud.sagemaker.named("create_endpoint") == []


class TestFailures:
    @pytest.mark.parametrize(
        ("files", "code", "hint"),
        [
            ({"Dockerfile": None}, "NoDockerfile", "Dockerfile"),
            ({"sagedock.toml": b"[train]\ninstance_count = 0\n"}, "InvalidManifest", "train.instance_count"),
            ({"sagedock.toml": b"[train]\nbogus = 1\n"}, "InvalidManifest", "bogus"),
            ({"../evil.py": b"x"}, "UnsafePath", "../evil.py"),
        ],
    )
    def test_bad_bundle_fails_before_any_build(
        self, cloud: Cloud, files: dict[str, bytes | None], code: str, hint: str
    ) -> None:
        outcome = received(cloud, body=make_bundle(files))
        run = cloud.run(outcome["run_id"])
        assert run["status"] == "FAILED"
        assert run["error"]["stage"] == "validate" and run["error"]["code"] == code
        assert hint in run["error"]["message"]
        assert cloud.codebuild.named("start_build") == []

    def test_not_a_zip(self, cloud: Cloud) -> None:
        run = cloud.run(received(cloud, body=b"this is not a zip file at all")["run_id"])
        assert run["status"] == "FAILED" and run["error"]["stage"] == "validate"

    def test_invalid_project_name_is_recorded(self, cloud: Cloud) -> None:
        run = cloud.run(received(cloud, key="bundles/Not_Valid/x.zip")["run_id"])
        assert run["error"]["code"] == "InvalidProject"
        assert "lowercase" in run["error"]["message"]

    def test_failed_build_names_phase_context_and_logs(self, cloud: Cloud) -> None:
        run_id = built(cloud)
        build_id = cloud.run(run_id)["build_id"]
        event = build_state(
            "sagedock-build",
            build_id,
            "FAILED",
            run_id=run_id,
            failed_phase=(
                "BUILD",
                "COMMAND_EXECUTION_ERROR: Error while executing command: docker build. Reason: exit status 1",
            ),
        )
        cloud.send("build_state_changed", event)
        run = cloud.run(run_id)
        assert run["status"] == "FAILED"
        assert run["error"]["stage"] == "build" and run["error"]["code"] == "BuildFailed"
        assert "phase BUILD" in run["error"]["message"]
        assert "docker build" in run["error"]["message"]
        assert "console.aws.amazon.com/cloudwatch" in run["error"]["message"]
        assert cloud.sagemaker.named("create_training_job") == []

    def test_stopped_build(self, cloud: Cloud) -> None:
        run_id = built(cloud)
        build_id = cloud.run(run_id)["build_id"]
        cloud.send("build_state_changed", build_state("sagedock-build", build_id, "STOPPED", run_id=run_id))
        assert cloud.run(run_id)["error"]["code"] == "BuildStopped"

    def test_succeeded_build_without_digest_fails(self, cloud: Cloud) -> None:
        run_id = built(cloud)
        build_id = cloud.run(run_id)["build_id"]
        cloud.send("build_state_changed", build_state("sagedock-build", build_id, "SUCCEEDED", run_id=run_id))
        run = cloud.run(run_id)
        assert run["error"]["code"] == "NoImageDigest"
        assert "IMAGE_DIGEST" in run["error"]["message"]

    def test_failed_training_keeps_first_line(self, cloud: Cloud) -> None:
        run_id, job = trained(cloud)
        reason = (
            "AlgorithmError: max_leaf_nodes must be an integer >= 2, got 'x'\n"
            "Traceback (most recent call last):\n  ..."
        )
        cloud.send("training_state_changed", training_state(job, "Failed", failure_reason=reason))
        run = cloud.run(run_id)
        assert run["status"] == "FAILED"
        assert run["error"] == {
            "stage": "train",
            "code": "TrainingFailed",
            "message": "AlgorithmError: max_leaf_nodes must be an integer >= 2, got 'x'",
        }
        assert cloud.sagemaker.named("create_model") == []

    def test_failed_endpoint(self, cloud: Cloud) -> None:
        run_id, run = deploying(cloud)
        endpoint = _moto_sagemaker().endpoints["iris"]
        endpoint.endpoint_status = "Failed"
        endpoint.failure_reason = (
            "The primary container for production variant AllTraffic did not pass the ping health check."
        )
        cloud.send("endpoint_state_changed", endpoint_state("iris", run["endpoint_config_name"], "FAILED"))
        run = cloud.run(run_id)
        assert run["status"] == "FAILED"
        assert run["error"]["stage"] == "deploy" and run["error"]["code"] == "EndpointFailed"
        assert "ping health check" in run["error"]["message"]

    def test_a_failed_jobs_error_quotes_the_last_lines_of_its_log(self, cloud: Cloud) -> None:
        # Given a training job whose container wrote a traceback to CloudWatch and then exited, without
        # /opt/ml/output/failure (SageMaker then says only that the algorithm exited)
        run_id, job = trained(cloud)
        lines = ["loading /opt/ml/input/data/training", "Traceback (most recent call last):"]
        lines += [f"  frame {n}" for n in range(12)] + ["KeyError: 'petal_width'"]
        put_log(cloud, "/aws/sagemaker/TrainingJobs", f"{job}/algo-1-1763726400", lines)
        reason = "AlgorithmError: , exit code: 1"
        cloud.send("training_state_changed", training_state(job, "Failed", failure_reason=reason))

        # Then the run's error says so and quotes the log's last ten lines, the reason's cause among them
        message = cloud.run(run_id)["error"]["message"]
        assert message.startswith(
            f"AlgorithmError: , exit code: 1; the last lines of its log (/aws/sagemaker/"
            f"TrainingJobs {job}/algo-1-1763726400): "
        ), message
        assert message.endswith("  frame 11 | KeyError: 'petal_width'")
        assert "frame 2 |" not in message and "\n" not in message

    def test_a_failed_endpoints_error_quotes_the_last_lines_of_its_log(self, cloud: Cloud) -> None:
        run_id, run = deploying(cloud)
        put_log(
            cloud,
            "/aws/sagemaker/Endpoints/iris",
            "AllTraffic/i-0abc",
            ["starting gunicorn", "nginx: [emerg] bind() to 0.0.0.0:8080 failed"],
        )
        endpoint = _moto_sagemaker().endpoints["iris"]
        endpoint.endpoint_status = "Failed"
        endpoint.failure_reason = (
            "The primary container for production variant AllTraffic did not pass the ping health check."
        )
        cloud.send("endpoint_state_changed", endpoint_state("iris", run["endpoint_config_name"], "FAILED"))
        message = cloud.run(run_id)["error"]["message"]
        assert "ping health check" in message
        assert message.endswith(
            "(/aws/sagemaker/Endpoints/iris AllTraffic/i-0abc): "
            "starting gunicorn | nginx: [emerg] bind() to 0.0.0.0:8080 failed"
        ), message

    def test_logs_that_cannot_be_read_leave_the_reason_as_it_is(self, cloud: Cloud) -> None:
        run_id, job = trained(cloud)
        put_log(cloud, "/aws/sagemaker/TrainingJobs", f"{job}/algo-1-1763726400", ["anything"])
        from chalicelib.services import get_services

        def throttled(**_: Any) -> Any:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "DescribeLogStreams"
            )

        get_services().logs._client.describe_log_streams = throttled
        cloud.send("training_state_changed", training_state(job, "Failed", failure_reason="OOM"))
        assert cloud.run(run_id)["error"]["message"] == "OOM"

    def test_training_rejected_by_sagemaker_is_recorded(self, cloud: Cloud) -> None:
        # (an unknown instance type is refused at validate now: what only SageMaker knows is the quota)
        run_id = received(cloud)["run_id"]
        quota = "The account-level service limit 'ml.m5.xlarge for training job usage' is 0 Instances"
        cloud.sagemaker.inner.create_training_job = refusing(
            "ResourceLimitExceeded", quota, "CreateTrainingJob"
        )
        cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
        run = cloud.run(run_id)
        assert run["status"] == "FAILED" and run["error"]["stage"] == "train"
        assert run["error"]["code"] == "ResourceLimitExceeded" and quota in run["error"]["message"]

    def test_malformed_event_is_dropped_not_raised(self, cloud: Cloud) -> None:
        event = ecr_image_action("sagedock/iris", DIGEST, "x")
        del event["detail"]["image-digest"]
        outcome = cloud.send("image_pushed", event)
        assert outcome["action"] == "rejected"
        assert "image-digest" in outcome["reason"]


def refusing(code: str, message: str, operation: str) -> Callable[..., Any]:
    """A stand-in for an AWS call that AWS refuses with this error code."""

    def refuse(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": code, "Message": message}}, operation)

    return refuse


def deliver_concurrently(
    cloud: Cloud, handler: str, event: dict[str, Any], times: int = 3
) -> list[dict[str, Any]]:
    """Deliver the same event `times` times at once, as at-least-once delivery may; the outcomes.

    The interpreter switches threads every 10 µs meanwhile (not every 5 ms), so that the deliveries
    interleave between any two steps and a missing guard shows on every run, not now and then.
    """
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(times)

    def deliver() -> None:
        barrier.wait()
        results.append(cloud.send(handler, event))

    threads = [threading.Thread(target=deliver) for _ in range(times)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    return results


class TestIdempotency:
    def test_same_upload_event_three_times_starts_one_build(self, cloud: Cloud) -> None:
        event = cloud.upload(KEY, make_bundle())
        outcomes = [cloud.send("bundle_uploaded", event) for _ in range(3)]
        assert [o["action"] for o in outcomes] == ["build started", "ignored", "ignored"]
        assert len(cloud.codebuild.named("start_build")) == 1

    def test_same_upload_event_concurrently_starts_one_build(self, cloud: Cloud) -> None:
        event = cloud.upload(KEY, make_bundle())
        results = deliver_concurrently(cloud, "bundle_uploaded", event)
        assert len(results) == 3
        assert len(cloud.codebuild.named("start_build")) == 1
        run_id = results[0]["run_id"]
        assert cloud.run(run_id)["status"] == "BUILDING"

    def test_push_and_build_events_in_either_order_start_one_training_job(self, cloud: Cloud) -> None:
        run_id = built(cloud)
        build_id = cloud.run(run_id)["build_id"]
        succeeded = build_state(
            "sagedock-build", build_id, "SUCCEEDED", run_id=run_id, exported={"IMAGE_DIGEST": DIGEST}
        )
        pushed = ecr_image_action("sagedock/iris", DIGEST, run_id)
        for handler, event in [("build_state_changed", succeeded), ("image_pushed", pushed)] * 3:
            cloud.send(handler, event)
        assert len(cloud.sagemaker.named("create_training_job")) == 1
        assert cloud.run(run_id)["status"] == "TRAINING"

    def test_same_push_event_concurrently_starts_one_training_job(self, cloud: Cloud) -> None:
        run_id = built(cloud)
        results = deliver_concurrently(
            cloud, "image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id)
        )
        assert len(results) == 3
        assert len(cloud.sagemaker.named("create_training_job")) == 1
        assert cloud.run(run_id)["status"] == "TRAINING"

    def test_training_completed_concurrently_changes_the_endpoint_once(self, cloud: Cloud) -> None:
        run_id, job = trained(cloud)
        results = deliver_concurrently(cloud, "training_state_changed", training_state(job, "Completed"))
        assert len(results) == 3
        assert len(cloud.sagemaker.named("create_endpoint")) == 1
        run = cloud.run(run_id)
        assert run["status"] == "DEPLOYING"
        assert [s["stage"] for s in run["stages"]].count("deploy") == 1

    def test_training_completed_three_times_deploys_once(self, cloud: Cloud) -> None:
        run_id, job = trained(cloud)
        event = training_state(job, "Completed")
        for _ in range(3):
            cloud.send("training_state_changed", event)
        assert len(cloud.sagemaker.named("create_endpoint")) == 1
        assert cloud.run(run_id)["status"] == "DEPLOYING"

    def test_a_build_event_arriving_while_the_build_is_launched_is_not_lost(self, cloud: Cloud) -> None:
        # Given CodeBuild finishes so fast that its SUCCEEDED event arrives before StartBuild has returned
        event = cloud.upload(KEY, make_bundle())
        start_build = cloud.codebuild.inner.start_build
        seen: list[dict[str, Any]] = []

        def start_and_finish(**kwargs: Any) -> Any:
            response = start_build(**kwargs)
            run_id = next(v["value"] for v in kwargs["environmentVariablesOverride"] if v["name"] == "RUN_ID")
            done = build_state(
                "sagedock-build",
                response["build"]["id"],
                "SUCCEEDED",
                run_id=run_id,
                exported={"IMAGE_DIGEST": DIGEST},
            )
            seen.append(cloud.send("build_state_changed", done))
            return response

        cloud.codebuild.inner.start_build = start_and_finish
        # When the upload is handled
        outcome = cloud.send("bundle_uploaded", event)
        # Then the early event started training, and the build's id is still recorded
        assert seen[0]["action"] == "training started", seen
        run = cloud.run(outcome["run_id"])
        assert run["status"] == "TRAINING"
        assert run["build_id"] == outcome["build_id"]

    def test_a_delivery_that_failed_to_launch_the_build_is_resumed_by_the_retry(self, cloud: Cloud) -> None:
        # Given the first delivery recorded the run BUILDING, then CodeBuild throttled the launch

        event = cloud.upload(KEY, make_bundle())
        start_build = cloud.codebuild.inner.start_build

        cloud.codebuild.inner.start_build = refusing("ThrottlingException", "Rate exceeded", "StartBuild")
        with pytest.raises(TransientError):
            cloud.send("bundle_uploaded", event)
        run_id = cloud.client.http.get("/runs").json_body["runs"][0]["run_id"]
        assert cloud.run(run_id)["status"] == "BUILDING" and cloud.run(run_id)["build_id"] is None

        # When Lambda retries the event
        cloud.codebuild.inner.start_build = start_build
        outcome = cloud.send("bundle_uploaded", event)

        # Then the build is launched once and recorded
        assert outcome["action"] == "build started"
        assert cloud.run(run_id)["build_id"] == outcome["build_id"]
        assert len(cloud.codebuild.named("start_build")) == 2  # the throttled call and the real one

    def test_a_training_event_arriving_while_the_job_is_created_is_not_lost(self, cloud: Cloud) -> None:
        # Given SageMaker reports the job Completed before CreateTrainingJob has returned
        run_id = built(cloud)
        create = cloud.sagemaker.inner.create_training_job
        seen: list[dict[str, Any]] = []

        def create_and_finish(**kwargs: Any) -> Any:
            response = create(**kwargs)
            done = training_state(kwargs["TrainingJobName"], "Completed", tags={"sagedock:run-id": run_id})
            seen.append(cloud.send("training_state_changed", done))
            return response

        cloud.sagemaker.inner.create_training_job = create_and_finish
        # When the push is handled
        outcome = cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
        # Then the early event started the deploy
        assert outcome["action"] == "training started", outcome
        assert seen[0]["action"] == "deploy started", seen
        assert cloud.run(run_id)["status"] == "DEPLOYING"

    def test_a_delivery_that_failed_to_create_the_job_is_resumed_by_the_retry(self, cloud: Cloud) -> None:
        # Given the first delivery recorded the run TRAINING, then SageMaker throttled the job's creation

        run_id = built(cloud)
        push = ecr_image_action("sagedock/iris", DIGEST, run_id)
        create = cloud.sagemaker.inner.create_training_job

        cloud.sagemaker.inner.create_training_job = refusing(
            "ThrottlingException", "Rate exceeded", "CreateTrainingJob"
        )
        with pytest.raises(TransientError):
            cloud.send("image_pushed", push)
        run = cloud.run(run_id)
        assert run["status"] == "TRAINING" and _moto_sagemaker().training_jobs == {}

        # When Lambda retries the event, and the build's SUCCEEDED event arrives too
        cloud.sagemaker.inner.create_training_job = create
        outcome = cloud.send("image_pushed", push)
        build_done = build_state(
            "sagedock-build", run["build_id"], "SUCCEEDED", run_id=run_id, exported={"IMAGE_DIGEST": DIGEST}
        )
        late = cloud.send("build_state_changed", build_done)

        # Then the job is created once, under the name the run recorded
        assert outcome["action"] == "training started" and late["action"] == "ignored", (outcome, late)
        assert list(_moto_sagemaker().training_jobs) == [run["training_job_name"]]
        assert len(cloud.sagemaker.named("create_training_job")) == 2  # the throttled call and the real one

    def test_late_build_failure_after_training_changes_nothing(self, cloud: Cloud) -> None:
        run_id, _ = trained(cloud)
        build_id = cloud.run(run_id)["build_id"]
        outcome = cloud.send(
            "build_state_changed", build_state("sagedock-build", build_id, "FAILED", run_id=run_id)
        )
        assert outcome["action"] == "ignored"
        assert cloud.run(run_id)["status"] == "TRAINING"

    def test_endpoint_event_before_training_finished_is_ignored(self, cloud: Cloud) -> None:
        run_id, _ = trained(cloud)
        outcome = cloud.send("endpoint_state_changed", endpoint_state("iris", run_id, "IN_SERVICE"))
        assert outcome["action"] == "ignored"
        assert cloud.run(run_id)["status"] == "TRAINING"

    def test_endpoint_event_of_an_older_config_does_not_finish_the_run(self, cloud: Cloud) -> None:
        run_id, _ = deploying(cloud)
        _moto_sagemaker().endpoints["iris"].endpoint_status = "Updating"
        outcome = cloud.send(
            "endpoint_state_changed", endpoint_state("iris", "iris-000000000000", "IN_SERVICE")
        )
        assert outcome["action"] == "ignored"
        assert cloud.run(run_id)["status"] == "DEPLOYING"

    @pytest.mark.parametrize(
        "event",
        [
            ecr_image_action("sagedock/iris", DIGEST, ""),
            ecr_image_action("sagedock/iris", DIGEST, "iris-0123456789ab"),
            ecr_image_action("other/iris", DIGEST, "latest"),
            training_state("somebody-elses-job", "Completed"),
            endpoint_state("not-ours", "not-ours", "IN_SERVICE"),
        ],
    )
    def test_foreign_or_unknown_events_are_ignored(self, cloud: Cloud, event: dict[str, Any]) -> None:
        handler = {
            "ECR Image Action": "image_pushed",
            "SageMaker Training Job State Change": "training_state_changed",
            "SageMaker Endpoint State Change": "endpoint_state_changed",
        }[event["detail-type"]]
        assert cloud.send(handler, event)["action"] == "ignored"
        assert cloud.sagemaker.named("create_training_job") == []


class TestRetry:
    def test_retry_failed_training_starts_a_new_job(self, cloud: Cloud) -> None:
        run_id, job = trained(cloud)
        cloud.send("training_state_changed", training_state(job, "Failed", failure_reason="OOM"))
        response = cloud.client.http.post(f"/runs/{run_id}/retry")
        assert response.status_code == 200, response.body
        run = cloud.run(run_id)
        assert run["status"] == "TRAINING" and run["attempt"] == 2 and run["error"] is None
        assert run["training_job_name"] == f"{run_id}-t2" != job
        # a late event of the first job changes nothing
        assert cloud.send("training_state_changed", training_state(job, "Failed"))["action"] == "ignored"

    def test_retry_failed_build_launches_a_new_build(self, cloud: Cloud) -> None:
        run_id = built(cloud)
        first = cloud.run(run_id)["build_id"]
        cloud.send("build_state_changed", build_state("sagedock-build", first, "FAILED", run_id=run_id))
        response = cloud.client.http.post(f"/runs/{run_id}/retry")
        assert response.status_code == 200, response.body
        run = cloud.run(run_id)
        assert run["status"] == "BUILDING" and run["attempt"] == 2
        assert run["build_id"] not in (None, first)
        tokens = [call["idempotencyToken"] for call in cloud.codebuild.named("start_build")]
        assert tokens == [f"{run_id}-1", f"{run_id}-2"]
        # a late event of the first build changes nothing
        late = build_state("sagedock-build", first, "FAILED", run_id=run_id)
        assert cloud.send("build_state_changed", late)["action"] == "ignored"

    def test_a_retry_that_could_not_start_its_work_can_be_retried_again(self, cloud: Cloud) -> None:
        run_id, job = trained(cloud)
        cloud.send("training_state_changed", training_state(job, "Failed", failure_reason="OOM"))
        create = cloud.sagemaker.inner.create_training_job

        cloud.sagemaker.inner.create_training_job = refusing(
            "ThrottlingException", "Rate exceeded", "CreateTrainingJob"
        )
        response = cloud.client.http.post(f"/runs/{run_id}/retry")
        assert response.status_code == 503, response.body
        run = cloud.run(run_id)
        assert run["status"] == "FAILED" and "retry the run again" in run["error"]["message"]

        cloud.sagemaker.inner.create_training_job = create
        assert cloud.client.http.post(f"/runs/{run_id}/retry").status_code == 200
        run = cloud.run(run_id)
        assert run["status"] == "TRAINING" and run["attempt"] == 3
        assert list(_moto_sagemaker().training_jobs) == [job, f"{run_id}-t3"]

    def test_retry_of_a_failed_endpoint_deletes_it_and_deploys_again(self, cloud: Cloud) -> None:
        # Given a run FAILED at deploy because its new endpoint failed (SageMaker allows only its deletion)
        run_id, run = deploying(cloud)
        endpoint = _moto_sagemaker().endpoints["iris"]
        endpoint.endpoint_status = "Failed"
        endpoint.failure_reason = "The primary container for production variant AllTraffic did not pass ping"
        cloud.send("endpoint_state_changed", endpoint_state("iris", run["endpoint_config_name"], "FAILED"))
        assert cloud.run(run_id)["error"]["code"] == "EndpointFailed"

        # When it is retried
        response = cloud.client.http.post(f"/runs/{run_id}/retry")

        # Then the failed endpoint is deleted and created again on a config of the new attempt
        assert response.status_code == 200, response.body
        retried = cloud.run(run_id)
        assert retried["status"] == "DEPLOYING" and retried["attempt"] == 2
        assert retried["endpoint_config_name"] == f"{run_id}-d2" != run["endpoint_config_name"]
        assert [call["EndpointName"] for call in cloud.sagemaker.named("delete_endpoint")] == ["iris"]
        created = [call["EndpointConfigName"] for call in cloud.sagemaker.named("create_endpoint")]
        assert created == [run["endpoint_config_name"], f"{run_id}-d2"]
        assert _moto_sagemaker().endpoints["iris"].endpoint_config_name == f"{run_id}-d2"
        # and its events finish the run: a late FAILED of the first attempt changes nothing
        _moto_sagemaker().endpoints["iris"].endpoint_status = "Creating"
        late = endpoint_state("iris", run["endpoint_config_name"], "FAILED")
        assert cloud.send("endpoint_state_changed", late)["action"] == "ignored"
        assert cloud.run(run_id)["status"] == "DEPLOYING"
        _moto_sagemaker().endpoints["iris"].endpoint_status = "InService"
        cloud.send("endpoint_state_changed", endpoint_state("iris", f"{run_id}-d2", "IN_SERVICE"))
        assert cloud.run(run_id)["status"] == "SUCCEEDED"

    def test_retry_while_the_failed_endpoint_is_deleting_fails_with_the_reason(self, cloud: Cloud) -> None:
        # Given a run FAILED at deploy whose endpoint SageMaker is still deleting
        run_id, run = deploying(cloud)
        endpoint = _moto_sagemaker().endpoints["iris"]
        endpoint.endpoint_status = "Failed"
        cloud.send("endpoint_state_changed", endpoint_state("iris", run["endpoint_config_name"], "FAILED"))
        endpoint.endpoint_status = "Deleting"

        # When it is retried, the attempt ends FAILED at deploy saying why and what to do: never DEPLOYING
        response = cloud.client.http.post(f"/runs/{run_id}/retry")
        assert response.status_code == 200, response.body
        retried = cloud.run(run_id)
        assert retried["status"] == "FAILED" and retried["attempt"] == 2
        assert retried["error"]["stage"] == "deploy" and retried["error"]["code"] == "Conflict"
        assert "Deleting" in retried["error"]["message"] and "retry" in retried["error"]["message"]

    def test_retry_of_a_bad_bundle_is_refused(self, cloud: Cloud) -> None:
        run_id = received(cloud, body=make_bundle({"Dockerfile": None}))["run_id"]
        response = cloud.client.http.post(f"/runs/{run_id}/retry")
        assert response.status_code == 409
        assert "upload it again" in response.json_body["message"]

    def test_retry_of_a_running_run_is_refused(self, cloud: Cloud) -> None:
        run_id = built(cloud)
        assert cloud.client.http.post(f"/runs/{run_id}/retry").status_code == 409


class TestPrivateRegistry:
    def test_requests_use_vpc_access_and_the_credentials_function(self, private_cloud: Cloud) -> None:
        cloud = private_cloud
        run_id = built(cloud)
        (build,) = cloud.codebuild.named("start_build")
        variables = {v["name"]: (v["type"], v["value"]) for v in build["environmentVariablesOverride"]}
        assert variables["PRIVATE_REGISTRY"] == ("PLAINTEXT", "registry.example.com")
        assert variables["REGISTRY_USERNAME"] == ("SECRETS_MANAGER", "sagedock/registry:username")
        assert variables["REGISTRY_PASSWORD"] == ("SECRETS_MANAGER", "sagedock/registry:password")
        assert cloud.ecr.describe_repositories()["repositories"] == []

        # the build's SUCCEEDED event is the only signal (no ECR event for a private registry)
        event = build_state(
            "sagedock-build",
            cloud.run(run_id)["build_id"],
            "SUCCEEDED",
            run_id=run_id,
            exported={"IMAGE_DIGEST": DIGEST},
        )
        cloud.send("build_state_changed", event)
        (job,) = cloud.sagemaker.named("create_training_job")
        image = f"registry.example.com/sagedock/iris@{DIGEST}"
        function = "arn:aws:lambda:us-east-1:123456789012:function:sagedock-registry-auth"
        assert job["AlgorithmSpecification"]["TrainingImage"] == image
        assert job["AlgorithmSpecification"]["TrainingImageConfig"] == {
            "TrainingRepositoryAccessMode": "Vpc",
            "TrainingRepositoryAuthConfig": {"TrainingRepositoryCredentialsProviderArn": function},
        }
        vpc = {"SecurityGroupIds": ["sg-0c"], "Subnets": ["subnet-0a", "subnet-0b"]}
        assert job["VpcConfig"] == vpc

        cloud.send("training_state_changed", training_state(job["TrainingJobName"], "Completed"))
        (model,) = cloud.sagemaker.named("create_model")
        assert model["PrimaryContainer"]["Image"] == image
        assert model["PrimaryContainer"]["ImageConfig"] == {
            "RepositoryAccessMode": "Vpc",
            "RepositoryAuthConfig": {"RepositoryCredentialsProviderArn": function},
        }
        assert model["VpcConfig"] == vpc
