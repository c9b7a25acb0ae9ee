"""Run events through an outbox on the run record: written with their transition, published after it.

A transition that changes a run's status (or starts a new attempt) appends one `Run State Change` to the
run's `outbox`, claimed by the writer, in the very conditional write that records the transition: the
event exists exactly when the transition does, however often the triggering event was delivered. The
writer then puts it on the bus and removes it from the outbox. A publish that fails (or a writer that dies)
leaves the entry in the outbox; once its claim expires, the next write to the run, a later event of the
run, or the sweeper (`publish_pending`, flows/sweepers.py) claims it with a conditional write and
publishes it. See
docs/events.md for the one window left for a duplicate.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.domain.errors import ConcurrentUpdate, NotFound, SagedockError
from chalicelib.domain.models import PendingEvent, Run, Status
from chalicelib.observability import count, logger

if TYPE_CHECKING:
    from chalicelib.ports import EventBusPort as EventBus
    from chalicelib.ports import RunsPort as RunStore

SOURCE = "sagedock"
DETAIL_TYPE = "Run State Change"
# Longer than any sagedock Lambda may run (the longest timeout is 120 s), so that a claim outlives its writer.
CLAIM_SECONDS = 300


def _parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def _later(timestamp: str, seconds: int) -> str:
    when = _parse(timestamp) + timedelta(seconds=seconds)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _stage_of(run: Run) -> str | None:
    if run.status == Status.FAILED and run.error is not None:
        return run.error.stage.value
    return run.stages[-1].stage.value if run.stages else None


def detail(previous: Run | None, run: Run, sequence: int) -> dict[str, Any]:
    """The `Run State Change` detail of a transition (docs/schemas/run-state-change.json)."""
    return {
        "run_id": run.run_id,
        "sequence": sequence,
        "project": run.project,
        "status": run.status.value,
        "previous_status": previous.status.value if previous is not None else None,
        "stage": _stage_of(run),
        "attempt": run.attempt,
        "image": run.image.model_dump(mode="json") if run.image else None,
        "endpoint_name": run.endpoint_name,
        "error": run.error.model_dump(mode="json") if run.error else None,
        "retrained_from": run.retrained_from,
        "path": f"/runs/{run.run_id}",
    }


def is_transition(previous: Run | None, new: Run) -> bool:
    """A new run, a new status or a new attempt (a retry of a FAILED run) is a transition; nothing else."""
    return previous is None or previous.status != new.status or previous.attempt != new.attempt


class Outbox:
    """Stages events in the run's write and publishes them after it; a failed publish is retried later."""

    def __init__(
        self, bus: Callable[[], EventBus], clock: Callable[[], str], claim_seconds: int = CLAIM_SECONDS
    ):
        self._bus = bus  # built on first publish: a write that changes no status needs no client
        self._clock = clock
        self._claim_seconds = claim_seconds

    def stage(self, previous: Run | None, new: Run) -> tuple[Run, str]:
        """`new` with its transition's event appended, and expired claims taken over; the claim token."""
        now = self._clock()
        claim = uuid.uuid4().hex
        until = _later(now, self._claim_seconds)
        outbox = tuple(
            entry.model_copy(update={"claim": claim, "claimed_until": until})
            if entry.claimed_until <= now
            else entry
            for entry in new.outbox
        )
        recorded = new.events_recorded
        if is_transition(previous, new):
            recorded += 1
            event = PendingEvent(
                sequence=recorded,
                time=now,
                detail=detail(previous, new, recorded),
                claim=claim,
                claimed_until=until,
            )
            outbox = (*outbox, event)
        return new.model_copy(update={"outbox": outbox, "events_recorded": recorded}), claim

    def flush(self, store: RunStore, run: Run, claim: str) -> int:
        """Publish the entries this writer claimed, in order, and drop the published ones from the outbox.

        Never raises: the transition is recorded already, and an entry left behind is published later.
        Returns how many were published.
        """
        mine = [entry for entry in run.outbox if entry.claim == claim]
        if not mine:
            return 0
        try:
            published = self._bus().put([self._entry(entry) for entry in mine])
        except SagedockError as exc:
            logger.warning(
                "run events not published; they stay in the outbox",
                extra={"run_id": run.run_id, "error_message": exc.message},
            )
            count("EventsNotPublished")
            return 0
        done = {entry.sequence for entry, ok in zip(mine, published, strict=True) if ok}
        if len(done) < len(mine):
            count("EventsNotPublished")
        if done:
            count("EventsPublished")
            self._release(store, run, done)
        return len(done)

    def recover(self, store: RunStore, run: Run) -> int:
        """Claim (with a conditional write) and publish the entries whose claim expired; how many were."""
        now = self._clock()
        if not any(entry.claimed_until <= now for entry in run.outbox):
            return 0
        claimed, claim = self.stage(run, run)
        try:
            written = store.save(claimed, expected_version=run.version)
        except ConcurrentUpdate:
            return 0  # the run changed meanwhile: a transition takes expired claims over, else the next round
        except SagedockError as exc:
            logger.warning("could not claim unpublished run events", extra={"error_message": exc.message})
            return 0
        return self.flush(store, written, claim)

    def _entry(self, entry: PendingEvent) -> dict[str, Any]:
        return {
            "Source": SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": json.dumps(entry.detail, separators=(",", ":")),
            "Time": _parse(entry.time),
        }

    @staticmethod
    def _release(store: RunStore, run: Run, sequences: set[int]) -> None:
        """Remove published entries, from the run as written; after a concurrent write, from a fresh read
        (so that no entry is lost or resurrected)."""
        current = run
        for _ in range(8):
            left = tuple(entry for entry in current.outbox if entry.sequence not in sequences)
            if len(left) == len(current.outbox):
                return
            try:
                store.save(current.model_copy(update={"outbox": left}), expected_version=current.version)
                return
            except ConcurrentUpdate:
                pass
            except SagedockError:
                break
            try:
                current = store.get(run.run_id)
            except NotFound:
                return
            except SagedockError:
                break
        logger.warning("published run events stay in the outbox", extra={"run_id": run.run_id})
