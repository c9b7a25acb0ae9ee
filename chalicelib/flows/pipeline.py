"""The pipeline's transitions: one function per event, each idempotent and safe to replay or reorder.

Every function follows the same order: find the run, decide from its recorded state whether the event
still applies, record the transition with a conditional write, then start the AWS work that emits events
(a build, a training job, an endpoint change) at most once, under deterministic names and idempotency
keys. Recording first means that the work's own events, however early, find the run in its new state; a
delivery that stops between the two is finished by the event's retry, which finds the run in that state
with its work not yet started. Failures end the run FAILED with an error a person can act on; only
transient AWS errors are raised, so that Lambda retries the event.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.domain import names, specs
from chalicelib.domain import scan_rules as scangate
from chalicelib.domain import statemachine as sm
from chalicelib.domain.errors import (
    BundleRejected,
    Conflict,
    NotFound,
    StaleEvent,
    TransientError,
    UpstreamError,
)
from chalicelib.domain.event_models import (
    BuildStateChange,
    EndpointStateChange,
    ImageAction,
    ImageScan,
    ObjectCreated,
    TrainingJobStateChange,
)
from chalicelib.domain.log_locations import TRAINING_JOBS_GROUP, endpoint_log_group
from chalicelib.domain.models import STAGE_OF_STATUS, ImageRef, Run, ScanResult, SourceRef, Stage, Status
from chalicelib.flows import training_progress
from chalicelib.flows.log_reading import with_log_tail
from chalicelib.observability import count, logger
from chalicelib.services import Services

Outcome = dict[str, Any]
FAILED_BUILD_STATUSES = frozenset({"FAILED", "STOPPED", "FAULT", "TIMED_OUT"})


def _ignored(reason: str, **keys: Any) -> Outcome:
    logger.info(f"event ignored: {reason}", extra=keys)
    count("EventsIgnored")
    return {"action": "ignored", "reason": reason, **keys}


def _record_failure(svc: Services, run_id: str, stage: Stage, code: str, message: str) -> Outcome:
    try:
        run = svc.runs.update(
            run_id, lambda r: sm.fail(r, stage=stage, code=code, message=message, now=svc.clock())
        )
    except StaleEvent as exc:
        return _ignored(str(exc), run_id=run_id)
    logger.warning("run failed", extra={"stage": stage.value, "code": code, "error_message": message})
    count("RunsFailed", stage=stage.value)
    return {"action": "failed", "run_id": run.run_id, "stage": stage.value, "code": code}


def _apply(
    svc: Services, run_id: str, change: Callable[[Run], Run], action: str
) -> tuple[Outcome, Run | None]:
    """Record a transition; the outcome, and the run as written (None when the event no longer applied)."""
    try:
        run = svc.runs.update(run_id, change)
    except StaleEvent as exc:
        return _ignored(str(exc), run_id=run_id), None
    if run.status == Status.SUCCEEDED:
        count("RunsSucceeded")
    elif run.status in STAGE_OF_STATUS:
        count("StageStarted", stage=STAGE_OF_STATUS[run.status].value)
    logger.info(action, extra={"status": run.status.value})
    return {"action": action, "run_id": run.run_id, "status": run.status.value}, run


def _transition(svc: Services, run_id: str, change: Callable[[Run], Run], action: str) -> Outcome:
    return _apply(svc, run_id, change, action)[0]


# --- S3 Object Created: validate, record, build ---------------------------------------------------------
def bundle_uploaded(event: ObjectCreated, svc: Services) -> Outcome:
    """A bundle landed in the source bucket: record a run, reject a bad bundle, or start its build."""
    bucket, key = event.bucket.name, event.object.key
    if bucket != svc.settings.source_bucket:
        return _ignored("not the source bucket", bucket=bucket)
    project = names.project_from_key(key)
    if project is None:
        return _ignored("not a bundles/<project>/<name>.zip key", key=key)
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
        return _launch_and_record(svc, run)  # an earlier delivery stopped before the build's id was recorded
    elif run.status != Status.RECEIVED:
        return _ignored(f"duplicate upload event; run is {run.status}", run_id=run_id)
    try:
        manifest = _validate(svc, run)
    except BundleRejected as exc:
        return _record_failure(svc, run_id, Stage.VALIDATE, exc.code, exc.message)
    return _start_build(svc, run.model_copy(update={"manifest": manifest}))


def _validate(svc: Services, run: Run) -> dict[str, Any]:
    from chalicelib.domain.bundle import BundleLimits

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
    from chalicelib.flows import preflight

    resolved = preflight.check_run(svc, run.run_id, run.project, run.attempt, report.manifest)
    manifest: dict[str, Any] = resolved.model_dump(mode="json")
    return manifest


def _build_environment(svc: Services, run: Run, repository_uri: str) -> tuple[dict[str, str], dict[str, str]]:
    """The buildspec's variables (docs/buildspec.md) and, in private mode, its secret references."""
    build = (run.manifest or {}).get("build", {})
    registry, _, repository = repository_uri.partition("/")
    env = {
        "RUN_ID": run.run_id,
        "PROJECT": run.project,
        "IMAGE_REPO": repository,
        "IMAGE_REPO_URI": repository_uri,
        "REGISTRY": registry,
        "IMAGE_TAG": run.run_id,
        "DOCKERFILE": str(build.get("dockerfile", "Dockerfile")),
        "BUILD_ARGS": json.dumps(build.get("build_args", {}), sort_keys=True),
        # A private registry may refuse to overwrite a tag: cache only where the tag is known mutable.
        "CACHE_TAG": "" if svc.settings.private_mode else names.CACHE_TAG,
    }
    secrets: dict[str, str] = {}
    if svc.settings.private_mode:
        env["PRIVATE_REGISTRY"] = svc.settings.private_registry or ""
        secret = svc.settings.registry_secret_id
        secrets = {"REGISTRY_USERNAME": f"{secret}:username", "REGISTRY_PASSWORD": f"{secret}:password"}
    return env, secrets


def _repository_uri(svc: Services, run: Run) -> str:
    repository = names.ecr_repository(svc.settings.ecr_prefix, run.project)
    if svc.settings.private_mode:
        return f"{svc.settings.private_registry}/{repository}"
    uri: str = svc.ecr.ensure_repository(repository, project=run.project)
    return uri


def _launch_build(svc: Services, run: Run) -> str:
    """Start the build of this attempt of the run (at most once) and return its id."""
    assert run.image is not None
    environment, secrets = _build_environment(svc, run, run.image.repository)
    build_id: str = svc.once(
        f"build:{run.run_id}:{run.attempt}",
        lambda: svc.codebuild.start_build(
            bucket=run.source.bucket,
            key=run.source.key,
            version_id=run.source.version_id,
            environment=environment,
            secrets=secrets,
            idempotency_token=f"{run.run_id}-{run.attempt}",
        ),
    )
    return build_id


def _start_build(svc: Services, run: Run) -> Outcome:
    try:
        image = ImageRef(repository=_repository_uri(svc, run), tag=run.run_id)
    except UpstreamError as exc:
        return _record_failure(svc, run.run_id, Stage.BUILD, exc.code, exc.message)
    manifest = run.manifest

    def change(current: Run) -> Run:
        with_manifest = current.model_copy(update={"manifest": manifest})
        return sm.start_build(with_manifest, image=image, now=svc.clock())

    outcome, started = _apply(svc, run.run_id, change, "build starting")
    if started is None:  # a concurrent delivery of the same upload got there first
        return outcome
    return _launch_and_record(svc, started)


def _launch_and_record(svc: Services, run: Run) -> Outcome:
    try:
        build_id = _launch_build(svc, run)
    except StaleEvent as exc:
        return _ignored(str(exc), run_id=run.run_id)
    except UpstreamError as exc:
        return _record_failure(svc, run.run_id, Stage.BUILD, exc.code, exc.message)
    outcome = _transition(
        svc, run.run_id, lambda r: sm.record_build(r, build_id=build_id, now=svc.clock()), "build started"
    )
    return {**outcome, "action": "build started", "build_id": build_id}


# --- CodeBuild state change and ECR push: start training on the image by digest -------------------------
def build_state_changed(event: BuildStateChange, svc: Services) -> Outcome:
    """A build ended: FAILED/STOPPED fails the run; SUCCEEDED with IMAGE_DIGEST starts training."""
    if event.project_name != svc.settings.codebuild_project:
        return _ignored("another CodeBuild project", project=event.project_name)
    run_id = event.environment_value("RUN_ID")
    run = svc.runs.find(run_id) if run_id else None
    if run is None:
        return _ignored("build of no known run", build_id=event.build_id)
    logger.set_correlation_id(run.run_id)
    if run.build_id and not _same_build(run.build_id, event.build_id):
        return _ignored("event of an earlier build of this run", build_id=event.build_id, run_id=run.run_id)
    status = event.build_status
    if status in FAILED_BUILD_STATUSES:
        phase, context = event.failure()
        logs = event.additional_information.logs
        message = f"build {status} in phase {phase}" + (f": {context}" if context else "")
        if logs and logs.deep_link:
            message += f" (logs: {logs.deep_link})"
        code = "BuildStopped" if status == "STOPPED" else "BuildFailed"
        return _record_failure(svc, run.run_id, Stage.BUILD, code, message)
    if status != "SUCCEEDED":
        return _ignored(f"build is {status}", run_id=run.run_id)
    digest = event.exported("IMAGE_DIGEST")
    if not digest:
        if run.status == Status.BUILDING:
            return _record_failure(
                svc,
                run.run_id,
                Stage.BUILD,
                "NoImageDigest",
                "the build succeeded but exported no IMAGE_DIGEST: the buildspec must set it in post_build "
                "and list it under env.exported-variables",
            )
        return _ignored("build succeeded without a digest after the run moved on", run_id=run.run_id)
    return _start_training(svc, run, digest)


def _same_build(build_id: str, event_build_id: str) -> bool:
    """StartBuild answers `project:uuid`; the event names the build by its ARN (`...:build/project:uuid`)."""
    return event_build_id == build_id or event_build_id.endswith("/" + build_id)


def image_pushed(event: ImageAction, svc: Services) -> Outcome:
    """An image was pushed to a project repository with a run id as tag: start that run's training."""
    if event.action_type != "PUSH" or event.result != "SUCCESS":
        return _ignored(f"{event.action_type} {event.result}")
    tag = event.image_tag or ""
    if not tag:
        return _ignored("push without a tag (an attestation or an index)", digest=event.image_digest)
    if not event.repository_name.startswith(svc.settings.ecr_prefix + "/") or not names.is_run_id(tag):
        return _ignored("not a sagedock image", repository=event.repository_name, tag=tag)
    run = svc.runs.find(tag)
    if run is None:
        return _ignored("push of no known run", tag=tag)
    logger.set_correlation_id(run.run_id)
    if run.image and not run.image.repository.endswith("/" + event.repository_name):
        return _ignored("push to another repository than the run's", repository=event.repository_name)
    return _start_training(svc, run, event.image_digest)


def image_scanned(event: ImageScan, svc: Services) -> Outcome:
    """ECR scanned a pushed image: with the scan gate on, its findings fail the run or start its training.

    The push, the build and the scan events arrive in any order: each of them can start training, the push
    and build events only once the scan is known (from this event's record, or from ECR itself).
    """
    tags = [tag for tag in event.image_tags if names.is_run_id(tag)]
    if not event.repository_name.startswith(svc.settings.ecr_prefix + "/") or not tags:
        return _ignored("not a sagedock image", repository=event.repository_name)
    run = svc.runs.find(tags[0])
    if run is None:
        return _ignored("scan of no known run", tag=tags[0])
    logger.set_correlation_id(run.run_id)
    if run.image and not run.image.repository.endswith("/" + event.repository_name):
        return _ignored("scan of another repository than the run's", repository=event.repository_name)
    if not scangate.required(run, svc.settings):
        return _ignored("the run does not wait for a scan", run_id=run.run_id)
    result = ScanResult(
        digest=event.image_digest, status=event.scan_status, counts=dict(event.finding_severity_counts)
    )
    return _start_training(svc, run, event.image_digest, scan=result)


def _scan_gate(svc: Services, run: Run, digest: str, scan: ScanResult | None) -> Outcome | ScanResult:
    """The scan that lets this image train, or the outcome that holds it (waiting, or the run FAILED)."""
    if svc.settings.private_mode:
        return _record_failure(
            svc,
            run.run_id,
            Stage.BUILD,
            "ScanUnavailable",
            "`[build] scan = true` needs ECR scanning, and this stage pushes to a private registry: "
            "scan the image in your registry and set `scan = false`",
        )
    if scan is None and run.scan is not None and run.scan.digest == digest:
        scan = run.scan
    if not scangate.settled(scan):
        assert run.image is not None
        repository = run.image.repository.split("/", 1)[1]
        try:
            scan = svc.ecr.scan_result(repository, digest)
        except UpstreamError as exc:
            return _record_failure(svc, run.run_id, Stage.BUILD, exc.code, exc.message)
    if scan is None or not scangate.settled(scan):
        return _await_scan(svc, run, digest, scan)
    stop = scangate.verdict(scan, scangate.threshold(run))
    if stop is not None:
        return _record_failure(svc, run.run_id, Stage.BUILD, stop.code, stop.message)
    return scan


def _await_scan(svc: Services, run: Run, digest: str, scan: ScanResult | None) -> Outcome:
    """Mark the run as waiting for its image's scan (the scan sweeper finds it by that mark and asks ECR
    again), or fail it with ImageScanTimeout once it has waited longer than the stage allows."""
    now = svc.clock()
    if run.scan is not None and run.scan.digest == digest and scangate.overdue(run, now, svc.settings):
        stop = scangate.timed_out(run, svc.settings)
        return _record_failure(svc, run.run_id, Stage.BUILD, stop.code, stop.message)
    status = scan.status if scan is not None else "PENDING"

    def wait(current: Run) -> Run:
        if current.status != Status.BUILDING:
            raise StaleEvent(f"run is {current.status}")
        marked = current.scan if current.scan is not None and current.scan.digest == digest else None
        since = marked.waiting_since if marked is not None and marked.waiting_since else now
        waiting = ScanResult(digest=digest, status=status, waiting_since=since)
        if current.scan == waiting:
            raise StaleEvent("already waiting")  # nothing to write
        return current.model_copy(update={"scan": waiting, "updated_at": now})

    with contextlib.suppress(StaleEvent):  # the run moved on, or was marked already
        svc.runs.update(run.run_id, wait)
    return _ignored("waiting for the image scan", run_id=run.run_id, digest=digest)


def scan_awaited(run_id: str, svc: Services) -> Outcome:
    """The scan sweeper's turn for a run marked as waiting for its image's scan (its ECR event may be lost).

    BUILDING: ask ECR as the push and build events did; a settled scan decides as its event would, a wait
    past the bound ends the run FAILED with ImageScanTimeout. TRAINING (the mark outlives the transition
    until the job surely exists): make sure the training job was created, at most once, then drop the mark.
    """
    run = svc.runs.find(run_id)
    if run is None or run.scan is None or not run.scan.waiting_since:
        return _ignored("the run no longer waits for a scan", run_id=run_id)
    logger.set_correlation_id(run.run_id)
    if run.status == Status.BUILDING:
        outcome = _start_training(svc, run, run.scan.digest)
    elif run.status == Status.TRAINING and run.image is not None and run.image.digest:
        outcome = _start_training(svc, run, run.image.digest)
    else:
        return _ignored(f"run is {run.status}", run_id=run_id)
    if "job" in outcome:  # the training job exists: the sweeper need not look at this run again
        with contextlib.suppress(StaleEvent):
            svc.runs.update(run_id, _stop_waiting)
    return outcome


def _stop_waiting(run: Run) -> Run:
    if run.scan is None or not run.scan.waiting_since:
        raise StaleEvent("not waiting")
    return run.model_copy(update={"scan": run.scan.model_copy(update={"waiting_since": None})})


def _start_training(svc: Services, run: Run, digest: str, *, scan: ScanResult | None = None) -> Outcome:
    if run.status == Status.TRAINING and run.image is not None and run.image.digest == digest:
        # An earlier delivery (or the other of the push and build events) recorded TRAINING; it may have
        # stopped before creating the job, so make sure the job exists (at most once).
        return _launch_training(svc, run)
    if run.status != Status.BUILDING:
        return _ignored(f"image already handled; run is {run.status}", run_id=run.run_id)
    assert run.image is not None
    if scangate.required(run, svc.settings):
        gate = _scan_gate(svc, run, digest, scan)
        if not isinstance(gate, ScanResult):
            return gate
        scan = gate
    uri = f"{run.image.repository}@{digest}"
    job_name = names.training_job_name(run.run_id, run.attempt)

    def change(current: Run) -> Run:
        scanned = current
        if scan is not None:
            # A run that waited keeps its mark until the sweeper sees its training job exist.
            marked = current.scan is not None and current.scan.digest == scan.digest
            since = current.scan.waiting_since if marked and current.scan is not None else None
            scanned = current.model_copy(update={"scan": scan.model_copy(update={"waiting_since": since})})
        return sm.start_training(scanned, digest=digest, uri=uri, job_name=job_name, now=svc.clock())

    # Recorded before the job is created, so that the job's events, however early, find the run TRAINING.
    outcome, started = _apply(svc, run.run_id, change, "training starting")
    if started is None:  # a concurrent delivery got there first
        return outcome
    return _launch_training(svc, started)


def _launch_training(svc: Services, run: Run) -> Outcome:
    """Create the run's recorded training job, at most once; a replay that finds it created is ignored."""
    assert run.image is not None
    assert run.image.uri
    assert run.training_job_name
    job_name = run.training_job_name
    request = specs.training_job_request(run, svc.settings, job_name=job_name, image_uri=run.image.uri)
    created: list[bool] = []

    def create() -> None:
        from chalicelib.flows import preflight

        # Inside the at-most-once action: data deleted while the image built fails here, not in SageMaker
        # minutes later; a replay after the job was created checks nothing.
        preflight.check_channels(svc, request)
        created.append(svc.sagemaker.create_training_job(request))

    try:
        svc.once(f"train:{job_name}", create)
    except StaleEvent as exc:
        return _ignored(str(exc), run_id=run.run_id)
    except (UpstreamError, BundleRejected) as exc:
        return _record_failure(svc, run.run_id, Stage.TRAIN, exc.code, exc.message)
    if not created or created[0] is False:
        return _ignored(
            f"training job {job_name} already started; run is {run.status}", run_id=run.run_id, job=job_name
        )
    return {"action": "training started", "run_id": run.run_id, "status": run.status.value, "job": job_name}


# --- Training job state change: deploy, or fail ---------------------------------------------------------
def training_state_changed(event: TrainingJobStateChange, svc: Services) -> Outcome:
    """A training job changed: InProgress records its secondary status; Failed/Stopped fails the run;
    Completed creates model, config, endpoint."""
    run_id = event.tags.get("sagedock:run-id") or names.run_id_from_training_job(event.training_job_name)
    run = svc.runs.find(run_id) if run_id else None
    if run is None:
        return _ignored("training job of no known run", job=event.training_job_name)
    logger.set_correlation_id(run.run_id)
    if run.training_job_name != event.training_job_name:
        return _ignored("event of another training job than the run's", job=event.training_job_name)
    status = event.training_job_status
    if status == "Failed":
        reason = (event.failure_reason or "").strip()
        message = reason.splitlines()[0] if reason else "training failed without a reason"
        message = with_log_tail(message, svc.logs, TRAINING_JOBS_GROUP, f"{event.training_job_name}/")
        return _record_failure(svc, run.run_id, Stage.TRAIN, "TrainingFailed", message)
    if status == "Stopped":
        return _record_failure(
            svc,
            run.run_id,
            Stage.TRAIN,
            "TrainingStopped",
            f"training job {event.training_job_name} was stopped",
        )
    if status == "InProgress":
        return training_progress.training_progressed(event, run, svc)
    if status != "Completed":
        return _ignored(f"training is {status}", run_id=run.run_id)
    return _deploy(svc, run)


def _deploy(svc: Services, run: Run) -> Outcome:
    if run.status not in (Status.TRAINING, Status.DEPLOYING):
        return _ignored(f"training already handled; run is {run.status}", run_id=run.run_id)
    assert run.training_job_name is not None
    try:
        artifact = run.model_artifact or svc.sagemaker.model_artifact(run.training_job_name)
    except UpstreamError as exc:
        return _record_failure(svc, run.run_id, Stage.TRAIN, exc.code, exc.message)
    if not specs.deploy_enabled(run):
        return _transition(
            svc,
            run.run_id,
            lambda r: sm.succeed_without_deploy(r, model_artifact=artifact, now=svc.clock()),
            "trained; deploy disabled",
        )
    model = names.model_name(run.run_id)
    config = names.endpoint_config_name(run.run_id, run.attempt)
    endpoint = specs.endpoint_name(run)
    from chalicelib.flows import preflight

    try:
        # Another project may have deployed to the endpoint since validate: refused before anything is made.
        preflight.check_endpoint(svc, run, endpoint)
        svc.sagemaker.create_model(
            specs.model_request(run, svc.settings, model_name=model, model_artifact=artifact)
        )
        svc.sagemaker.create_endpoint_config(
            specs.endpoint_config_request(run, config_name=config, model_name=model)
        )
    except (UpstreamError, BundleRejected) as exc:
        return _record_failure(svc, run.run_id, Stage.DEPLOY, exc.code, exc.message)
    outcome: Outcome = {"action": "deploying", "run_id": run.run_id}
    # Recorded before the endpoint call, so an endpoint event, however fast, finds this run DEPLOYING; on
    # condition that no other project recorded it since the check above, unless the manifest claims it.
    try:
        preflight.own_endpoint(svc, run, endpoint)
    except (UpstreamError, BundleRejected) as exc:
        return _record_failure(svc, run.run_id, Stage.DEPLOY, exc.code, exc.message)
    if run.status == Status.TRAINING:
        outcome = _transition(
            svc,
            run.run_id,
            lambda r: sm.start_deploy(
                r,
                model_artifact=artifact,
                model_name=model,
                endpoint_config_name=config,
                endpoint_name=endpoint,
                now=svc.clock(),
            ),
            "deploy started",
        )
        if outcome["action"] == "ignored":
            return outcome
    tags = [{"Key": "sagedock:project", "Value": run.project}]
    try:
        done = svc.once(
            f"deploy:{run.run_id}:{run.attempt}", lambda: _change_endpoint(svc, run, endpoint, config, tags)
        )
    except StaleEvent as exc:
        return _ignored(str(exc), run_id=run.run_id)
    except (UpstreamError, Conflict) as exc:
        return _record_failure(svc, run.run_id, Stage.DEPLOY, exc.code, exc.message)
    logger.info(f"endpoint {endpoint} {done}", extra={"endpoint": endpoint, "config": config})
    return {**outcome, "endpoint": endpoint, "endpoint_action": done}


def _change_endpoint(svc: Services, run: Run, endpoint: str, config: str, tags: list[dict[str, str]]) -> str:
    """Create or update the endpoint (blue/green as [deploy.update] says).

    SageMaker refuses an update that changes the instance type of a variant registered with Application
    Auto Scaling (a new model is accepted): such a variant is deregistered first, and registered again
    with the new limits once the new config is in service.
    """
    current = svc.sagemaker.describe_endpoint(endpoint)
    if (
        current is not None
        and current.config_name != config
        and current.status == "InService"
        and svc.sagemaker.instance_type(current.config_name) != specs.instance_type(run)
    ):
        svc.autoscaling.deregister(endpoint, specs.VARIANT_NAME)
    done: str = svc.sagemaker.create_or_update_endpoint(endpoint, config, tags, specs.deployment_config(run))
    return done


def _scale(svc: Services, run: Run, endpoint: str) -> None:
    """Make the variant's scaling what the manifest says: registered with its limits, or not at all."""
    scaling = specs.autoscaling(run)
    if scaling:
        svc.autoscaling.register(endpoint, specs.VARIANT_NAME, scaling)
    else:
        svc.autoscaling.deregister(endpoint, specs.VARIANT_NAME)


def _deploy_started(run: Run) -> datetime:
    """When this attempt's deploy stage opened (alarms that changed since then concern its update)."""
    started = next(s.started_at for s in reversed(run.stages) if s.stage == Stage.DEPLOY)
    return datetime.fromisoformat(started.replace("Z", "+00:00"))


# --- Endpoint state change: the run is done -------------------------------------------------------------
def endpoint_state_changed(event: EndpointStateChange, svc: Services) -> Outcome:
    """InService with this run's config -> SUCCEEDED; Failed (or a rolled-back update) -> FAILED."""
    if event.status not in ("InService", "Failed"):
        return _ignored(f"endpoint is {event.status}", endpoint=event.endpoint_name)
    owner = svc.runs.endpoint_owner(event.endpoint_name)
    run = svc.runs.find(owner) if owner else None
    if run is None or run.status != Status.DEPLOYING or run.endpoint_name != event.endpoint_name:
        return _ignored("no run is deploying this endpoint", endpoint=event.endpoint_name)
    logger.set_correlation_id(run.run_id)
    # Events arrive late and out of order; DescribeEndpoint says what is true now.
    state = svc.sagemaker.describe_endpoint(event.endpoint_name)
    if state is None:
        return _record_failure(
            svc,
            run.run_id,
            Stage.DEPLOY,
            "EndpointMissing",
            f"endpoint {event.endpoint_name} no longer exists",
        )
    if state.status == "InService" and state.config_name == run.endpoint_config_name:
        try:
            _scale(svc, run, state.name)
        except UpstreamError as exc:
            return _record_failure(svc, run.run_id, Stage.DEPLOY, "AutoscalingFailed", exc.message)
        return _transition(svc, run.run_id, lambda r: sm.succeed(r, now=svc.clock()), "endpoint in service")
    alarms = specs.rollback_alarms(run)
    if state.status == "InService" and alarms and (state.failure_reason or state.rollback_alarms):
        try:
            fired = svc.alarms.fired(alarms, since=_deploy_started(run))
        except UpstreamError as exc:  # the alarms cannot be read: the update still failed, say so below
            logger.warning("rollback alarms unreadable", extra={"error_message": exc.message})
            fired = []
        if fired:
            return _record_failure(
                svc,
                run.run_id,
                Stage.DEPLOY,
                "EndpointUpdateRolledBack",
                f"endpoint {state.name} rolled back to config {state.config_name}, which it keeps serving: "
                f"rollback alarm {', '.join(fired)} went to ALARM during the update"
                + (f" ({state.failure_reason})" if state.failure_reason else ""),
            )
    if state.status == "Failed":
        reason = state.failure_reason or event.failure_reason or "no reason given"
        message = with_log_tail(
            f"endpoint {state.name} failed: {reason}", svc.logs, endpoint_log_group(state.name)
        )
        return _record_failure(svc, run.run_id, Stage.DEPLOY, "EndpointFailed", message)
    if state.status == "InService" and state.failure_reason:
        return _record_failure(
            svc,
            run.run_id,
            Stage.DEPLOY,
            "EndpointUpdateFailed",
            f"endpoint {state.name} rolled back to config {state.config_name}: {state.failure_reason}",
        )
    return _ignored(f"endpoint is {state.status} with config {state.config_name}", run_id=run.run_id)


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
        repository = run.image.repository if run.image else _repository_uri(svc, run)
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
    launch = {Stage.BUILD: _launch_and_record, Stage.TRAIN: _launch_training, Stage.DEPLOY: _deploy}[stage]
    try:
        outcome = launch(svc, updated)
    except TransientError as exc:
        _record_failure(svc, run_id, stage, exc.code, f"{exc.message} (retry the run again)")
        raise
    logger.info(f"retried {stage.value}", extra={"outcome": outcome})
    return svc.runs.get(run_id)


def _raise_stale(run: Run) -> Run:
    raise Conflict(f"run {run.run_id} was retried concurrently (now attempt {run.attempt})")
