"""A training job's secondary status (Starting, Downloading, Training, ...) on the run's open train stage."""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.domain.errors import StaleEvent
from chalicelib.domain.event_models import TrainingJobStateChange
from chalicelib.domain.models import Run, Stage, Status
from chalicelib.flows.outcomes import Advanced, Ignored
from chalicelib.observability import logger
from chalicelib.services import Services


def _iso(epoch_millis: float) -> str:
    """Epoch milliseconds (SageMaker's event times) as the record's ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(epoch_millis / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def describe(event: TrainingJobStateChange) -> tuple[str, str] | None:
    """The event's progress text and when that step began; None when it names no secondary status.

    The text is the secondary status and, when SageMaker gives one, its latest transition's message
    ("Downloading: Downloading input data"). The time is that transition's StartTime (else the job's
    LastModifiedTime), so that events can be ordered however late they come.
    """
    status = event.secondary_status
    if not status:
        return None
    latest = max(event.secondary_status_transitions, key=lambda t: t.start_time, default=None)
    message = (latest.status_message or "").strip() if latest and latest.status == status else ""
    text = f"{status}: {message.splitlines()[0]}" if message else status
    if latest is not None:
        when = latest.start_time
    elif event.last_modified_time is not None:
        when = event.last_modified_time
    else:
        return None  # an event that cannot be ordered is not recorded: it could undo a newer one
    return text, _iso(when)


def record(run: Run, *, job: str, progress: str, at: str, now: str) -> Run:
    """The run with `progress` on its open train stage; StaleEvent when it does not apply or changes nothing.

    Applies only to a TRAINING run of that training job; a step older than the recorded one is stale, so
    late and replayed events never move the progress backwards. `updated_at` moves (the record changed);
    the status does not, so no run event is emitted.
    """
    if run.status != Status.TRAINING or run.training_job_name != job:
        raise StaleEvent(
            f"training progress: run {run.run_id} is {run.status} with job {run.training_job_name}"
        )
    if not run.stages or run.stages[-1].stage != Stage.TRAIN or run.stages[-1].ended_at is not None:
        raise StaleEvent(f"training progress: run {run.run_id} has no open train stage")
    entry = run.stages[-1]
    if entry.progress_at is not None and (at, progress) <= (entry.progress_at, entry.progress or ""):
        raise StaleEvent(
            f"training progress: run {run.run_id} has {entry.progress!r} from {entry.progress_at}"
        )
    updated = entry.model_copy(update={"progress": progress, "progress_at": at})
    return run.model_copy(update={"stages": (*run.stages[:-1], updated), "updated_at": now})


def training_progressed(event: TrainingJobStateChange, run: Run, svc: Services) -> Advanced | Ignored:
    """Record an InProgress event's secondary status on the run: a progress update, not a transition."""
    described = describe(event)
    if described is None:
        return _ignored("training event without a secondary status", run.run_id)
    progress, at = described
    try:
        svc.runs.update(
            run.run_id,
            lambda r: record(r, job=event.training_job_name, progress=progress, at=at, now=svc.clock()),
        )
    except StaleEvent as exc:
        return _ignored(str(exc), run.run_id)
    logger.info("training progress recorded", extra={"progress": progress})
    return Advanced("progress", run.run_id, detail={"progress": progress})


def _ignored(reason: str, run_id: str) -> Ignored:
    logger.info(f"event ignored: {reason}", extra={"run_id": run_id})
    return Ignored(reason, {"run_id": run_id})
