"""Pure run transitions: each returns the next Run or raises StaleEvent; no I/O, so each rule is testable."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.errors import Conflict, StaleEvent
from chalicelib.domain.models import (
    STAGE_OF_STATUS,
    STATUS_OF_STAGE,
    ImageRef,
    Run,
    RunError,
    Stage,
    StageEntry,
    Status,
)

IN_PROGRESS = "IN_PROGRESS"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
SKIPPED = "SKIPPED"


def _close_current(stages: tuple[StageEntry, ...], status: str, now: str) -> tuple[StageEntry, ...]:
    if stages and stages[-1].ended_at is None:
        return (*stages[:-1], stages[-1].model_copy(update={"status": status, "ended_at": now}))
    return stages


def _open(
    stages: tuple[StageEntry, ...], stage: Stage, now: str, detail: str | None
) -> tuple[StageEntry, ...]:
    return (*stages, StageEntry(stage=stage, status=IN_PROGRESS, started_at=now, detail=detail))


def _require(run: Run, expected: Status, what: str) -> None:
    if run.status != expected:
        raise StaleEvent(f"{what}: run {run.run_id} is {run.status}, not {expected}")


def _advance(run: Run, to: Status, now: str, detail: str | None, **fields: Any) -> Run:
    stages = _close_current(run.stages, SUCCEEDED, now)
    if to in STAGE_OF_STATUS:
        stages = _open(stages, STAGE_OF_STATUS[to], now, detail)
    return run.model_copy(update={"status": to, "stages": stages, "updated_at": now, **fields})


def new_run(run: Run) -> Run:
    """A freshly received run: RECEIVED, with the validate stage open."""
    return run.model_copy(update={"stages": _open((), Stage.VALIDATE, run.created_at, None)})


def start_build(run: Run, *, image: ImageRef, now: str) -> Run:
    """RECEIVED -> BUILDING once the bundle is valid, before the build is launched.

    Recorded first so that a build event, however early, finds the run BUILDING; the build's id follows
    with record_build, and a run BUILDING without one is a launch to resume.
    """
    _require(run, Status.RECEIVED, "start build")
    return _advance(run, Status.BUILDING, now, "starting the build", image=image)


def record_build(run: Run, *, build_id: str, now: str) -> Run:
    """Attach the launched build's id (provenance), whatever its events have done to the run meanwhile."""
    if run.build_id is not None:
        raise StaleEvent(f"record build: run {run.run_id} already has build {run.build_id}")
    stages = run.stages
    if run.status == Status.BUILDING and stages and stages[-1].ended_at is None:
        stages = (*stages[:-1], stages[-1].model_copy(update={"detail": f"build {build_id}"}))
    return run.model_copy(update={"build_id": build_id, "stages": stages, "updated_at": now})


def start_training(run: Run, *, digest: str, uri: str, job_name: str, now: str) -> Run:
    """BUILDING -> TRAINING once the image is pushed (by ECR's event or the build's, whichever is first)."""
    _require(run, Status.BUILDING, "start training")
    assert run.image is not None
    image = run.image.model_copy(update={"digest": digest, "uri": uri})
    return _advance(
        run, Status.TRAINING, now, f"training job {job_name}", image=image, training_job_name=job_name
    )


def start_deploy(
    run: Run,
    *,
    model_artifact: str | None,
    model_name: str,
    endpoint_config_name: str,
    endpoint_name: str,
    now: str,
) -> Run:
    """TRAINING -> DEPLOYING once the model and endpoint config exist and the endpoint change started."""
    _require(run, Status.TRAINING, "start deploy")
    return _advance(
        run,
        Status.DEPLOYING,
        now,
        f"endpoint {endpoint_name} with config {endpoint_config_name}",
        model_artifact=model_artifact,
        model_name=model_name,
        endpoint_config_name=endpoint_config_name,
        endpoint_name=endpoint_name,
    )


def start_serving(
    run: Run,
    *,
    digest: str,
    uri: str,
    model_artifact: str | None,
    model_name: str,
    endpoint_config_name: str,
    endpoint_name: str,
    now: str,
) -> Run:
    """BUILDING -> DEPLOYING for a serve-only bundle (`[train] enabled = false`) once the image is pushed.

    The train stage is recorded SKIPPED; recorded before the model is made (as training is recorded before
    its job), so a failure of the deploy keeps the image and a retry restarts at deploy.
    """
    _require(run, Status.BUILDING, "start serving")
    assert run.image is not None
    image = run.image.model_copy(update={"digest": digest, "uri": uri})
    built = _close_current(run.stages, SUCCEEDED, now)
    skipped = StageEntry(
        stage=Stage.TRAIN, status=SKIPPED, started_at=now, ended_at=now, detail="train.enabled = false"
    )
    stages = _open(
        (*built, skipped), Stage.DEPLOY, now, f"endpoint {endpoint_name} with config {endpoint_config_name}"
    )
    return run.model_copy(
        update={
            "status": Status.DEPLOYING,
            "stages": stages,
            "updated_at": now,
            "image": image,
            "model_artifact": model_artifact,
            "model_name": model_name,
            "endpoint_config_name": endpoint_config_name,
            "endpoint_name": endpoint_name,
        }
    )


def succeed_without_deploy(run: Run, *, model_artifact: str, now: str) -> Run:
    """TRAINING -> SUCCEEDED when the manifest disables deployment."""
    _require(run, Status.TRAINING, "finish training")
    done = _advance(run, Status.SUCCEEDED, now, None, model_artifact=model_artifact)
    skipped = StageEntry(
        stage=Stage.DEPLOY, status=SKIPPED, started_at=now, ended_at=now, detail="deploy.enabled = false"
    )
    return done.model_copy(update={"stages": (*done.stages, skipped)})


def succeed(run: Run, *, now: str) -> Run:
    """DEPLOYING -> SUCCEEDED when the endpoint serves this run's config."""
    _require(run, Status.DEPLOYING, "finish deploy")
    return _advance(run, Status.SUCCEEDED, now, None)


def fail(run: Run, *, stage: Stage, code: str, message: str, now: str) -> Run:
    """Any non-terminal status -> FAILED at `stage`, if the run is still in (or before) that stage."""
    if run.status.terminal:
        raise StaleEvent(f"fail at {stage}: run {run.run_id} is already {run.status}")
    if run.status.rank > STATUS_OF_STAGE[stage].rank:
        raise StaleEvent(f"fail at {stage}: run {run.run_id} has moved on to {run.status}")
    if STATUS_OF_STAGE[stage].rank > run.status.rank:
        # The failing stage had not opened yet (e.g. CreateModel refused right after training): the current
        # stage did its part, and the failed one gets its own entry.
        failed = StageEntry(stage=stage, status=FAILED, started_at=now, ended_at=now)
        stages = (*_close_current(run.stages, SUCCEEDED, now), failed)
    else:
        stages = _close_current(run.stages, FAILED, now)
    return run.model_copy(
        update={
            "status": Status.FAILED,
            "stages": stages,
            "updated_at": now,
            "error": RunError(stage=stage, code=code, message=message),
        }
    )


def retry_stage(run: Run) -> Stage:
    """The stage a retry of this FAILED run restarts from (earlier when a later one lacks its input)."""
    if run.status != Status.FAILED or run.error is None:
        raise Conflict(f"run {run.run_id} is {run.status}; only FAILED runs can be retried")
    stage = run.error.stage
    if stage == Stage.VALIDATE:
        raise Conflict(
            f"run {run.run_id} failed validation ({run.error.code}); a bundle does not change: "
            "fix it and upload it again"
        )
    serve_only = run.manifest is not None and run.manifest.serve_only
    if stage == Stage.DEPLOY and serve_only and (run.image is None or not run.image.digest):
        stage = Stage.BUILD
    if stage == Stage.DEPLOY and not run.model_artifact and not serve_only:
        stage = Stage.TRAIN
    if stage == Stage.TRAIN and (run.image is None or not run.image.digest):
        stage = Stage.BUILD
    return stage


def retry(run: Run, *, now: str, **fields: Any) -> Run:
    """FAILED -> the status of the retried stage, as a new attempt (the one way a status moves back).

    Recorded before the stage's work starts (a build, a training job, an endpoint change); `fields`
    holds what the new attempt needs (a fresh image reference, the new training job's name).
    """
    stage = retry_stage(run)
    status = STATUS_OF_STAGE[stage]
    return run.model_copy(
        update={
            "status": status,
            "stages": _open(run.stages, stage, now, f"retry, attempt {run.attempt + 1}"),
            "updated_at": now,
            "error": None,
            "attempt": run.attempt + 1,
            **fields,
        }
    )
