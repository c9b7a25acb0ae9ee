"""The local scheduler: the app's scheduled handlers fire at their rate with EventBridge's scheduled event."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from chalice.app import Chalice, CloudWatchEvent, Cron, Rate

from sagedock.local.router import Router
from sagedock.local.scheduler import (
    SCALE_ENV,
    Schedule,
    ScheduleError,
    Scheduler,
    rate_seconds,
    scale_from,
    scheduled_event,
    schedules,
)

WHEN = datetime(2026, 12, 5, 20, 30, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _app() -> Chalice:
    app = Chalice(app_name="scheduler-test")

    @app.schedule(Rate(5, unit=Rate.MINUTES), name="sweeper")
    def sweeper(event: CloudWatchEvent) -> None: ...

    @app.schedule("rate(1 hour)", name="hourly")
    def hourly(event: CloudWatchEvent) -> None: ...

    @app.on_cw_event({"source": ["aws.s3"]}, name="uploads")
    def uploads(event: CloudWatchEvent) -> None: ...

    return app


def test_the_schedules_are_the_apps_scheduled_handlers_with_their_rate() -> None:
    assert schedules(_app()) == [
        Schedule("sweeper", "rate(5 minutes)", 300.0),
        Schedule("hourly", "rate(1 hour)", 3600.0),
    ]


def test_the_deployed_app_has_its_two_sweepers_every_five_minutes() -> None:
    import app

    assert {s.name: s.period for s in schedules(app.app)} == {"publish_pending": 300.0, "sweep_scans": 300.0}


@pytest.mark.parametrize(
    ("expression", "seconds"), [("rate(1 minute)", 60), ("rate(2 hours)", 7200), ("rate(7 days)", 604800)]
)
def test_rate_expressions(expression: str, seconds: float) -> None:
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize(
    "expression", ["rate(5 minute)", "rate(1 minutes)", "rate(0 minutes)", "rate(5 weeks)"]
)
def test_a_rate_eventbridge_would_refuse_is_an_error(expression: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(repr(expression))):
        rate_seconds(expression)


def test_a_cron_schedule_is_refused_naming_the_handler() -> None:
    app = Chalice(app_name="cron")

    @app.schedule(Cron(0, 2, "*", "*", "?", "*"), name="nightly")
    def nightly(event: CloudWatchEvent) -> None: ...

    with pytest.raises(ScheduleError, match=r"^nightly: .*cron expressions are not emulated"):
        schedules(app)


def test_the_scale_setting() -> None:
    assert scale_from({}) == 1.0
    assert scale_from({SCALE_ENV: "300"}) == 300.0
    for bad in ("0", "-2", "fast", "inf", "nan"):
        with pytest.raises(ScheduleError, match=SCALE_ENV):
            scale_from({SCALE_ENV: bad})


def test_the_event_is_the_one_eventbridge_sends_a_scheduled_rules_target() -> None:
    event = scheduled_event(Schedule("sweeper", "rate(5 minutes)", 300), when=WHEN, region="eu-west-1")
    assert list(event) == [
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    ]
    assert event["version"] == "0" and event["source"] == "aws.events"
    assert event["detail-type"] == "Scheduled Event" and event["detail"] == {}
    assert event["time"] == "2026-12-05T20:30:00Z" and event["region"] == "eu-west-1"
    assert event["resources"] == ["arn:aws:events:eu-west-1:123456789012:rule/sagedock-local-sweeper"]
    assert event["id"] != scheduled_event(Schedule("sweeper", "", 300), when=WHEN)["id"]


def test_each_schedule_fires_once_per_scaled_interval_first_one_interval_after_start() -> None:
    clock = FakeClock()
    fired: list[tuple[str, dict[str, Any]]] = []
    scheduler = Scheduler(
        schedules(_app()),
        lambda name, event: fired.append((name, event)),
        scale=60.0,
        clock=clock,
        now=lambda: WHEN,
    )
    scheduler.arm()  # sweeper every 5 s, hourly every 60 s
    assert scheduler.tick() == 5.0 and fired == []
    clock.now += 4.9
    assert scheduler.tick() == pytest.approx(0.1) and fired == []
    clock.now += 0.1
    assert scheduler.tick() == pytest.approx(5.0)
    assert [name for name, _ in fired] == ["sweeper"]
    clock.now += (
        55.0  # 60 s after start: both are due; the sweeper's firings missed meanwhile are not caught up
    )
    scheduler.tick()
    assert [name for name, _ in fired] == ["sweeper", "sweeper", "hourly"]
    assert all(event["detail-type"] == "Scheduled Event" for _, event in fired)
    clock.now += 5.0
    scheduler.tick()
    assert [name for name, _ in fired][3:] == ["sweeper"]


def test_the_thread_fires_through_the_router_and_stops_cleanly() -> None:
    # Given an app whose scheduled handler records its events, invoked the way the router invokes handlers
    app = Chalice(app_name="scheduler-thread")
    seen: list[tuple[str, str, str]] = []
    changed = threading.Condition()

    @app.schedule(Rate(1, unit=Rate.MINUTES), name="sweeper")
    def sweeper(event: CloudWatchEvent) -> None:
        with changed:
            seen.append((event.source, event.detail_type, event.context.function_name))
            changed.notify_all()

    router = Router(app, workers=1, retry_delays=())
    scheduler = Scheduler(schedules(app), router.invoke, scale=600.0)  # every 0.1 s
    # When it runs until the handler has run three times
    scheduler.start()
    try:
        with changed:
            assert changed.wait_for(lambda: len(seen) >= 3, timeout=20), seen
    finally:
        began = time.monotonic()
        scheduler.stop()
        stopped_in = time.monotonic() - began
        router.close()
    # Then each run got the scheduled event with a Lambda context, and stop() ended the thread promptly
    assert seen[0] == ("aws.events", "Scheduled Event", "sweeper")
    assert not scheduler.running and stopped_in < 5
    assert {i.function for i in router.invocations} == {"sweeper"}
    assert all(i.error is None for i in router.invocations)


def test_a_closed_router_takes_no_more_invocations() -> None:
    router = Router(_app(), workers=1, retry_delays=())
    router.close()
    assert router.invoke("sweeper", scheduled_event(Schedule("sweeper", "", 300), when=WHEN)) is False
