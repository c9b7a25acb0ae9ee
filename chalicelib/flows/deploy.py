"""The deploy stage: model, endpoint config and endpoint (blue/green), then the endpoint's state changes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from chalicelib.domain import names, specs
from chalicelib.domain import scan_rules as scangate
from chalicelib.domain import statemachine as sm
from chalicelib.domain.errors import BundleRejected, Conflict, StaleEvent, UpstreamError
from chalicelib.domain.log_locations import endpoint_log_group
from chalicelib.domain.models import Run, ScanResult, Stage, Status
from chalicelib.flows import preflight
from chalicelib.flows.log_reading import with_log_tail
from chalicelib.flows.outcomes import (
    Advanced,
    Ignored,
    Outcome,
    apply,
    ignored,
    record_failure,
    transition,
)
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.domain.event_models import (
        EndpointStateChange,
    )
    from chalicelib.services import Services


def serve(svc: Services, run: Run, digest: str, *, scan: ScanResult | None = None) -> Outcome:
    """A serve-only bundle's image is pushed (BUILDING): record DEPLOYING, train SKIPPED, then deploy.

    The push, the build and the scan events arrive in any order and more than once: the first records the
    transition; a later one finds the run DEPLOYING on this digest and makes sure the deploy happened (each
    step is idempotent, the endpoint change at most once).
    """
    if run.status == Status.DEPLOYING and run.image is not None and run.image.digest == digest:
        return deploy(svc, run)
    if run.status != Status.BUILDING:
        return ignored(f"image already handled; run is {run.status}", run_id=run.run_id)
    assert run.image is not None
    uri = f"{run.image.repository}@{digest}"

    def change(current: Run) -> Run:
        return sm.start_serving(
            scangate.with_result(current, scan),
            digest=digest,
            uri=uri,
            model_artifact=specs.model_data(current),
            model_name=names.model_name(current.run_id),
            endpoint_config_name=names.endpoint_config_name(current.run_id, current.attempt),
            endpoint_name=specs.endpoint_name(current),
            now=svc.clock(),
        )

    started = apply(svc, run.run_id, change, "deploy started, training skipped")
    if isinstance(started, Ignored):  # a concurrent delivery got there first
        return started
    outcome = deploy(svc, started.run)
    if isinstance(outcome, Advanced):  # this delivery made the transition: say so, with what deploy did
        return Advanced(started.outcome.action, outcome.run_id, started.outcome.status, outcome.detail)
    return outcome


def deploy(svc: Services, run: Run) -> Outcome:
    """Create the model and the endpoint config, then create or update the endpoint (at most once).

    Reached from a completed training job (TRAINING), a replay of it (DEPLOYING), a serve-only image
    (DEPLOYING, recorded by `serve`) and a retry of the deploy stage.
    """
    if run.status not in (Status.TRAINING, Status.DEPLOYING):
        return ignored(f"training already handled; run is {run.status}", run_id=run.run_id)
    artifact: str | None
    if not specs.train_enabled(run):
        artifact = specs.model_data(run)
    else:
        assert run.training_job_name is not None
        try:
            artifact = run.model_artifact or svc.sagemaker.model_artifact(run.training_job_name)
        except UpstreamError as exc:
            return record_failure(svc, run.run_id, Stage.TRAIN, exc.code, exc.message)
    if not specs.deploy_enabled(run):
        assert artifact is not None
        return transition(
            svc,
            run.run_id,
            lambda r: sm.succeed_without_deploy(r, model_artifact=artifact, now=svc.clock()),
            "trained; deploy disabled",
        )
    model = names.model_name(run.run_id)
    config = names.endpoint_config_name(run.run_id, run.attempt)
    endpoint = specs.endpoint_name(run)
    try:
        # Another project may have deployed to the endpoint since validate: refused before anything is made.
        preflight.check_endpoint(svc, run, endpoint)
        svc.sagemaker.create_model(
            specs.model_request(run, svc.settings, model_name=model, model_artifact=artifact)
        )
        svc.sagemaker.create_endpoint_config(
            specs.endpoint_config_request(run, config_name=config, model_name=model, settings=svc.settings)
        )
    except (UpstreamError, BundleRejected) as exc:
        return record_failure(svc, run.run_id, Stage.DEPLOY, exc.code, exc.message)
    outcome = Advanced("deploying", run.run_id)
    # Recorded before the endpoint call, so an endpoint event, however fast, finds this run DEPLOYING; on
    # condition that no other project recorded it since the check above, unless the manifest claims it.
    try:
        preflight.own_endpoint(svc, run, endpoint)
    except (UpstreamError, BundleRejected) as exc:
        return record_failure(svc, run.run_id, Stage.DEPLOY, exc.code, exc.message)
    if run.status == Status.TRAINING:
        recorded = transition(
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
        if isinstance(recorded, Ignored):
            return recorded
        outcome = recorded
    tags = [{"Key": "sagedock:project", "Value": run.project}]
    try:
        done = svc.once(
            f"deploy:{run.run_id}:{run.attempt}", lambda: change_endpoint(svc, run, endpoint, config, tags)
        )
    except StaleEvent as exc:
        return ignored(str(exc), run_id=run.run_id)
    except (UpstreamError, Conflict) as exc:
        return record_failure(svc, run.run_id, Stage.DEPLOY, exc.code, exc.message)
    logger.info(f"endpoint {endpoint} {done}", extra={"endpoint": endpoint, "config": config})
    return Advanced(
        outcome.action,
        outcome.run_id,
        outcome.status,
        {**outcome.detail, "endpoint": endpoint, "endpoint_action": done},
    )


def change_endpoint(svc: Services, run: Run, endpoint: str, config: str, tags: list[dict[str, str]]) -> str:
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


def scale(svc: Services, run: Run, endpoint: str) -> None:
    """Make the variant's scaling what the manifest says: registered with its limits, or not at all."""
    scaling = specs.autoscaling(run)
    if scaling:
        svc.autoscaling.register(endpoint, specs.VARIANT_NAME, scaling)
    else:
        svc.autoscaling.deregister(endpoint, specs.VARIANT_NAME)


def deploy_started(run: Run) -> datetime:
    """When this attempt's deploy stage opened (alarms that changed since then concern its update)."""
    started = next(s.started_at for s in reversed(run.stages) if s.stage == Stage.DEPLOY)
    return datetime.fromisoformat(started.replace("Z", "+00:00"))


# --- Endpoint state change: the run is done -------------------------------------------------------------
def endpoint_state_changed(event: EndpointStateChange, svc: Services) -> Outcome:
    """InService with this run's config -> SUCCEEDED; Failed (or a rolled-back update) -> FAILED."""
    if event.status not in ("InService", "Failed"):
        return ignored(f"endpoint is {event.status}", endpoint=event.endpoint_name)
    owner = svc.runs.endpoint_owner(event.endpoint_name)
    run = svc.runs.find(owner) if owner else None
    if run is None or run.status != Status.DEPLOYING or run.endpoint_name != event.endpoint_name:
        return ignored("no run is deploying this endpoint", endpoint=event.endpoint_name)
    logger.set_correlation_id(run.run_id)
    # Events arrive late and out of order; DescribeEndpoint says what is true now.
    state = svc.sagemaker.describe_endpoint(event.endpoint_name)
    if state is None:
        return record_failure(
            svc,
            run.run_id,
            Stage.DEPLOY,
            "EndpointMissing",
            f"endpoint {event.endpoint_name} no longer exists",
        )
    if state.status == "InService" and state.config_name == run.endpoint_config_name:
        try:
            scale(svc, run, state.name)
        except UpstreamError as exc:
            return record_failure(svc, run.run_id, Stage.DEPLOY, "AutoscalingFailed", exc.message)
        return transition(svc, run.run_id, lambda r: sm.succeed(r, now=svc.clock()), "endpoint in service")
    alarms = specs.rollback_alarms(run)
    if state.status == "InService" and alarms and (state.failure_reason or state.rollback_alarms):
        try:
            fired = svc.alarms.fired(alarms, since=deploy_started(run))
        except UpstreamError as exc:  # the alarms cannot be read: the update still failed, say so below
            logger.warning("rollback alarms unreadable", extra={"error_message": exc.message})
            fired = []
        if fired:
            return record_failure(
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
        return record_failure(svc, run.run_id, Stage.DEPLOY, "EndpointFailed", message)
    if state.status == "InService" and state.failure_reason:
        return record_failure(
            svc,
            run.run_id,
            Stage.DEPLOY,
            "EndpointUpdateFailed",
            f"endpoint {state.name} rolled back to config {state.config_name}: {state.failure_reason}",
        )
    return ignored(f"endpoint is {state.status} with config {state.config_name}", run_id=run.run_id)
