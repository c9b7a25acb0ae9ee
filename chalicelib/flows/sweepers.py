"""The sweepers: what a lost event or a dead writer left undone, redone on a schedule.

`sweep_scans`: a run waiting for its image's scan advances even when ECR's scan event is lost.
`publish_pending`: the run events their writer could not publish (PutEvents failed, the Lambda died).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import TYPE_CHECKING

from chalicelib.domain.errors import NotFound, StaleEvent, TransientError
from chalicelib.domain.models import Run, Status
from chalicelib.flows.outcomes import Advanced, Outcome, TrainingStarted, ignored
from chalicelib.flows.train import start_training
from chalicelib.observability import count, logger

if TYPE_CHECKING:
    from chalicelib.ports import OutboxPort, RunsPort
    from chalicelib.services import Services


def sweep_scans(svc: Services, limit: int = 100) -> dict[str, int]:
    """Ask ECR for the scan of every run waiting for one, as its scan event would have; counts for the log.

    A scan that has settled starts the training job or fails the run (the path the event takes, so a late
    event changes nothing); a wait longer than SAGEDOCK_IMAGE_SCAN_TIMEOUT_SECONDS fails it with
    ImageScanTimeout. A run whose ECR call failed transiently is left for the next round.
    """
    waiting = svc.runs.waiting_for_scan(limit)
    actions: Counter[str] = Counter()
    for run_id in waiting:
        try:
            outcome = scan_awaited(run_id, svc)
        except TransientError as exc:
            logger.warning(
                "scan not checked; next round", extra={"run_id": run_id, "error_message": exc.message}
            )
            count("ScanChecksDeferred")
            actions["deferred"] += 1
            continue
        actions[outcome.action] += 1
    return {"runs": len(waiting), **actions}


def scan_awaited(run_id: str, svc: Services) -> Outcome:
    """The scan sweeper's turn for a run marked as waiting for its image's scan (its ECR event may be lost).

    BUILDING: ask ECR as the push and build events did; a settled scan decides as its event would, a wait
    past the bound ends the run FAILED with ImageScanTimeout. TRAINING (the mark outlives the transition
    until the job surely exists): make sure the training job was created, at most once, then drop the mark;
    a serve-only run DEPLOYING on its image the same for its endpoint change.
    """
    run = svc.runs.find(run_id)
    if run is None or run.scan is None or not run.scan.waiting_since:
        return ignored("the run no longer waits for a scan", run_id=run_id)
    logger.set_correlation_id(run.run_id)
    if run.status == Status.BUILDING:
        outcome = start_training(svc, run, run.scan.digest)
    elif run.status == Status.TRAINING and run.image is not None and run.image.digest:
        outcome = start_training(svc, run, run.image.digest)
    elif run.status == Status.DEPLOYING and run.training_job_name is None and run.image and run.image.digest:
        outcome = start_training(svc, run, run.image.digest)  # a serve-only run: its deploy, made sure of
    else:
        return ignored(f"run is {run.status}", run_id=run_id)
    # The training job (a serve-only run: the endpoint change) exists: the sweeper need not look again.
    deployed = isinstance(outcome, Advanced) and "endpoint_action" in outcome.detail
    if isinstance(outcome, TrainingStarted) or deployed:
        with contextlib.suppress(StaleEvent):
            svc.runs.update(run_id, stop_waiting)
    return outcome


def stop_waiting(run: Run) -> Run:
    if run.scan is None or not run.scan.waiting_since:
        raise StaleEvent("not waiting")
    return run.model_copy(update={"scan": run.scan.model_copy(update={"waiting_since": None})})


def publish_pending(store: RunsPort, outbox: OutboxPort, limit: int = 100) -> dict[str, int]:
    """The sweeper: publish the events whose writer could not (their claim expired); counts for the log."""
    runs = store.with_pending_events(limit)
    published = 0
    for run_id in runs:
        try:
            published += outbox.recover(store, store.get(run_id))
        except NotFound:
            continue
    return {"runs": len(runs), "published": published}
