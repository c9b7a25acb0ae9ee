"""The local stand-in for scheduled rules: the app's `@app.schedule` handlers run at their own rate.

The schedules are the app's (`app.event_sources`), as `chalice package` deploys them; each firing is the
event EventBridge sends a scheduled rule's target (source `aws.events`, detail-type `Scheduled Event`, the
rule's ARN, an empty detail), handed to the router's asynchronous invocation like any routed event. The
rate may be sped up for tests and demos (SAGEDOCK_LOCAL_SCHEDULE_SCALE: 300 runs a five-minute schedule
every second).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sagedock.eventshapes import ACCOUNT, REGION, Event, envelope, iso_time

log = logging.getLogger("local_cloud.scheduler")

SCALE_ENV = "SAGEDOCK_LOCAL_SCHEDULE_SCALE"
RULE_PREFIX = "sagedock-local-"
_RATE = re.compile(r"rate\((\d+) (minute|hour|day)(s?)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
STOP_TIMEOUT = 10.0


class ScheduleError(ValueError):
    """A schedule the local cloud cannot run (or EventBridge would refuse), or a bad scale setting."""


@dataclass(frozen=True)
class Schedule:
    """One `@app.schedule` handler: its function name, its expression and its period in seconds."""

    name: str
    expression: str
    period: float


def rate_seconds(expression: str) -> float:
    """The period of `rate(N unit)`, with EventBridge's rule: the unit is singular for 1, plural above."""
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        raise ScheduleError(
            f"{expression!r}: the local cloud runs rate(N minutes|hours|days) schedules only (cron "
            "expressions are not emulated): use a Rate in app.py"
        )
    value, unit, plural = int(match[1]), match[2], match[3]
    if value < 1 or (value == 1) == bool(plural):
        raise ScheduleError(f"{expression!r}: EventBridge wants rate(1 {unit}) or rate(N {unit}s) with N > 1")
    return float(value * _UNIT_SECONDS[unit])


def schedules(app: Any) -> list[Schedule]:
    """The scheduled handlers the app registered (what `chalice package` turns into scheduled rules)."""
    from chalice.app import ScheduledEventConfig

    found = []
    for source in app.event_sources:
        if not isinstance(source, ScheduledEventConfig):
            continue
        expression = source.schedule_expression
        text = expression if isinstance(expression, str) else expression.to_string()
        try:
            found.append(Schedule(source.name, text, rate_seconds(text)))
        except ScheduleError as exc:
            raise ScheduleError(f"{source.name}: {exc}") from None
    return found


def scale_from(environ: Mapping[str, str]) -> float:
    """SAGEDOCK_LOCAL_SCHEDULE_SCALE (default 1: the app's own rate); a clear error when it is not > 0."""
    raw = environ.get(SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        scale = math.nan
    if not math.isfinite(scale) or scale <= 0:
        raise ScheduleError(
            f"{SCALE_ENV}={raw!r}: give a number above 0 (1 runs the schedules at their rate, 300 runs a "
            "five-minute schedule every second)"
        )
    return scale


def scheduled_event(
    schedule: Schedule, *, when: datetime, region: str = REGION, account: str = ACCOUNT
) -> Event:
    """What EventBridge sends a scheduled rule's target."""
    return envelope(
        source="aws.events",
        detail_type="Scheduled Event",
        detail={},
        resources=[f"arn:aws:events:{region}:{account}:rule/{RULE_PREFIX}{schedule.name}"],
        time=iso_time(when),
        account=account,
        region=region,
    )


class Scheduler:
    """Fires each schedule every `period / scale` seconds, first one interval after start, on one thread.

    A firing only queues an invocation (`invoke(name, event)`), so a slow handler never delays the clock;
    a firing missed while the process was suspended is not caught up, as EventBridge does not.
    """

    def __init__(
        self,
        entries: Sequence[Schedule],
        invoke: Callable[[str, Event], object],
        *,
        scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        region: str = REGION,
        account: str = ACCOUNT,
    ) -> None:
        if not math.isfinite(scale) or scale <= 0:
            raise ScheduleError(f"schedule scale {scale!r}: give a number above 0")
        self._entries = tuple(entries)
        self._invoke = invoke
        self._scale = scale
        self._clock = clock
        self._now = now
        self._region = region
        self._account = account
        self._due: dict[str, float] = {}
        self._wake = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def interval(self, schedule: Schedule) -> float:
        """Seconds between two firings of `schedule`, scaled."""
        return schedule.period / self._scale

    def arm(self) -> None:
        """Start the clock: each schedule is first due one interval from now (as a new rate rule)."""
        began = self._clock()
        self._due = {entry.name: began + self.interval(entry) for entry in self._entries}

    def tick(self) -> float:
        """Fire every schedule that is due; the seconds until the next one is."""
        now = self._clock()
        for entry in self._entries:
            due = self._due[entry.name]
            if due > now:
                continue
            event = scheduled_event(entry, when=self._now(), region=self._region, account=self._account)
            log.debug("%s fired (%s): event %s", entry.name, entry.expression, event["id"])
            self._invoke(entry.name, event)
            following = due + self.interval(entry)
            self._due[entry.name] = following if following > now else now + self.interval(entry)
        return max(0.0, min(self._due.values(), default=math.inf) - now)

    def start(self) -> None:
        """Arm the schedules and run them on a daemon thread until stop()."""
        if not self._entries or self._thread is not None:
            return
        self.arm()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()
        log.info(
            "schedules: %s",
            ", ".join(f"{e.name} every {self.interval(e):g}s ({e.expression})" for e in self._entries),
        )

    def _run(self) -> None:
        with self._wake:
            while not self._stopped:
                try:
                    wait = self.tick()
                except Exception:  # a firing that cannot be queued must not stop the other schedules
                    log.exception("a schedule could not fire")
                    wait = min(self.interval(entry) for entry in self._entries)
                self._wake.wait(wait)

    @property
    def running(self) -> bool:
        """Whether the scheduler's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop firing and wait for the thread (a firing in progress only queues an invocation)."""
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the scheduler did not stop within %.0fs", timeout)
