"""The training stage: start the run's training job at most once, and the job's state changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.domain import names, specs
from chalicelib.domain import scan_rules as scangate
from chalicelib.domain import statemachine as sm
from chalicelib.domain.errors import BundleRejected, StaleEvent, UpstreamError
from chalicelib.domain.log_locations import TRAINING_JOBS_GROUP
from chalicelib.domain.models import Run, ScanResult, Stage, Status
from chalicelib.flows import preflight, training_progress
from chalicelib.flows.deploy import deploy, serve
from chalicelib.flows.log_reading import with_log_tail
from chalicelib.flows.outcomes import (
    Ignored,
    Outcome,
    TrainingStarted,
    apply,
    ignored,
    record_failure,
)
from chalicelib.flows.scan_gate import scan_gate
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.domain.event_models import (
        TrainingJobStateChange,
    )
    from chalicelib.services import Services


def start_training(svc: Services, run: Run, digest: str, *, scan: ScanResult | None = None) -> Outcome:
    serve_only = not specs.train_enabled(run)
    if run.status == Status.TRAINING and run.image is not None and run.image.digest == digest:
        # An earlier delivery (or the other of the push and build events) recorded TRAINING; it may have
        # stopped before creating the job, so make sure the job exists (at most once).
        return launch_training(svc, run)
    if serve_only and run.status == Status.DEPLOYING:
        return serve(svc, run, digest)  # a replay: the deploy is made sure of, or ignored for another digest
    if run.status != Status.BUILDING:
        return ignored(f"image already handled; run is {run.status}", run_id=run.run_id)
    assert run.image is not None
    if scangate.required(run, svc.settings):
        gate = scan_gate(svc, run, digest, scan)
        if not isinstance(gate, ScanResult):
            return gate
        scan = gate
    if serve_only:
        return serve(svc, run, digest, scan=scan)
    uri = f"{run.image.repository}@{digest}"
    job_name = names.training_job_name(run.run_id, run.attempt)

    def change(current: Run) -> Run:
        scanned = scangate.with_result(current, scan)
        return sm.start_training(scanned, digest=digest, uri=uri, job_name=job_name, now=svc.clock())

    # Recorded before the job is created, so that the job's events, however early, find the run TRAINING.
    started = apply(svc, run.run_id, change, "training starting")
    if isinstance(started, Ignored):  # a concurrent delivery got there first
        return started
    return launch_training(svc, started.run)


def launch_training(svc: Services, run: Run) -> Outcome:
    """Create the run's recorded training job, at most once; a replay that finds it created is ignored."""
    assert run.image is not None
    assert run.image.uri
    assert run.training_job_name
    job_name = run.training_job_name
    request = specs.training_job_request(run, svc.settings, job_name=job_name, image_uri=run.image.uri)
    created: list[bool] = []

    def create() -> None:
        # Inside the at-most-once action: data deleted while the image built fails here, not in SageMaker
        # minutes later; a replay after the job was created checks nothing.
        preflight.check_channels(svc, request)
        created.append(svc.sagemaker.create_training_job(request))

    try:
        svc.once(f"train:{job_name}", create)
    except StaleEvent as exc:
        return ignored(str(exc), run_id=run.run_id)
    except (UpstreamError, BundleRejected) as exc:
        return record_failure(svc, run.run_id, Stage.TRAIN, exc.code, exc.message)
    if not created or created[0] is False:
        return ignored(
            f"training job {job_name} already started; run is {run.status}", run_id=run.run_id, job=job_name
        )
    return TrainingStarted(run.run_id, run.status, job_name)


# --- Training job state change: deploy, or fail ---------------------------------------------------------
def training_state_changed(event: TrainingJobStateChange, svc: Services) -> Outcome:
    """A training job changed: InProgress records its secondary status; Failed/Stopped fails the run;
    Completed creates model, config, endpoint."""
    run_id = event.tags.get("sagedock:run-id") or names.run_id_from_training_job(event.training_job_name)
    run = svc.runs.find(run_id) if run_id else None
    if run is None:
        return ignored("training job of no known run", job=event.training_job_name)
    logger.set_correlation_id(run.run_id)
    if run.training_job_name != event.training_job_name:
        return ignored("event of another training job than the run's", job=event.training_job_name)
    status = event.training_job_status
    if status == "Failed":
        reason = (event.failure_reason or "").strip()
        message = reason.splitlines()[0] if reason else "training failed without a reason"
        message = with_log_tail(message, svc.logs, TRAINING_JOBS_GROUP, f"{event.training_job_name}/")
        return record_failure(svc, run.run_id, Stage.TRAIN, "TrainingFailed", message)
    if status == "Stopped":
        return record_failure(
            svc,
            run.run_id,
            Stage.TRAIN,
            "TrainingStopped",
            f"training job {event.training_job_name} was stopped",
        )
    if status == "InProgress":
        return training_progress.training_progressed(event, run, svc)
    if status != "Completed":
        return ignored(f"training is {status}", run_id=run.run_id)
    return deploy(svc, run)
