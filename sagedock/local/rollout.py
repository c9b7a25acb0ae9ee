"""Blue/green traffic shifting as SageMaker does it for an UpdateEndpoint with a DeploymentConfig: the steps,
the baking periods watched by the rollback alarms, and which serve takes each invocation meanwhile."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

POLL_SECONDS = 0.25  # how often a baking period reads the alarms


class RolledBack(Exception):
    """A rollback alarm fired (or the update ran out of time): its message is the endpoint's FailureReason."""


@dataclass
class Shift:
    """During an update, the new serve's share of the traffic; invocations are split in that proportion."""

    new: Any
    weight: float
    _credit: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pick(self, old: Any) -> Any:
        """The serve of the next invocation: the new one `weight` of the time, evenly spread; else the old."""
        if old is None or self.weight >= 1:
            return self.new
        with self._lock:
            self._credit += self.weight
            if self._credit >= 1:
                self._credit -= 1
                return self.new
        return old


def _fraction(size: dict[str, Any] | None, instances: int) -> float:
    if not size:
        return 1.0
    value = float(size.get("Value", 0))
    share = value / 100 if size.get("Type") == "CAPACITY_PERCENT" else value / max(instances, 1)
    return min(max(share, 0.0), 1.0)


def traffic_steps(routing: dict[str, Any], instances: int) -> list[float]:
    """The new fleet's share after each step: canary then all, linear steps up to all, or all at once."""
    kind = routing.get("Type", "ALL_AT_ONCE")
    if kind == "CANARY":
        canary = _fraction(routing.get("CanarySize"), instances)
        return [canary, 1.0] if canary < 1 else [1.0]
    if kind == "LINEAR":
        step = _fraction(routing.get("LinearStepSize"), instances)
        count = max(1, math.ceil(1 / step)) if step > 0 else 1
        return [min(1.0, step * (i + 1)) for i in range(count)]
    return [1.0]


def bake(
    cloudwatch: Any,
    alarms: list[str],
    seconds: float,
    started: datetime,
    timeout: float,
    stopping: threading.Event,
) -> None:
    """Wait out a baking period; RolledBack as soon as one of `alarms` is in ALARM, or past the timeout."""
    end = time.monotonic() + seconds
    while True:
        if stopping.is_set():
            raise RolledBack("Deployment stopped: the local cloud is shutting down.")
        fired = _in_alarm(cloudwatch, alarms)
        if fired:
            raise RolledBack(
                f"Deployment rolled back: alarm(s) {', '.join(fired)} went to ALARM during the baking period."
            )
        if (datetime.now(started.tzinfo) - started).total_seconds() > timeout:
            raise RolledBack("Deployment rolled back: MaximumExecutionTimeoutInSeconds was exceeded.")
        if time.monotonic() >= end:
            return
        stopping.wait(min(POLL_SECONDS, max(0.0, end - time.monotonic())))


def _in_alarm(cloudwatch: Any, alarms: list[str]) -> list[str]:
    if not alarms:
        return []
    found = cloudwatch.describe_alarms(AlarmNames=alarms)
    every = [*found.get("MetricAlarms", []), *found.get("CompositeAlarms", [])]
    return sorted(a["AlarmName"] for a in every if a.get("StateValue") == "ALARM")
