"""The user's rollback alarm the safe-deployment tests put on an endpoint (moto and the local cloud alike)."""

from __future__ import annotations

from typing import Any


def put_rollback_alarm(cloudwatch: Any, name: str, endpoint: str = "iris") -> None:
    """A user's alarm on the endpoint's 5xx errors, as a rollback alarm would be (no data yet: not ALARM)."""
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
