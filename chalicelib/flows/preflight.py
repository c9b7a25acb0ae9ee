"""Pre-flight at validate, before the training job and at deploy: the rules of domain/preflight_rules.py
applied to what the ports say of the world now."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.domain.errors import BundleRejected, Conflict, UpstreamError
from chalicelib.domain.preflight_rules import (
    PreflightFailed,
    endpoint_owned,
    endpoint_problems,
    name_problems,
    owner_problems,
    project_of_run,
    raise_if_any,
    training_channels,
)

if TYPE_CHECKING:
    from chalicelib.domain.manifest import Manifest
    from chalicelib.domain.models import Run
    from chalicelib.services import Services


# --- the checks of a run ---------------------------------------------------------------------------------
def check_run(svc: Services, run_id: str, project: str, attempt: int, manifest: Manifest) -> Manifest:
    """Every pre-flight check of a run at validate; PreflightFailed lists every problem found. The
    manifest comes back with its channels resolved (the channels port's `resolve`), as the run records it.

    An AWS call that fails for a reason other than the bundle ends the run too (BundleRejected with the
    call's code), since validate has nothing to retry; throttling is raised as TransientError.
    """
    try:
        if manifest.serve_only:  # no training job: its channels are not looked at, the model is
            model_data = manifest.deploy.model_data
            channels = svc.model_data.problems(model_data) if model_data is not None else []
        else:
            manifest, channels = svc.channels.resolve(manifest, project=project)
        problems = [
            *name_problems(run_id, attempt),
            *channels,
            *endpoint_problems(
                manifest,
                project,
                owner_run=svc.runs.endpoint_owner,
                endpoint_tags=svc.sagemaker.endpoint_tags,
            ),
        ]
    except UpstreamError as exc:
        raise BundleRejected(f"a pre-flight check could not run: {exc.message}", code=exc.code) from exc
    raise_if_any(problems)
    return manifest


def check_channels(svc: Services, request: Mapping[str, Any]) -> None:
    """Just before CreateTrainingJob: the request's channels still hold data (PreflightFailed if not)."""
    raise_if_any(svc.channels.problems(training_channels(request)))


# --- at deploy: the endpoint is still this project's -----------------------------------------------------
def _claims(run: Run) -> bool:
    return run.effective_manifest().deploy.claim_endpoint


def check_endpoint(svc: Services, run: Run, endpoint: str) -> None:
    """Before the deploy creates anything: the validate check again, since another project may have
    deployed to the endpoint while this run built and trained (PreflightFailed, EndpointOwned)."""
    if _claims(run):
        return
    owner_run, endpoint_tags = svc.runs.endpoint_owner, svc.sagemaker.endpoint_tags
    raise_if_any(owner_problems(endpoint, run.project, owner_run=owner_run, endpoint_tags=endpoint_tags))


def own_endpoint(svc: Services, run: Run, endpoint: str) -> None:
    """Record the run as the endpoint's owner just before the endpoint call: on condition, unless claimed,
    that no run of another project recorded it since check_endpoint, so two projects cannot both pass."""
    try:
        svc.runs.set_endpoint_owner(endpoint, run.run_id, take_over=_claims(run))
    except Conflict as exc:
        owner = svc.runs.endpoint_owner(endpoint)
        raise PreflightFailed([endpoint_owned(endpoint, project_of_run(owner) if owner else None)]) from exc
