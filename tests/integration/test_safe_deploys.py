"""Safe deployments through the real app and moto: autoscaling registration, blue/green updates and their
rollback, and the image scan gate whatever the order of the push, build and scan events."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from moto_cloud import REGION, Cloud, make_bundle
from test_pipeline import DIGEST, _moto_sagemaker, received

from chalicelib import services as services_module
from sagedock.eventshapes import build_state, ecr_image_action, ecr_image_scan, endpoint_state, training_state
from tests.alarms import put_rollback_alarm

BASE = b"""
[train]
instance_type = "ml.m5.xlarge"
[train.channels]
train = "iris/train/"
"""
SCALED = (
    BASE
    + b"""
[deploy]
instance_type = "ml.m5.large"
initial_instance_count = 2
[deploy.autoscaling]
min_capacity = 1
max_capacity = 6
target_invocations_per_instance = 70
"""
)
SCANNED = BASE + b'[build]\nscan = true\nscan_fail_severity = "HIGH"\n'
OTHER_DIGEST = "sha256:" + "cd" * 32


@cache
def _update_endpoint_shape() -> Any:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model("UpdateEndpoint").input_shape


def scaling() -> Any:
    return boto3.client("application-autoscaling", region_name=REGION)


def targets() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = scaling().describe_scalable_targets(ServiceNamespace="sagemaker")[
        "ScalableTargets"
    ]
    return found


def in_service(cloud: Cloud, key: str, manifest: bytes, digest: str = DIGEST) -> str:
    """A run taken from upload to its endpoint's IN_SERVICE event; its run id."""
    run_id = str(received(cloud, key, make_bundle({"sagedock.toml": manifest}))["run_id"])
    deployed(cloud, run_id, digest)
    cloud.send(
        "endpoint_state_changed",
        endpoint_state("iris", cloud.run(run_id)["endpoint_config_name"], "IN_SERVICE"),
    )
    return run_id


def deployed(cloud: Cloud, run_id: str, digest: str) -> None:
    """The run's image pushed and its training completed: the endpoint change has been asked for."""
    cloud.send("image_pushed", ecr_image_action("sagedock/iris", digest, run_id))
    cloud.send("training_state_changed", training_state(cloud.run(run_id)["training_job_name"], "Completed"))
    assert cloud.run(run_id)["status"] == "DEPLOYING", cloud.run(run_id)


class FakeUpdate:
    """UpdateEndpoint as SageMaker answers it (moto lacks it): validated against botocore's model; the
    endpoint then serves the new config, or (rolled back) keeps the old one with a FailureReason."""

    def __init__(self, *, roll_back_with: str | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.scaled_at_call: list[bool] = []
        self.roll_back_with = roll_back_with

    def __call__(self, **kwargs: Any) -> dict[str, Any]:
        report = ParamValidator().validate(kwargs, _update_endpoint_shape())
        assert not report.has_errors(), report.generate_report()
        self.calls.append(kwargs)
        self.scaled_at_call.append(bool(targets()))
        endpoint = _moto_sagemaker().endpoints[kwargs["EndpointName"]]
        if self.roll_back_with is None:
            endpoint.endpoint_config_name = kwargs["EndpointConfigName"]
        else:
            endpoint.failure_reason = self.roll_back_with
        return {"EndpointArn": endpoint.arn}


@pytest.fixture
def update(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> FakeUpdate:
    fake = FakeUpdate()
    monkeypatch.setattr(cloud.sagemaker.inner, "update_endpoint", fake, raising=False)
    return fake


class TestAutoscaling:
    def test_the_variant_is_registered_once_in_service_and_a_replay_changes_nothing(
        self, cloud: Cloud
    ) -> None:
        # Given a run whose manifest asks for autoscaling, deploying
        run_id = str(received(cloud, body=make_bundle({"sagedock.toml": SCALED}))["run_id"])
        deployed(cloud, run_id, DIGEST)
        assert targets() == []  # nothing is registered before the endpoint is in service
        # When the endpoint's IN_SERVICE event arrives, twice
        event = endpoint_state("iris", cloud.run(run_id)["endpoint_config_name"], "IN_SERVICE")
        outcomes = [cloud.send("endpoint_state_changed", event) for _ in range(2)]
        # Then the variant is one scalable target with one target tracking policy, and the run SUCCEEDED
        assert [o["action"] for o in outcomes] == ["endpoint in service", "ignored"]
        (target,) = targets()
        assert target["ResourceId"] == "endpoint/iris/variant/AllTraffic"
        assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 6)
        (policy,) = scaling().describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
        tracking = policy["TargetTrackingScalingPolicyConfiguration"]
        assert tracking["TargetValue"] == 70.0
        assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
            "SageMakerVariantInvocationsPerInstance"
        )
        assert cloud.run(run_id)["status"] == "SUCCEEDED"

    def test_an_instance_type_change_deregisters_first_and_registers_again_in_service(
        self, cloud: Cloud, update: FakeUpdate
    ) -> None:
        # Given an autoscaled endpoint in service on ml.m5.large
        in_service(cloud, "bundles/iris/v1.zip", SCALED)
        assert len(targets()) == 1
        # When a run moves it to ml.m5.xlarge
        second = str(
            received(
                cloud,
                "bundles/iris/v2.zip",
                make_bundle({"sagedock.toml": SCALED.replace(b'"ml.m5.large"', b'"ml.m5.xlarge"')}),
            )["run_id"]
        )
        deployed(cloud, second, OTHER_DIGEST)
        # Then the variant was no scalable target when UpdateEndpoint was called (SageMaker refuses it)
        assert update.scaled_at_call == [False]
        # And it is one again once the new config is in service
        cloud.send("endpoint_state_changed", endpoint_state("iris", second, "IN_SERVICE"))
        assert len(targets()) == 1 and cloud.run(second)["status"] == "SUCCEEDED"

    def test_a_new_model_on_the_same_instances_keeps_its_scaling_through_the_update(
        self, cloud: Cloud, update: FakeUpdate
    ) -> None:
        in_service(cloud, "bundles/iris/v1.zip", SCALED)
        second = str(received(cloud, "bundles/iris/v2.zip", make_bundle({"sagedock.toml": SCALED}))["run_id"])
        deployed(cloud, second, OTHER_DIGEST)
        assert update.scaled_at_call == [True]

    def test_removing_the_table_removes_the_scaling(self, cloud: Cloud, update: FakeUpdate) -> None:
        in_service(cloud, "bundles/iris/v1.zip", SCALED)
        second = in_service(
            cloud, "bundles/iris/v2.zip", SCALED.split(b"[deploy.autoscaling]")[0], OTHER_DIGEST
        )
        assert cloud.run(second)["status"] == "SUCCEEDED"
        assert targets() == []


CANARY = (
    BASE
    + b"""
[deploy]
initial_instance_count = 4
[deploy.update]
strategy = "canary"
canary_percent = 25
wait_interval_seconds = 600
rollback_alarms = ["iris-5xx"]
"""
)


class TestBlueGreen:
    def test_the_update_carries_the_manifests_deployment_config(
        self, cloud: Cloud, update: FakeUpdate
    ) -> None:
        in_service(cloud, "bundles/iris/v1.zip", BASE)
        second = in_service(cloud, "bundles/iris/v2.zip", CANARY, OTHER_DIGEST)
        (call,) = update.calls
        policy = call["DeploymentConfig"]["BlueGreenUpdatePolicy"]
        assert policy["TrafficRoutingConfiguration"]["CanarySize"] == {
            "Type": "CAPACITY_PERCENT",
            "Value": 25,
        }
        assert call["DeploymentConfig"]["AutoRollbackConfiguration"] == {
            "Alarms": [{"AlarmName": "iris-5xx"}]
        }
        assert cloud.run(second)["status"] == "SUCCEEDED"

    def test_a_rolled_back_update_fails_the_run_naming_the_alarm_and_the_old_config_serves(
        self, cloud: Cloud, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given an endpoint in service on the first run's config, and the user's alarm on it
        first = in_service(cloud, "bundles/iris/v1.zip", BASE)
        old_config = cloud.run(first)["endpoint_config_name"]
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        put_rollback_alarm(cloudwatch, "iris-5xx")
        rollback = FakeUpdate(roll_back_with="Deployment was rolled back: alarm in ALARM state during baking")
        monkeypatch.setattr(cloud.sagemaker.inner, "update_endpoint", rollback, raising=False)
        # When the canary update of a second run trips the alarm and SageMaker rolls it back
        second = str(received(cloud, "bundles/iris/v2.zip", make_bundle({"sagedock.toml": CANARY}))["run_id"])
        deployed(cloud, second, OTHER_DIGEST)
        cloudwatch.set_alarm_state(AlarmName="iris-5xx", StateValue="ALARM", StateReason="5xx on the canary")
        event = endpoint_state("iris", old_config, "IN_SERVICE")
        outcome = cloud.send("endpoint_state_changed", event)
        # Then the run FAILED at deploy, naming the alarm, and the endpoint keeps the old config
        run = cloud.run(second)
        assert outcome["action"] == "failed"
        assert run["status"] == "FAILED"
        assert run["error"]["stage"] == "deploy" and run["error"]["code"] == "EndpointUpdateRolledBack"
        assert "iris-5xx" in run["error"]["message"] and old_config in run["error"]["message"]
        assert _moto_sagemaker().endpoints["iris"].endpoint_config_name == old_config
        assert cloud.run(first)["status"] == "SUCCEEDED"
        # And a replay of the event changes nothing
        assert cloud.send("endpoint_state_changed", event)["action"] == "ignored"

    def test_a_failed_update_whose_alarms_stayed_quiet_is_an_update_failure(
        self, cloud: Cloud, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        first = in_service(cloud, "bundles/iris/v1.zip", BASE)
        old_config = cloud.run(first)["endpoint_config_name"]
        put_rollback_alarm(boto3.client("cloudwatch", region_name=REGION), "iris-5xx")
        failing = FakeUpdate(roll_back_with="The primary container did not pass the ping health check.")
        monkeypatch.setattr(cloud.sagemaker.inner, "update_endpoint", failing, raising=False)
        second = str(received(cloud, "bundles/iris/v2.zip", make_bundle({"sagedock.toml": CANARY}))["run_id"])
        deployed(cloud, second, OTHER_DIGEST)
        cloud.send("endpoint_state_changed", endpoint_state("iris", old_config, "IN_SERVICE"))
        error = cloud.run(second)["error"]
        assert error["code"] == "EndpointUpdateFailed" and "ping health check" in error["message"]


def scanned_run(cloud: Cloud) -> str:
    run_id = str(received(cloud, body=make_bundle({"sagedock.toml": SCANNED}))["run_id"])
    assert cloud.run(run_id)["status"] == "BUILDING"
    return run_id


def succeeded_build(cloud: Cloud, run_id: str) -> dict[str, Any]:
    return build_state(
        "sagedock-build",
        cloud.run(run_id)["build_id"],
        "SUCCEEDED",
        run_id=run_id,
        exported={"IMAGE_DIGEST": DIGEST},
    )


class TestScanGate:
    def test_push_and_build_wait_for_the_scan_and_a_clean_scan_starts_one_training_job(
        self, cloud: Cloud
    ) -> None:
        # Given a run with the scan gate whose image was pushed and built, and no scan yet
        run_id = scanned_run(cloud)
        waits = [
            cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id)),
            cloud.send("build_state_changed", succeeded_build(cloud, run_id)),
        ]
        # Then nothing trains yet
        assert [w["reason"] for w in waits] == ["waiting for the image scan"] * 2
        assert cloud.run(run_id)["status"] == "BUILDING"
        assert cloud.sagemaker.named("create_training_job") == []
        # When the scan comes back with low findings only (and is delivered twice, then the push again)
        scan = ecr_image_scan("sagedock/iris", DIGEST, [run_id], {"MEDIUM": 2, "LOW": 7})
        outcomes = [cloud.send("image_scanned", scan) for _ in range(2)]
        cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
        # Then one training job started, and the run records the scan
        assert outcomes[0]["action"] == "training started", outcomes
        assert len(cloud.sagemaker.named("create_training_job")) == 1
        run = cloud.run(run_id)
        assert run["status"] == "TRAINING"
        assert run["scan"] == {"digest": DIGEST, "status": "COMPLETE", "counts": {"MEDIUM": 2, "LOW": 7}}

    def test_a_scan_before_the_push_event_is_not_lost(self, cloud: Cloud) -> None:
        run_id = scanned_run(cloud)
        outcome = cloud.send("image_scanned", ecr_image_scan("sagedock/iris", DIGEST, [run_id, "latest"], {}))
        late = cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
        assert outcome["action"] == "training started" and late["action"] == "ignored"
        assert len(cloud.sagemaker.named("create_training_job")) == 1

    def test_findings_at_or_above_the_threshold_fail_the_build_with_the_counts(self, cloud: Cloud) -> None:
        run_id = scanned_run(cloud)
        cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
        cloud.send(
            "image_scanned",
            ecr_image_scan("sagedock/iris", DIGEST, [run_id], {"CRITICAL": 2, "HIGH": 1, "LOW": 3}),
        )
        run = cloud.run(run_id)
        assert run["status"] == "FAILED"
        assert run["error"]["stage"] == "build" and run["error"]["code"] == "ImageVulnerable"
        assert "CRITICAL 2, HIGH 1" in run["error"]["message"] and "LOW" not in run["error"]["message"]
        # And later events of the image start nothing
        cloud.send("build_state_changed", succeeded_build(cloud, run_id))
        assert cloud.sagemaker.named("create_training_job") == []

    def test_a_scan_whose_event_was_lost_is_read_from_ecr_by_the_next_event(
        self, cloud: Cloud, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given ECR finished the scan, but its event never came (ECR events are best effort)
        run_id = scanned_run(cloud)
        ecr = services_module.get_services().ecr._client
        answer = {
            "repositoryName": "sagedock/iris",
            "imageId": {"imageDigest": DIGEST},
            "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed successfully."},
            "imageScanFindings": {"findingSeverityCounts": {"HIGH": 4}},
        }
        monkeypatch.setattr(ecr, "describe_image_scan_findings", lambda **_: answer)
        # When the build's event arrives
        cloud.send("build_state_changed", succeeded_build(cloud, run_id))
        # Then the findings decided
        assert cloud.run(run_id)["error"]["code"] == "ImageVulnerable"

    def test_without_the_gate_the_scan_event_is_ignored_and_the_push_trains(self, cloud: Cloud) -> None:
        run_id = str(received(cloud, body=make_bundle({"sagedock.toml": BASE}))["run_id"])
        scan = cloud.send("image_scanned", ecr_image_scan("sagedock/iris", DIGEST, [run_id], {"CRITICAL": 9}))
        assert scan["action"] == "ignored"
        cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
        assert cloud.run(run_id)["status"] == "TRAINING"

    def test_a_stage_that_requires_the_scan_gates_bundles_that_do_not_ask(
        self, cloud: Cloud, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a stage with SAGEDOCK_REQUIRE_IMAGE_SCAN, and a bundle without [build] scan
        svc = services_module.get_services()
        monkeypatch.setattr(svc, "settings", svc.settings.model_copy(update={"require_image_scan": True}))
        run_id = str(received(cloud, body=make_bundle({"sagedock.toml": BASE}))["run_id"])
        # When its image is pushed, then scanned with a critical finding
        assert (
            cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))["action"]
            == "ignored"
        )
        cloud.send("image_scanned", ecr_image_scan("sagedock/iris", DIGEST, [run_id], {"CRITICAL": 1}))
        # Then the run failed at build without training
        assert cloud.run(run_id)["error"]["code"] == "ImageVulnerable"
        assert cloud.sagemaker.named("create_training_job") == []
