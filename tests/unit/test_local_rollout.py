"""The local cloud's blue/green shifting: the steps of each strategy, the split of invocations, the baking."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from sagedock.local.rollout import RolledBack, Shift, bake, traffic_steps


@pytest.mark.parametrize(
    ("routing", "instances", "steps"),
    [
        ({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}, 1, [1.0]),
        ({"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25}}, 4, [0.25, 1.0]),
        ({"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}, 4, [0.25, 1.0]),
        ({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50}}, 2, [0.5, 1.0]),
        (
            {"Type": "LINEAR", "LinearStepSize": {"Type": "INSTANCE_COUNT", "Value": 3}},
            10,
            [0.3, 0.6, 0.9, 1.0],
        ),
    ],
)
def test_each_strategy_moves_the_traffic_in_its_steps(
    routing: dict[str, Any], instances: int, steps: list[float]
) -> None:
    assert traffic_steps(routing, instances) == pytest.approx(steps)


def test_a_shift_sends_the_new_serve_its_share_of_invocations_evenly() -> None:
    shift = Shift(new="new", weight=0.25)
    picks = [shift.pick("old") for _ in range(8)]
    assert picks.count("new") == 2 and picks[3] == "new" and picks[7] == "new"
    assert Shift(new="new", weight=1.0).pick("old") == "new"


class FakeCloudWatch:
    def __init__(self) -> None:
        self.state: dict[str, str] = {"iris-5xx": "OK"}
        self.calls = 0

    def describe_alarms(self, AlarmNames: list[str]) -> dict[str, Any]:
        self.calls += 1
        return {"MetricAlarms": [{"AlarmName": n, "StateValue": self.state[n]} for n in AlarmNames]}


def test_an_alarm_in_alarm_during_the_bake_rolls_back_and_a_quiet_bake_ends() -> None:
    cloudwatch = FakeCloudWatch()
    now = datetime.now(UTC)
    bake(cloudwatch, ["iris-5xx"], 0.3, now, 3600, threading.Event())  # quiet: returns
    assert cloudwatch.calls >= 2
    cloudwatch.state["iris-5xx"] = "ALARM"
    with pytest.raises(RolledBack, match="iris-5xx"):
        bake(cloudwatch, ["iris-5xx"], 60, now, 3600, threading.Event())
    stopping = threading.Event()
    stopping.set()
    with pytest.raises(RolledBack, match="shutting down"):
        bake(cloudwatch, [], 60, now, 3600, stopping)
