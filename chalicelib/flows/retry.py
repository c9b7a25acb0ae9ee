"""POST /runs/{id}/retry: a FAILED run restarts from its failed stage as a new attempt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.domain import names
from chalicelib.domain import statemachine as sm
from chalicelib.domain.errors import Conflict, TransientError
from chalicelib.domain.models import ImageRef, Run, Stage
from chalicelib.flows.build import launch_and_record, repository_uri
from chalicelib.flows.deploy import deploy
from chalicelib.flows.outcomes import (
    record_failure,
)
from chalicelib.flows.train import launch_training
from chalicelib.observability import count, logger

if TYPE_CHECKING:
    from chalicelib.services import Services


# --- Retry (HTTP) ---------------------------------------------------------------------------------------
def retry(run_id: str, svc: Services) -> Run:
    """Restart a FAILED run from its failed stage as a new attempt.

    As for an event, the new attempt is recorded before its work starts (so that the work's events find
    it); work that cannot start ends the attempt FAILED with the reason, ready to be retried again.
    """
    run = svc.runs.get(run_id)
    stage = sm.retry_stage(run)
    attempt = run.attempt + 1
    fields: dict[str, Any] = {}
    if stage == Stage.BUILD:
        repository = run.image.repository if run.image else repository_uri(svc, run)
        fields = {"image": ImageRef(repository=repository, tag=run_id), "build_id": None, "scan": None}
    elif stage == Stage.TRAIN:
        if run.image is None or not run.image.uri:
            raise Conflict(f"run {run.run_id} has no image to train on; it restarts from the build")
        fields = {"training_job_name": names.training_job_name(run.run_id, attempt)}
    elif stage == Stage.DEPLOY:
        fields = {"endpoint_config_name": names.endpoint_config_name(run.run_id, attempt)}
    now = svc.clock()
    updated = svc.runs.update(
        run_id,
        lambda r: sm.retry(r, now=now, **fields) if r.attempt == run.attempt else _raise_stale(r),
    )
    count("StageStarted", stage=stage.value)
    launch = {Stage.BUILD: launch_and_record, Stage.TRAIN: launch_training, Stage.DEPLOY: deploy}[stage]
    try:
        outcome = launch(svc, updated)
    except TransientError as exc:
        record_failure(svc, run_id, stage, exc.code, f"{exc.message} (retry the run again)")
        raise
    logger.info(f"retried {stage.value}", extra={"outcome": outcome.as_dict()})
    return svc.runs.get(run_id)


def _raise_stale(run: Run) -> Run:
    raise Conflict(f"run {run.run_id} was retried concurrently (now attempt {run.attempt})")
