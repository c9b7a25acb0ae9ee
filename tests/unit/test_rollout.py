"""[deploy.update], [deploy.autoscaling] and the scan gate: what the manifest accepts, what it refuses before
any call, and the requests it turns into, checked against botocore's models of the SageMaker and
Application Auto Scaling APIs (types, required members, min/max), not only as dictionaries."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from chalicelib.adapters import clients as aws
from chalicelib.domain import rollout
from chalicelib.domain import scan_rules as scangate
from chalicelib.domain.errors import ManifestInvalid, SettingsError
from chalicelib.domain.manifest import DeployConfig, parse_manifest
from chalicelib.domain.models import ImageRef, Run, ScanResult, SourceRef, Status
from chalicelib.settings import load_settings
from tests.settings_env import PRIVATE, REQUIRED

CHALICELIB = Path(__file__).resolve().parents[2] / "chalicelib"


@cache
def _model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def problems_of(service: str, operation: str, request: dict[str, Any]) -> str:
    """botocore's report on a request (empty: the SDK would send it as it is)."""
    shape = _model(service).operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    return str(report.generate_report()) if report.has_errors() else ""


def deploy_of(toml: str) -> DeployConfig:
    return parse_manifest(toml, project="iris").deploy


def refused(toml: str) -> str:
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(toml, project="iris")
    return caught.value.message


# --- [deploy.update] -> UpdateEndpoint's DeploymentConfig ----------------------------------------------
CANARY = """
[deploy]
initial_instance_count = 4
[deploy.update]
strategy = "canary"
canary_percent = 25
wait_interval_seconds = 600
termination_wait_seconds = 120
maximum_execution_timeout_seconds = 3600
rollback_alarms = ["iris-5xx", "iris-latency"]
"""


def test_a_canary_update_becomes_a_blue_green_policy_sagemaker_accepts() -> None:
    # Given a canary of 25% with two rollback alarms
    config = rollout.deployment_config(deploy_of(CANARY).update)

    # Then UpdateEndpoint gets the traffic routing, the waits and the alarms
    assert config == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 600,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
            },
            "TerminationWaitInSeconds": 120,
            "MaximumExecutionTimeoutInSeconds": 3600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "iris-5xx"}, {"AlarmName": "iris-latency"}]},
    }
    # And botocore's model of UpdateEndpoint accepts it
    request = {"EndpointName": "iris", "EndpointConfigName": "iris-0123456789ab", "DeploymentConfig": config}
    assert problems_of("sagemaker", "UpdateEndpoint", request) == ""


@pytest.mark.parametrize(
    ("table", "routing"),
    [
        (
            'strategy = "all_at_once"\nwait_interval_seconds = 0',
            {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
        ),
        (
            'strategy = "linear"\nlinear_step_instances = 1',
            {
                "Type": "LINEAR",
                "WaitIntervalInSeconds": 300,
                "LinearStepSize": {"Type": "INSTANCE_COUNT", "Value": 1},
            },
        ),
        (
            'strategy = "canary"\ncanary_instances = 2',
            {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 300,
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 2},
            },
        ),
    ],
)
def test_each_strategy_is_a_valid_traffic_routing(table: str, routing: dict[str, Any]) -> None:
    update = deploy_of(f"[deploy]\ninitial_instance_count = 4\n[deploy.update]\n{table}\n").update
    config = rollout.deployment_config(update)
    assert config is not None
    assert config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == routing
    assert "AutoRollbackConfiguration" not in config  # no alarms: SageMaker wants none rather than []
    request = {"EndpointName": "iris", "EndpointConfigName": "c", "DeploymentConfig": config}
    assert problems_of("sagemaker", "UpdateEndpoint", request) == ""


def test_no_update_table_means_sagemakers_default_update() -> None:
    assert deploy_of("").update is None
    assert rollout.deployment_config(None) is None


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        # serverless endpoints have no instances to shift traffic by, nor to scale
        (
            '[deploy.serverless]\n[deploy.update]\nstrategy = "canary"\ncanary_percent = 10',
            "a serverless endpoint has none",
        ),
        (
            "[deploy.serverless]\n[deploy.autoscaling]\nmin_capacity = 1\nmax_capacity = 2\n"
            "target_invocations_per_instance = 100",
            "remove [deploy.autoscaling]",
        ),
        # Inf1: SageMaker would silently fall back to all at once without baking
        (
            '[deploy]\ninstance_type = "ml.inf1.xlarge"\ninitial_instance_count = 4\n[deploy.update]\n'
            'strategy = "linear"\nlinear_step_percent = 25',
            "Inf1",
        ),
        # sizes SageMaker refuses
        ('[deploy.update]\nstrategy = "canary"\ncanary_instances = 1', "at most 50%"),
        ('[deploy.update]\nstrategy = "canary"\ncanary_percent = 60', "at most 50%"),
        (
            '[deploy]\ninitial_instance_count = 20\n[deploy.update]\nstrategy = "linear"\n'
            "linear_step_instances = 1",
            "10-50%",
        ),
        ('[deploy.update]\nstrategy = "canary"', "canary_percent or canary_instances"),
        ('[deploy.update]\nstrategy = "linear"\ncanary_percent = 10', 'only applies to strategy = "canary"'),
        (
            '[deploy.update]\nstrategy = "canary"\ncanary_percent = 10\ncanary_instances = 1',
            "exclude each other",
        ),
        ("[deploy.update]\nwait_interval_seconds = 3601", "update.wait_interval_seconds"),
        ("[deploy.update]\ntermination_wait_seconds = -1", "update.termination_wait_seconds"),
        (
            "[deploy.update]\nmaximum_execution_timeout_seconds = 599",
            "update.maximum_execution_timeout_seconds",
        ),
        (
            "[deploy.update]\nrollback_alarms = [" + ", ".join(f'"a{i}"' for i in range(11)) + "]",
            "rollback_alarms",
        ),
        ('[deploy.update]\nrollback_alarms = ["  "]', "not a CloudWatch alarm name"),
        (
            "[deploy.update]\nwait_interval_seconds = 600\ntermination_wait_seconds = 100\n"
            "maximum_execution_timeout_seconds = 700",
            "must exceed wait_interval_seconds + termination_wait_seconds (700)",
        ),
        ('[deploy.update]\nstrategy = "blue_green"', "update.strategy"),
        ("[deploy.update]\nbake = 1", "update.bake: unknown key"),
        # autoscaling bounds
        (
            "[deploy.autoscaling]\nmin_capacity = 3\nmax_capacity = 2\ntarget_invocations_per_instance = 10",
            "below min_capacity",
        ),
        (
            "[deploy]\ninitial_instance_count = 5\n[deploy.autoscaling]\nmin_capacity = 1\nmax_capacity = 4\n"
            "target_invocations_per_instance = 10",
            "between autoscaling.min_capacity",
        ),
        (
            "[deploy.autoscaling]\nmin_capacity = 0\nmax_capacity = 2\ntarget_invocations_per_instance = 10",
            "autoscaling.min_capacity",
        ),
        ("[deploy.autoscaling]\nmin_capacity = 1\nmax_capacity = 2", "target_invocations_per_instance"),
    ],
)
def test_what_sagemaker_would_refuse_is_refused_at_upload_with_what_to_change(toml: str, says: str) -> None:
    assert says in refused(toml)


# --- [deploy.autoscaling] -> Application Auto Scaling --------------------------------------------------
SCALING = """
[deploy]
initial_instance_count = 2
[deploy.autoscaling]
min_capacity = 1
max_capacity = 6
target_invocations_per_instance = 70
scale_in_cooldown_seconds = 600
scale_out_cooldown_seconds = 30
"""


def test_autoscaling_registers_the_variant_with_target_tracking_on_invocations() -> None:
    scaling = deploy_of(SCALING).autoscaling
    assert scaling is not None
    register = rollout.register_request("iris", "AllTraffic", scaling)
    policy = rollout.policy_request("iris", "AllTraffic", scaling)
    assert register == {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/iris/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "MinCapacity": 1,
        "MaxCapacity": 6,
    }
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking == {
        "TargetValue": 70.0,
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "ScaleInCooldown": 600,
        "ScaleOutCooldown": 30,
    }
    assert problems_of("application-autoscaling", "RegisterScalableTarget", register) == ""
    assert problems_of("application-autoscaling", "PutScalingPolicy", policy) == ""


# --- the scan gate --------------------------------------------------------------------------------------
def _run(build: dict[str, Any]) -> Run:
    return Run(
        run_id="iris-0123456789ab",
        project="iris",
        status=Status.BUILDING,
        source=SourceRef(bucket="b", key="bundles/iris/v1.zip"),
        image=ImageRef(repository="r/sagedock/iris", tag="iris-0123456789ab"),
        created_at="2026-12-05T00:00:00.000Z",
        updated_at="2026-12-05T00:00:00.000Z",
        manifest={"build": build},
    )


def test_the_scan_gate_is_off_unless_the_bundle_or_the_stage_asks_and_fails_at_high_by_default() -> None:
    stage = load_settings(REQUIRED)
    assert parse_manifest("", project="iris").build.scan is False
    assert not scangate.required(_run({}), stage)
    build = parse_manifest("[build]\nscan = true\n", project="iris").model_dump(mode="json")["build"]
    assert scangate.required(_run(build), stage) and scangate.threshold(_run(build)) == "HIGH"
    assert "build.scan_fail_severity" in refused('[build]\nscan = true\nscan_fail_severity = "BAD"\n')
    # A stage can require the gate for every run, whatever the bundle says
    assert scangate.required(_run({}), load_settings({**REQUIRED, "SAGEDOCK_REQUIRE_IMAGE_SCAN": "true"}))


def test_a_stage_cannot_require_ecr_scans_of_images_it_pushes_to_a_private_registry() -> None:
    private = {**PRIVATE, "SAGEDOCK_REQUIRE_IMAGE_SCAN": "true"}
    with pytest.raises(SettingsError, match="SAGEDOCK_REQUIRE_IMAGE_SCAN"):
        load_settings({**REQUIRED, **private})


@pytest.mark.parametrize(
    ("counts", "fail_at", "blocked"),
    [
        ({"CRITICAL": 1, "LOW": 4}, "HIGH", {"CRITICAL": 1}),
        ({"HIGH": 2, "MEDIUM": 3}, "HIGH", {"HIGH": 2}),
        ({"MEDIUM": 3, "LOW": 9, "INFORMATIONAL": 1}, "HIGH", {}),
        ({"MEDIUM": 3, "LOW": 9}, "MEDIUM", {"MEDIUM": 3}),
        ({"CRITICAL": 0, "HIGH": 0}, "LOW", {}),
        ({"UNDEFINED": 2}, "INFORMATIONAL", {}),
    ],
)
def test_findings_at_or_above_the_threshold_block_the_image(
    counts: dict[str, int], fail_at: str, blocked: dict[str, int]
) -> None:
    result = ScanResult(digest="sha256:" + "ab" * 32, status="COMPLETE", counts=counts)
    assert scangate.blocking(result, fail_at) == blocked
    stop = scangate.verdict(result, fail_at)
    if blocked:
        assert stop is not None and stop.code == "ImageVulnerable"
        assert all(f"{sev} {n}" in stop.message for sev, n in blocked.items())
    else:
        assert stop is None


def test_a_scan_that_cannot_complete_stops_the_image_and_one_in_progress_is_waited_for() -> None:
    failed = ScanResult(digest="sha256:" + "ab" * 32, status="UNSUPPORTED_IMAGE")
    stop = scangate.verdict(failed, "HIGH")
    assert stop is not None and stop.code == "ImageScanFailed" and "UNSUPPORTED_IMAGE" in stop.message
    assert scangate.settled(failed)
    assert not scangate.settled(ScanResult(digest="d", status="IN_PROGRESS"))
    assert not scangate.settled(None)


# --- retries --------------------------------------------------------------------------------------------
def _services_with_clients() -> set[str]:
    """Every service chalicelib makes a client of (`client("...")` with a literal name)."""
    found: set[str] = set()
    for path in CHALICELIB.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "client"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(str(node.args[0].value))
    return found


def test_every_client_has_explicit_bounded_retries() -> None:
    services = _services_with_clients()
    assert {
        "dynamodb",
        "s3",
        "codebuild",
        "ecr",
        "sagemaker",
        "application-autoscaling",
        "cloudwatch",
    } <= services
    for service in services:
        config = aws.config_for(service)
        retries = config.retries
        assert retries is not None
        assert retries["mode"] == "standard", service
        assert 2 <= int(retries["total_max_attempts"]) <= 5, service  # at most 15 s of backoff per call
        assert config.connect_timeout and config.read_timeout, service
    with pytest.raises(KeyError, match="RETRIES"):
        aws.config_for("glacier")
