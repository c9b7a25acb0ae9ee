"""S3 Object Created: a bundle was uploaded. Record a run, reject a bad bundle, or start its build.

Every flow follows the same order: find the run, decide from its recorded state whether the event still
applies, record the transition with a conditional write, then start the AWS work that emits events at most
once, under deterministic names and idempotency keys. Failures end the run FAILED with an error a person
can act on; only transient AWS errors are raised, so that Lambda retries the event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.domain import names
from chalicelib.domain import statemachine as sm
from chalicelib.domain.bundle import BundleLimits
from chalicelib.domain.errors import BundleRejected, Conflict, NotFound, UpstreamError
from chalicelib.domain.models import Run, SourceRef, Stage, Status
from chalicelib.flows import preflight
from chalicelib.flows.build import launch_and_record, start_build
from chalicelib.flows.outcomes import Outcome, ignored, record_failure
from chalicelib.observability import count, logger

if TYPE_CHECKING:
    from chalicelib.domain.event_models import ObjectCreated
    from chalicelib.domain.manifest import Manifest
    from chalicelib.services import Services


def bundle_uploaded(event: ObjectCreated, svc: Services) -> Outcome:
    """A bundle landed in the source bucket: record a run, reject a bad bundle, or start its build."""
    bucket, key = event.bucket.name, event.object.key
    if bucket != svc.settings.source_bucket:
        return ignored("not the source bucket", bucket=bucket)
    project = names.project_from_key(key)
    if project is None:
        return ignored("not a bundles/<project>/<name>.zip key", key=key)
    version = event.object.version_id or event.object.etag or ""
    run_id = names.run_id_for(project, bucket, key, version)
    logger.set_correlation_id(run_id)
    now = svc.clock()
    source = SourceRef(
        bucket=bucket,
        key=key,
        version_id=event.object.version_id,
        etag=event.object.etag,
        size=event.object.size,
    )
    fresh = sm.new_run(
        Run(
            run_id=run_id,
            project=project,
            status=Status.RECEIVED,
            source=source,
            created_at=now,
            updated_at=now,
        )
    )
    run, created = svc.runs.create(fresh)
    if created:
        count("RunsStarted")
    elif run.status == Status.BUILDING and run.build_id is None:
        return launch_and_record(svc, run)  # an earlier delivery stopped before the build's id was recorded
    elif run.status != Status.RECEIVED:
        return ignored(f"duplicate upload event; run is {run.status}", run_id=run_id)
    try:
        manifest = validate(svc, run)
    except BundleRejected as exc:
        return record_failure(svc, run_id, Stage.VALIDATE, exc.code, exc.message)
    return start_build(svc, run.model_copy(update={"manifest": manifest}))


def validate(svc: Services, run: Run) -> Manifest:
    """The run's manifest, resolved, once its name, its zip and the world pass (BundleRejected if not)."""
    if not names.is_valid_project(run.project):
        raise BundleRejected(
            f"project {run.project!r} is not a valid project name: use {names.PROJECT_RULE} "
            "(bundles/<project>/<name>.zip)",
            code="InvalidProject",
        )
    if not run.source.key.endswith(".zip"):
        raise BundleRejected(
            f"{run.source.key} is not a .zip: a bundle is a zip file named bundles/<project>/<name>.zip",
            code="NotAZip",
        )
    try:
        report, _stats = svc.bundles.inspect(
            run.source.bucket,
            run.source.key,
            version_id=run.source.version_id,
            size=run.source.size,
            etag=run.source.etag,
            limits=BundleLimits.from_settings(svc.settings),
            project=run.project,
        )
    except (NotFound, Conflict, UpstreamError) as exc:
        raise BundleRejected(f"the bundle could not be read: {exc.message}", code="UnreadableBundle") from exc
    return preflight.check_run(svc, run.run_id, run.project, run.attempt, report.manifest)
