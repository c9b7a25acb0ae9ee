"""[deploy.update] and [deploy.autoscaling]: how an endpoint changes and scales, checked as SageMaker would.

SageMaker refuses, or silently ignores, some combinations only when UpdateEndpoint is called, after a build
and a training job have been paid for; `check_deploy` refuses them at upload, with what to change.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# SageMaker's limits (API reference: TrafficRoutingConfig, BlueGreenUpdatePolicy, AutoRollbackConfig).
MAX_WAIT_SECONDS: Final = 3600
MAX_TERMINATION_WAIT_SECONDS: Final = 3600
MIN_EXECUTION_TIMEOUT_SECONDS: Final = 600
MAX_EXECUTION_TIMEOUT_SECONDS: Final = 28800
MAX_ROLLBACK_ALARMS: Final = 10
MAX_CANARY_SHARE: Final = 0.5  # canary <= 50% of the variant's instances
LINEAR_SHARE: Final = (0.1, 0.5)  # each linear step 10-50% of the variant's instances
INVOCATIONS_METRIC: Final = "SageMakerVariantInvocationsPerInstance"
SCALABLE_DIMENSION: Final = "sagemaker:variant:DesiredInstanceCount"


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class UpdateConfig(_Table):
    """[deploy.update]: the blue/green traffic shifting of an update, and the alarms that roll it back.

    Sizes are a percentage of the variant's instances (`*_percent`) or a number of them (`*_instances`).
    """

    strategy: Literal["all_at_once", "canary", "linear"] = "all_at_once"
    canary_percent: int | None = Field(default=None, ge=1, le=100)
    canary_instances: int | None = Field(default=None, ge=1)
    linear_step_percent: int | None = Field(default=None, ge=1, le=100)
    linear_step_instances: int | None = Field(default=None, ge=1)
    wait_interval_seconds: int = Field(default=300, ge=0, le=MAX_WAIT_SECONDS)
    termination_wait_seconds: int = Field(default=0, ge=0, le=MAX_TERMINATION_WAIT_SECONDS)
    maximum_execution_timeout_seconds: int | None = Field(
        default=None, ge=MIN_EXECUTION_TIMEOUT_SECONDS, le=MAX_EXECUTION_TIMEOUT_SECONDS
    )
    rollback_alarms: list[str] = Field(default_factory=list, max_length=MAX_ROLLBACK_ALARMS)

    @model_validator(mode="after")
    def _sizes_match_strategy(self) -> UpdateConfig:
        canary = [n for n in ("canary_percent", "canary_instances") if getattr(self, n) is not None]
        linear = [n for n in ("linear_step_percent", "linear_step_instances") if getattr(self, n) is not None]
        for names, strategy in ((canary, "canary"), (linear, "linear")):
            if len(names) > 1:
                raise ValueError(f"{' and '.join(names)} exclude each other: give the size one way")
            if self.strategy == strategy and not names:
                raise ValueError(
                    f'strategy = "{strategy}" needs {strategy}_* size: set {_size_keys(strategy)}'
                )
            if names and self.strategy != strategy:
                raise ValueError(f'{names[0]} only applies to strategy = "{strategy}"')
        waits = self.wait_interval_seconds + self.termination_wait_seconds
        if (
            self.maximum_execution_timeout_seconds is not None
            and self.maximum_execution_timeout_seconds <= waits
        ):
            raise ValueError(
                f"maximum_execution_timeout_seconds ({self.maximum_execution_timeout_seconds}) must exceed "
                f"wait_interval_seconds + termination_wait_seconds ({waits}), as SageMaker requires"
            )
        for alarm in self.rollback_alarms:
            if not alarm.strip() or len(alarm) > 255:
                raise ValueError(
                    f"rollback_alarms: {alarm!r} is not a CloudWatch alarm name (1-255 characters)"
                )
        return self


def _size_keys(strategy: str) -> str:
    return (
        "canary_percent or canary_instances"
        if strategy == "canary"
        else ("linear_step_percent or linear_step_instances")
    )


class AutoscalingConfig(_Table):
    """[deploy.autoscaling]: target tracking on invocations per instance, through Application Auto Scaling."""

    min_capacity: int = Field(ge=1)
    max_capacity: int = Field(ge=1)
    target_invocations_per_instance: float = Field(gt=0)
    scale_in_cooldown_seconds: int = Field(default=300, ge=0)
    scale_out_cooldown_seconds: int = Field(default=60, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingConfig:
        if self.max_capacity < self.min_capacity:
            raise ValueError(
                f"max_capacity ({self.max_capacity}) is below min_capacity ({self.min_capacity})"
            )
        return self


def check_deploy(
    *,
    serverless: bool,
    instance_type: str | None,
    instance_count: int | None,
    update: UpdateConfig | None,
    autoscaling: AutoscalingConfig | None,
) -> list[str]:
    """What SageMaker would refuse (or silently not do) in this [deploy] table: one message per problem."""
    problems: list[str] = []
    shifting = update is not None and update.strategy != "all_at_once"
    if serverless and shifting:
        assert update is not None
        problems.append(
            f'update.strategy = "{update.strategy}" shifts traffic by instances, and a serverless endpoint '
            'has none: use strategy = "all_at_once" (rollback_alarms still apply) or instances'
        )
    if serverless and autoscaling is not None:
        problems.append(
            "autoscaling scales instances (SageMakerVariantInvocationsPerInstance) and a serverless endpoint "
            "has none: remove [deploy.autoscaling] (serverless scales with max_concurrency)"
        )
    if shifting and instance_type and instance_type.startswith("ml.inf1."):
        assert update is not None
        problems.append(
            f"{instance_type} (Inf1) endpoints cannot use canary or linear shifting (SageMaker falls back "
            'to all at once without baking): use strategy = "all_at_once" or another instance type'
        )
    if update is not None and instance_count:
        problems.extend(_size_problems(update, instance_count))
    if (
        autoscaling is not None
        and instance_count
        and not (autoscaling.min_capacity <= instance_count <= autoscaling.max_capacity)
    ):
        problems.append(
            f"initial_instance_count ({instance_count}) must lie between autoscaling.min_capacity "
            f"({autoscaling.min_capacity}) and autoscaling.max_capacity ({autoscaling.max_capacity})"
        )
    return problems


def _size_problems(update: UpdateConfig, instances: int) -> list[str]:
    if update.strategy == "canary":
        share = _share(update.canary_percent, update.canary_instances, instances)
        if share > MAX_CANARY_SHARE:
            return [
                f"the canary must be at most 50% of the variant's {instances} instance(s): lower "
                "canary_percent / canary_instances (or raise initial_instance_count)"
            ]
    if update.strategy == "linear":
        share = _share(update.linear_step_percent, update.linear_step_instances, instances)
        low, high = LINEAR_SHARE
        if not low <= share <= high:
            return [
                f"each linear step must be 10-50% of the variant's {instances} instance(s): change "
                "linear_step_percent / linear_step_instances (or initial_instance_count)"
            ]
    return []


def _share(percent: int | None, count: int | None, instances: int) -> float:
    return percent / 100 if percent is not None else (count or 0) / instances


# --- requests ------------------------------------------------------------------------------------------
def deployment_config(update: UpdateConfig | None) -> dict[str, Any] | None:
    """UpdateEndpoint's DeploymentConfig for a [deploy.update] table, or None (SageMaker's default)."""
    if update is None:
        return None
    routing: dict[str, Any] = {
        "Type": update.strategy.upper(),
        "WaitIntervalInSeconds": update.wait_interval_seconds,
    }
    if update.strategy == "canary":
        routing["CanarySize"] = _capacity(update.canary_percent, update.canary_instances)
    elif update.strategy == "linear":
        routing["LinearStepSize"] = _capacity(update.linear_step_percent, update.linear_step_instances)
    policy: dict[str, Any] = {
        "TrafficRoutingConfiguration": routing,
        "TerminationWaitInSeconds": update.termination_wait_seconds,
    }
    if update.maximum_execution_timeout_seconds is not None:
        policy["MaximumExecutionTimeoutInSeconds"] = update.maximum_execution_timeout_seconds
    config: dict[str, Any] = {"BlueGreenUpdatePolicy": policy}
    if update.rollback_alarms:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": name} for name in update.rollback_alarms]
        }
    return config


def _capacity(percent: int | None, count: int | None) -> dict[str, Any]:
    if percent is not None:
        return {"Type": "CAPACITY_PERCENT", "Value": percent}
    return {"Type": "INSTANCE_COUNT", "Value": count}


def scalable_target_id(endpoint: str, variant: str) -> str:
    """Application Auto Scaling's ResourceId of an endpoint variant."""
    return f"endpoint/{endpoint}/variant/{variant}"


def policy_name(endpoint: str, variant: str) -> str:
    """The one target tracking policy sagedock keeps on a variant (PutScalingPolicy replaces it by name)."""
    return f"sagedock-{endpoint}-{variant}-invocations"


def register_request(endpoint: str, variant: str, scaling: AutoscalingConfig) -> dict[str, Any]:
    """RegisterScalableTarget arguments (the service-linked role is used: no RoleARN)."""
    return {
        "ServiceNamespace": "sagemaker",
        "ResourceId": scalable_target_id(endpoint, variant),
        "ScalableDimension": SCALABLE_DIMENSION,
        "MinCapacity": scaling.min_capacity,
        "MaxCapacity": scaling.max_capacity,
    }


def policy_request(endpoint: str, variant: str, scaling: AutoscalingConfig) -> dict[str, Any]:
    """PutScalingPolicy arguments: target tracking on SageMakerVariantInvocationsPerInstance."""
    return {
        "PolicyName": policy_name(endpoint, variant),
        "ServiceNamespace": "sagemaker",
        "ResourceId": scalable_target_id(endpoint, variant),
        "ScalableDimension": SCALABLE_DIMENSION,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": float(scaling.target_invocations_per_instance),
            "PredefinedMetricSpecification": {"PredefinedMetricType": INVOCATIONS_METRIC},
            "ScaleInCooldown": scaling.scale_in_cooldown_seconds,
            "ScaleOutCooldown": scaling.scale_out_cooldown_seconds,
        },
    }
