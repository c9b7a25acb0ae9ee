"""The build stage: start the image's build (at most once), and the build's end (CodeBuild state change)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chalicelib.domain import names
from chalicelib.domain import statemachine as sm
from chalicelib.domain.errors import StaleEvent, UpstreamError
from chalicelib.domain.models import ImageRef, Run, Stage, Status
from chalicelib.flows.outcomes import Advanced, Ignored, Outcome, apply, ignored, record_failure, transition
from chalicelib.flows.train import start_training
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.domain.event_models import BuildStateChange
    from chalicelib.services import Services

FAILED_BUILD_STATUSES = frozenset({"FAILED", "STOPPED", "FAULT", "TIMED_OUT"})


def build_environment(svc: Services, run: Run, repository_uri: str) -> tuple[dict[str, str], dict[str, str]]:
    """The buildspec's variables (docs/buildspec.md) and, in private mode, its secret references."""
    build = run.effective_manifest().build
    registry, _, repository = repository_uri.partition("/")
    env = {
        "RUN_ID": run.run_id,
        "PROJECT": run.project,
        "IMAGE_REPO": repository,
        "IMAGE_REPO_URI": repository_uri,
        "REGISTRY": registry,
        "IMAGE_TAG": run.run_id,
        "DOCKERFILE": build.dockerfile,
        "BUILD_ARGS": json.dumps(build.build_args, sort_keys=True),
        # A private registry may refuse to overwrite a tag: cache only where the tag is known mutable.
        "CACHE_TAG": "" if svc.settings.private_mode else names.CACHE_TAG,
    }
    if run.effective_manifest().serve_only:
        # The smoke test trains on the sample data first; a serve-only image does not train, and its model
        # (deploy.model_data) is not the build's to read: the endpoint's health check judges its serving.
        env["SMOKE_TEST"] = "off"
    secrets: dict[str, str] = {}
    if svc.settings.private_mode:
        env["PRIVATE_REGISTRY"] = svc.settings.private_registry or ""
        secret = svc.settings.registry_secret_id
        secrets = {"REGISTRY_USERNAME": f"{secret}:username", "REGISTRY_PASSWORD": f"{secret}:password"}
    return env, secrets


def repository_uri(svc: Services, run: Run) -> str:
    """The project's image repository (created in ECR on first use; in private mode, the registry's)."""
    repository = names.ecr_repository(svc.settings.ecr_prefix, run.project)
    if svc.settings.private_mode:
        return f"{svc.settings.private_registry}/{repository}"
    uri: str = svc.ecr.ensure_repository(repository, project=run.project)
    return uri


def _launch_build(svc: Services, run: Run) -> str:
    """Start the build of this attempt of the run (at most once) and return its id."""
    assert run.image is not None
    environment, secrets = build_environment(svc, run, run.image.repository)
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


def start_build(svc: Services, run: Run) -> Outcome:
    """Record BUILDING (with the validated manifest and the image's name), then start the build."""
    try:
        image = ImageRef(repository=repository_uri(svc, run), tag=run.run_id)
    except UpstreamError as exc:
        return record_failure(svc, run.run_id, Stage.BUILD, exc.code, exc.message)
    manifest = run.manifest

    def change(current: Run) -> Run:
        with_manifest = current.model_copy(update={"manifest": manifest})
        return sm.start_build(with_manifest, image=image, now=svc.clock())

    started = apply(svc, run.run_id, change, "build starting")
    if isinstance(started, Ignored):  # a concurrent delivery of the same upload got there first
        return started
    return launch_and_record(svc, started.run)


def launch_and_record(svc: Services, run: Run) -> Outcome:
    """Start the recorded build (at most once) and record its id on the run."""
    try:
        build_id = _launch_build(svc, run)
    except StaleEvent as exc:
        return ignored(str(exc), run_id=run.run_id)
    except UpstreamError as exc:
        return record_failure(svc, run.run_id, Stage.BUILD, exc.code, exc.message)
    outcome = transition(
        svc, run.run_id, lambda r: sm.record_build(r, build_id=build_id, now=svc.clock()), "build started"
    )
    if isinstance(
        outcome, Ignored
    ):  # the build was started all the same: say so, with why it was not recorded
        return Advanced(
            "build started",
            run.run_id,
            None,
            {**outcome.keys, "reason": outcome.reason, "build_id": build_id},
        )
    return Advanced("build started", outcome.run_id, outcome.status, {"build_id": build_id})


def build_state_changed(event: BuildStateChange, svc: Services) -> Outcome:
    """A build ended: FAILED/STOPPED fails the run; SUCCEEDED with IMAGE_DIGEST starts training."""
    if event.project_name != svc.settings.codebuild_project:
        return ignored("another CodeBuild project", project=event.project_name)
    run_id = event.environment_value("RUN_ID")
    run = svc.runs.find(run_id) if run_id else None
    if run is None:
        return ignored("build of no known run", build_id=event.build_id)
    logger.set_correlation_id(run.run_id)
    if run.build_id and not _same_build(run.build_id, event.build_id):
        return ignored("event of an earlier build of this run", build_id=event.build_id, run_id=run.run_id)
    status = event.build_status
    if status in FAILED_BUILD_STATUSES:
        phase, context = event.failure()
        logs = event.additional_information.logs
        message = f"build {status} in phase {phase}" + (f": {context}" if context else "")
        if logs and logs.deep_link:
            message += f" (logs: {logs.deep_link})"
        code = "BuildStopped" if status == "STOPPED" else "BuildFailed"
        return record_failure(svc, run.run_id, Stage.BUILD, code, message)
    if status != "SUCCEEDED":
        return ignored(f"build is {status}", run_id=run.run_id)
    digest = event.exported("IMAGE_DIGEST")
    if not digest:
        if run.status == Status.BUILDING:
            return record_failure(
                svc,
                run.run_id,
                Stage.BUILD,
                "NoImageDigest",
                "the build succeeded but exported no IMAGE_DIGEST: the buildspec must set it in post_build "
                "and list it under env.exported-variables",
            )
        return ignored("build succeeded without a digest after the run moved on", run_id=run.run_id)
    return start_training(svc, run, digest)


def _same_build(build_id: str, event_build_id: str) -> bool:
    """StartBuild answers `project:uuid`; the event names the build by its ARN (`...:build/project:uuid`)."""
    return event_build_id == build_id or event_build_id.endswith("/" + build_id)
