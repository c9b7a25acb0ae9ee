"""Logger and metrics, created once per process; the run id is the correlation key of every log line."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

NAMESPACE = "sagedock"
logger = Logger(service="sagedock")


def count(name: str, *, stage: str | None = None) -> None:
    """Emit one count (EMF): RunsStarted, StageStarted, RunsSucceeded, RunsFailed, EventsIgnored..."""
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value="sagedock")
        if stage:
            metric.add_dimension(name="stage", value=stage)
