"""Application Auto Scaling adapter: an endpoint variant's scalable target and its target tracking policy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError, ParamValidationError

from chalicelib.adapters.clients import error_code, translate
from chalicelib.domain import rollout

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient

    from chalicelib.domain.rollout import AutoscalingConfig


class AutoScaling:
    """Registers and deregisters variants; both are idempotent (register and put replace, a missing target
    is already deregistered), so a replayed event changes nothing."""

    def __init__(self, client: ApplicationAutoScalingClient) -> None:
        self._client = client

    def register(self, endpoint: str, variant: str, scaling: AutoscalingConfig) -> None:
        """Make the variant a scalable target with sagedock's target tracking policy (or update both)."""
        doing = f"registering autoscaling of {endpoint}/{variant}"
        try:
            self._client.register_scalable_target(**rollout.register_request(endpoint, variant, scaling))
            self._client.put_scaling_policy(**rollout.policy_request(endpoint, variant, scaling))
        except (ClientError, ParamValidationError) as exc:
            raise translate(exc, doing) from exc

    def is_scaled(self, endpoint: str, variant: str) -> bool:
        """Whether the variant is a scalable target now."""
        try:
            found = self._client.describe_scalable_targets(
                ServiceNamespace="sagemaker",
                ResourceIds=[rollout.scalable_target_id(endpoint, variant)],
                ScalableDimension=rollout.SCALABLE_DIMENSION,
            )
        except ClientError as exc:
            raise translate(exc, f"reading the scaling of {endpoint}/{variant}") from exc
        return bool(found.get("ScalableTargets"))

    def deregister(self, endpoint: str, variant: str) -> bool:
        """Remove the scalable target and with it its policies; False when there was none.

        Asked first, not inferred from the refusal: a missing target is refused with ObjectNotFoundException
        by AWS and with a ValidationException by some emulators.
        """
        if not self.is_scaled(endpoint, variant):
            return False
        try:
            self._client.deregister_scalable_target(
                ServiceNamespace="sagemaker",
                ResourceId=rollout.scalable_target_id(endpoint, variant),
                ScalableDimension=rollout.SCALABLE_DIMENSION,
            )
        except ClientError as exc:
            if error_code(exc) == "ObjectNotFoundException":  # deregistered concurrently
                return False
            raise translate(exc, f"deregistering autoscaling of {endpoint}/{variant}") from exc
        return True
