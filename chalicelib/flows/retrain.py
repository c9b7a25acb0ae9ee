"""Retraining: a new run on the project's latest successful image, straight to training, no build.

A `Retrain Request` event (or POST /projects/{project}/retrain) names a project and may override the
hyperparameters, the channels and whether to deploy. The new run reuses the image (by digest), the bundle
provenance and the manifest of the latest SUCCEEDED run of the project, which it names in `retrained_from`.
Its id derives from the request's id, so a redelivered request finds the run it already started.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from chalicelib.domain import names
from chalicelib.domain.errors import BadRequest, Conflict, ManifestInvalid, NotFound
from chalicelib.domain.manifest import Manifest, validate_manifest
from chalicelib.domain.models import Run, RunError, SourceRef, Stage, StageEntry, Status
from chalicelib.flows.outcomes import Advanced, Failed, Ignored, Outcome
from chalicelib.observability import count, logger
from chalicelib.services import Services

SOURCE = "sagedock.requests"
DETAIL_TYPE = "Retrain Request"
OVERRIDES = ("hyperparameters", "channels", "deploy")


class RetrainRequest(BaseModel):
    """detail of `Retrain Request` (docs/schemas/retrain-request.json), checked by `validated_manifest`
    so that a bad override becomes a FAILED run with the reason instead of a dropped event."""

    model_config = ConfigDict(frozen=True, extra="allow")

    project: str
    hyperparameters: Any = None
    channels: Any = None
    deploy: Any = None


def latest_success(svc: Services, project: str) -> Run:
    """The project's newest SUCCEEDED run with an image digest; NotFound / Conflict say why there is none."""
    if not names.is_valid_project(project):
        raise BadRequest(
            f"{project!r} is not a valid project name: use {names.PROJECT_RULE}", code="InvalidProject"
        )
    if svc.runs.latest_run(project) is None:
        raise NotFound(f"no project {project}: it has no runs (submit a bundle first)", code="UnknownProject")
    run = svc.runs.latest_succeeded(project)
    if run is not None and run.manifest is not None and run.manifest.serve_only:
        raise Conflict(
            f"project {project} serves a model it does not train (its latest successful run "
            f"{run.run_id} has enabled = false under [train]): there is nothing to retrain; upload a "
            "bundle that trains, or one with the new model_data",
            code="NothingToTrain",
        )
    if run is not None and run.image is not None and run.image.digest and run.image.uri:
        return run
    raise Conflict(
        f"project {project} has no successful run to retrain: a retrain reuses the image of the latest "
        "SUCCEEDED run (submit a bundle that succeeds first)",
        code="NoSuccessfulImage",
    )


def validated_manifest(parent: Run, request: RetrainRequest) -> Manifest:
    """The parent's manifest with the request's overrides, validated by the manifest's own rules."""
    extra = sorted(set(request.model_extra or {}))
    if extra:
        raise BadRequest(
            f"unknown field(s) {', '.join(extra)}: a retrain request takes project, " + ", ".join(OVERRIDES),
            code="InvalidRetrainRequest",
        )
    # A run records its manifest when its build starts, so a SUCCEEDED run has one; the defaults otherwise.
    manifest = parent.effective_manifest().model_dump(mode="json")
    train = dict(manifest.get("train") or {})
    if train.get("channels") is None:
        # Only a run recorded before validate resolved its channels has none: the convention's usual one.
        train["channels"] = {"train": f"{parent.project}/train/"}
    deploy = dict(manifest.get("deploy") or {})
    for field, value in (("hyperparameters", request.hyperparameters), ("channels", request.channels)):
        if value is None:
            continue
        if not isinstance(value, dict):
            raise BadRequest(f"{field} must be an object of name -> value", code="InvalidRetrainRequest")
        train[field] = {**(train.get(field) or {}), **value}
    if request.deploy is not None:
        deploy["enabled"] = request.deploy
    merged = {**manifest, "train": train, "deploy": deploy}
    try:
        return validate_manifest(merged)
    except ManifestInvalid as exc:
        raise BadRequest(f"invalid override: {exc.message}", code="InvalidRetrainRequest") from exc


def _retrain_run(run_id: str, parent: Run, manifest: Manifest, now: str) -> Run:
    """The new run, TRAINING on the parent's image (validate done, train open)."""
    job = names.training_job_name(run_id, 1)
    assert parent.image is not None
    return Run(
        run_id=run_id,
        project=parent.project,
        status=Status.TRAINING,
        source=parent.source,
        image=parent.image,
        training_job_name=job,
        manifest=manifest,
        retrained_from=parent.run_id,
        created_at=now,
        updated_at=now,
        stages=(
            StageEntry(
                stage=Stage.VALIDATE,
                status="SUCCEEDED",
                started_at=now,
                ended_at=now,
                detail=f"retrain of {parent.run_id}",
            ),
            StageEntry(stage=Stage.TRAIN, status="IN_PROGRESS", started_at=now, detail=f"training job {job}"),
        ),
    )


def _rejected_run(run_id: str, project: str, code: str, message: str, now: str) -> Run:
    """A request that cannot start a run, recorded as a run FAILED at validate with the reason."""
    return Run(
        run_id=run_id,
        project=project,
        status=Status.FAILED,
        source=SourceRef(bucket="", key=""),
        created_at=now,
        updated_at=now,
        stages=(StageEntry(stage=Stage.VALIDATE, status="FAILED", started_at=now, ended_at=now),),
        error=RunError(stage=Stage.VALIDATE, code=code, message=message),
    )


def start(svc: Services, request: RetrainRequest, request_id: str) -> Run:
    """Validate the request and record the new TRAINING run; BadRequest, NotFound or Conflict if invalid."""
    parent = latest_success(svc, request.project)
    manifest = validated_manifest(parent, request)
    return _launch(
        svc, _retrain_run(names.retrain_run_id(request.project, request_id), parent, manifest, svc.clock())
    )


def _launch(svc: Services, run: Run) -> Run:
    from chalicelib.flows.train import launch_training

    stored, created = svc.runs.create(run)
    logger.set_correlation_id(stored.run_id)
    if created:
        count("RunsStarted")
    if stored.status == Status.TRAINING:  # new, or a redelivery whose first delivery stopped before the job
        outcome = launch_training(svc, stored)
        logger.info("retrain", extra={"outcome": outcome.as_dict()})
    return svc.runs.get(stored.run_id)


def requested(request: RetrainRequest, svc: Services, request_id: str) -> Outcome:
    """A `Retrain Request` event: start the run, or record the invalid request as a FAILED run."""
    run_id = names.retrain_run_id(request.project, request_id)
    logger.set_correlation_id(run_id)
    try:
        run = start(svc, request, request_id)
    except (BadRequest, NotFound, Conflict) as exc:
        logger.warning("retrain request rejected", extra={"code": exc.code, "error_message": exc.message})
        stored, created = svc.runs.create(
            _rejected_run(run_id, request.project, exc.code, exc.message, svc.clock())
        )
        if created:
            count("RunsFailed", stage=Stage.VALIDATE.value)
        if created:
            return Failed(stored.run_id, exc.code)
        return Ignored(exc.message, {"run_id": stored.run_id, "code": exc.code})
    return Advanced("retrain started", run.run_id, run.status)
