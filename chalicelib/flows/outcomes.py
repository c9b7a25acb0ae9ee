"""What a flow did with its event, as types (ignored, failed the run, moved it on), and the writes behind.

Flows branch on these (`isinstance(outcome, Ignored)`), never on a dict's keys; a handler turns the final
one into the JSON its Lambda returns (`as_dict`), which is what the logs and the tests read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.domain import statemachine as sm
from chalicelib.domain.errors import StaleEvent
from chalicelib.domain.models import STAGE_OF_STATUS, Run, Stage, Status
from chalicelib.observability import count, logger

if TYPE_CHECKING:
    from chalicelib.services import Services


@dataclass(frozen=True)
class Ignored:
    """The event no longer applies (a replay, another project's, a run that moved on): nothing was written."""

    reason: str
    keys: Mapping[str, Any] = field(default_factory=dict)
    action: str = "ignored"

    def as_dict(self) -> dict[str, Any]:
        """The Lambda's answer."""
        return {"action": self.action, "reason": self.reason, **self.keys}


@dataclass(frozen=True)
class Failed:
    """The run ended FAILED at `stage` (None: rejected before it had one) with `code`."""

    run_id: str
    code: str
    stage: Stage | None = None
    action: str = "failed"

    def as_dict(self) -> dict[str, Any]:
        """The Lambda's answer."""
        answer: dict[str, Any] = {"action": self.action, "run_id": self.run_id, "code": self.code}
        if self.stage is not None:
            answer["stage"] = self.stage.value
        return answer


@dataclass(frozen=True)
class Advanced:
    """The run moved on (`action` says how); `detail` adds what was started (a build id, an endpoint)."""

    action: str
    run_id: str
    status: Status | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The Lambda's answer."""
        answer: dict[str, Any] = {"action": self.action, "run_id": self.run_id}
        if self.status is not None:
            answer["status"] = self.status.value
        return answer | dict(self.detail)


@dataclass(frozen=True)
class TrainingStarted:
    """This delivery created the run's training job `job`."""

    run_id: str
    status: Status
    job: str
    action: str = "training started"

    def as_dict(self) -> dict[str, Any]:
        """The Lambda's answer."""
        return {"action": self.action, "run_id": self.run_id, "status": self.status.value, "job": self.job}


Outcome = Ignored | Failed | Advanced | TrainingStarted


def ignored(reason: str, **keys: Any) -> Ignored:
    """Log and count an event that no longer applies."""
    logger.info(f"event ignored: {reason}", extra=keys)
    count("EventsIgnored")
    return Ignored(reason, keys)


def record_failure(svc: Services, run_id: str, stage: Stage, code: str, message: str) -> Failed | Ignored:
    """End the run FAILED at `stage` with an error a person can act on (ignored if it moved on meanwhile)."""
    try:
        run = svc.runs.update(
            run_id, lambda r: sm.fail(r, stage=stage, code=code, message=message, now=svc.clock())
        )
    except StaleEvent as exc:
        return ignored(str(exc), run_id=run_id)
    logger.warning("run failed", extra={"stage": stage.value, "code": code, "error_message": message})
    count("RunsFailed", stage=stage.value)
    return Failed(run.run_id, code, stage)


@dataclass(frozen=True)
class Applied:
    """A transition that was recorded: its outcome and the run as written."""

    outcome: Advanced
    run: Run


def apply(svc: Services, run_id: str, change: Callable[[Run], Run], action: str) -> Applied | Ignored:
    """Record a transition with a conditional write; Ignored when the event no longer applied."""
    try:
        run = svc.runs.update(run_id, change)
    except StaleEvent as exc:
        return ignored(str(exc), run_id=run_id)
    if run.status == Status.SUCCEEDED:
        count("RunsSucceeded")
    elif run.status in STAGE_OF_STATUS:
        count("StageStarted", stage=STAGE_OF_STATUS[run.status].value)
    logger.info(action, extra={"status": run.status.value})
    return Applied(Advanced(action, run.run_id, run.status), run)


def transition(svc: Services, run_id: str, change: Callable[[Run], Run], action: str) -> Advanced | Ignored:
    """`apply`, keeping only the outcome."""
    applied = apply(svc, run_id, change, action)
    return applied if isinstance(applied, Ignored) else applied.outcome
