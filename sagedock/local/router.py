"""The local Lambda service: each event reaches the handlers whose registered Chalice patterns match it.

The patterns are the app's own (`app.event_sources`), so what is routed locally is what the deployed rules
route; moto's EventBridge matcher applies them (moto already runs the local AWS APIs; where it differs from
EventBridge, see docs/local-cloud.md). Handlers are invoked asynchronously on a worker pool with the event
and a Lambda context, and a failed invocation is retried twice, as Lambda does for asynchronous invokes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sagedock.local.logs import invocation

log = logging.getLogger("local_cloud.router")


class PatternError(ValueError):
    """A handler's event pattern that EventBridge would refuse (its rule could never be created)."""


@dataclass(frozen=True)
class Subscription:
    """One `@app.on_cw_event` handler: its function name and its event pattern."""

    name: str
    pattern: Mapping[str, Any]

    def matcher(self) -> Any:
        """moto's EventBridge matcher for the pattern; PatternError names the handler if it is refused."""
        from moto.events.exceptions import InvalidEventPatternException
        from moto.events.models import EventPattern

        try:
            return EventPattern.load(json.dumps(self.pattern))
        except InvalidEventPatternException as exc:
            raise PatternError(f"{self.name}: event pattern refused: {exc.message}") from None


def subscriptions(app: Any) -> list[Subscription]:
    """The EventBridge-triggered handlers the app registered (what `chalice deploy` turns into rules)."""
    from chalice.app import CloudWatchEventConfig

    return [
        Subscription(source.name, source.event_pattern)
        for source in app.event_sources
        if isinstance(source, CloudWatchEventConfig)
    ]


@dataclass(frozen=True)
class Invocation:
    """The record of one handler invocation (for the log and for tests)."""

    function: str
    event_id: str
    detail_type: str
    attempts: int
    error: str | None


class Router:
    """Matches events against the app's patterns and invokes the matching handlers like Lambda."""

    def __init__(
        self,
        app: Any,
        *,
        workers: int = 4,
        retry_delays: Sequence[float] = (1.0, 2.0),
        memory_size: int = 512,
    ) -> None:
        self._app = app
        self._matchers = [(s.name, s.matcher()) for s in subscriptions(app)]
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambda")
        self._retry_delays = tuple(retry_delays)
        self._memory_size = memory_size
        self._pending = 0
        self._idle = threading.Condition()
        self._closed = False
        self.invocations: list[Invocation] = []

    def matching(self, event: Mapping[str, Any]) -> list[str]:
        """The handlers whose pattern matches the event."""
        return [name for name, matcher in self._matchers if matcher.matches_event(event)]

    def deliver(self, event: Mapping[str, Any]) -> list[str]:
        """Queue one asynchronous invocation per matching handler; returns their names."""
        names = self.matching(event)
        if not names:
            log.debug("no handler for %s from %s", event.get("detail-type"), event.get("source"))
        for name in names:
            if not self.invoke(name, event):
                return []
        return names

    def invoke(self, name: str, event: Mapping[str, Any]) -> bool:
        """Queue one asynchronous invocation of handler `name` (a rule's target); False once closed."""
        with self._idle:
            if self._closed:
                return False
            self._pending += 1
        self._pool.submit(self._invoke, name, dict(event))
        return True

    def _invoke(self, name: str, event: dict[str, Any]) -> None:
        from chalice.local import LambdaContext

        attempts, error, failure = 0, None, None
        try:
            for delay in (0.0, *self._retry_delays):
                if delay and not self._sleep(delay):
                    break
                attempts += 1
                context = LambdaContext(name, memory_size=self._memory_size, max_runtime_ms=900_000)
                try:
                    with invocation():
                        self._app.handler_map[name](event, context)
                    error = failure = None
                    break
                except Exception as exc:
                    error, failure = f"{type(exc).__name__}: {exc}", exc
                    log.warning("%s failed on %s (attempt %d): %s", name, event.get("id"), attempts, error)
            if error:
                log.error(
                    "%s gave up on event %s after %d attempts: %s",
                    name,
                    event.get("id"),
                    attempts,
                    error,
                    exc_info=failure,
                )
            self.invocations.append(
                Invocation(name, str(event.get("id")), str(event.get("detail-type")), attempts, error)
            )
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _sleep(self, seconds: float) -> bool:
        """Wait before a retry; False when the router closes meanwhile."""
        deadline = time.monotonic() + seconds
        with self._idle:
            while not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                self._idle.wait(left)
        return False

    def drain(self, timeout: float) -> bool:
        """Wait until no invocation is queued or running; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        """Stop accepting events, cancel pending retries and wait for running handlers."""
        with self._idle:
            self._closed = True
            self._idle.notify_all()
        self._pool.shutdown(wait=True, cancel_futures=True)
