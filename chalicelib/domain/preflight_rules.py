"""Pre-flight: what SageMaker would refuse or fail on, found before a build or a training job is paid for.

The manifest's own limits (instance types, counts, ranges, lengths: chalicelib/domain/limits.py) are
checked when it is parsed. What depends on the world is checked here, every problem collected so that
all are reported at once:

- with no `[train].channels`, the channels are found by the SageMaker SDK's convention: every
  `<project>/<channel>/` prefix of the data bucket (ListObjectsV2 with Delimiter="/" under `<project>/`,
  one call unless more than 1,000 keys sit directly under it); none found is EmptyChannel, more than
  SageMaker's 20 is TooManyChannels;
- every named training channel holds at least one object (one ListObjectsV2, MaxKeys=1, per channel): at
  validate, before the build, and again inside the at-most-once creation of the training job, since data
  may be deleted while the image builds (EmptyChannel);
- the endpoint the run would deploy to is not another project's (EndpointOwned) unless the manifest
  claims it with `deploy.claim_endpoint = true`: at validate, and again at deploy, where the run records
  itself as the endpoint's owner on condition that no other project did meanwhile;
- the names derived from the run id fit SageMaker's 63 characters (NameTooLong);
- a serve-only bundle's `deploy.model_data` is in the data or the artifact bucket (ModelDataOutsideBuckets)
  and exists (one HeadObject: ModelDataMissing); its training channels are not looked at.

A channel in a bucket other than the data bucket that sagedock may not list is not checked (the
deployment grants s3:ListBucket on the data bucket only) and is logged; SageMaker still reads it with its
own role.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from chalicelib.domain import limits, names
from chalicelib.domain.errors import BundleRejected

if TYPE_CHECKING:
    from chalicelib.domain.manifest import Manifest

PROJECT_TAG: Final = "sagedock:project"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason SageMaker would refuse or fail the run: a code, the manifest key, what to do."""

    code: str
    field: str
    message: str

    def render(self) -> str:
        """`key: message`, the way the CLI and the run's error show it."""
        return f"{self.field}: {self.message}"


class PreflightFailed(BundleRejected):
    """Pre-flight checks failed; the message lists every problem, the code is theirs when they share one."""

    code = "PreflightFailed"

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        codes = {problem.code for problem in self.problems}
        super().__init__(
            "; ".join(problem.render() for problem in self.problems),
            code=codes.pop() if len(codes) == 1 else None,
        )


def raise_if_any(problems: list[Problem]) -> None:
    """Raise PreflightFailed with every problem found, if there is one."""
    if problems:
        raise PreflightFailed(problems)


# --- derived names ---------------------------------------------------------------------------------------
def name_problems(run_id: str, attempt: int = 1) -> list[Problem]:
    """The training job, model and endpoint config names the run would create, within SageMaker's rule."""
    derived = {
        "training job": names.training_job_name(run_id, attempt),
        "model": names.model_name(run_id),
        "endpoint config": names.endpoint_config_name(run_id),
    }
    return [
        Problem(
            "NameTooLong",
            "project",
            f"the {what} name {name!r} has {len(name)} characters; SageMaker allows "
            f"{limits.MAX_NAME_LENGTH} letters, digits and hyphens: use a shorter project name",
        )
        for what, name in derived.items()
        if not names.SAGEMAKER_NAME_PATTERN.fullmatch(name)
    ]


def empty_channel(name: str, uri: str, why: str) -> Problem:
    return Problem(
        "EmptyChannel",
        f"train.channels.{name}",
        f"training channel {name!r} reads {uri}, but {why}: SageMaker would fail the job with 'No S3 objects "
        f"found'. Upload the data (aws s3 cp --recursive ./data/ {uri}), point [train.channels] {name} at "
        "where the data is, or write channels = {} under [train] for a job without input",
    )


def training_channels(request: Mapping[str, Any]) -> dict[str, str]:
    """The channels (name -> S3 URI) a CreateTrainingJob request reads: exactly what SageMaker will list."""
    return {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"]
        for channel in request.get("InputDataConfig", [])
    }


# --- a serve-only bundle's model ------------------------------------------------------------------------
def model_data_missing(uri: str, why: str) -> Problem:
    return Problem(
        "ModelDataMissing",
        "deploy.model_data",
        f"the endpoint would serve {uri}, but {why}: SageMaker would fail the endpoint when it downloads "
        f"the model. Upload the archive (aws s3 cp model.tar.gz {uri}) or point model_data at it",
    )


def model_data_outside(uri: str, allowed_buckets: tuple[str, ...]) -> Problem:
    buckets = " or ".join(f"s3://{bucket}/" for bucket in allowed_buckets)
    return Problem(
        "ModelDataOutsideBuckets",
        "deploy.model_data",
        f"{uri} is outside the buckets this deployment reads models from ({buckets}): copy the archive "
        "into one of them (docs/deploy.md says why, and what an operator grants to widen it)",
    )


# --- endpoint ownership ----------------------------------------------------------------------------------
def project_of_run(run_id: str) -> str | None:
    """The project a run id (`<project>-<12 hex>`) belongs to."""
    return run_id[:-13] if names.is_run_id(run_id) else None


def endpoint_problems(
    manifest: Manifest,
    project: str,
    *,
    owner_run: Callable[[str], str | None],
    endpoint_tags: Callable[[str], dict[str, str] | None],
) -> list[Problem]:
    """EndpointOwned when the endpoint exists and another project (or something outside sagedock) made it.

    The owner is the project of the run that last deployed the endpoint (the runs table's endpoint item,
    one GetItem); without one, the endpoint's `sagedock:project` tag (ListEndpoints, ListTags). An endpoint
    that does not exist, or that this project owns, is free; `deploy.claim_endpoint = true` takes over any.
    """
    deploy = manifest.deploy
    if not deploy.enabled or deploy.claim_endpoint:
        return []
    return owner_problems(deploy.endpoint_name, project, owner_run=owner_run, endpoint_tags=endpoint_tags)


def owner_problems(
    name: str,
    project: str,
    *,
    owner_run: Callable[[str], str | None],
    endpoint_tags: Callable[[str], dict[str, str] | None],
) -> list[Problem]:
    """EndpointOwned when endpoint `name` is not free for `project` (the rule of endpoint_problems)."""
    last = owner_run(name)
    owner = project_of_run(last) if last else None
    if owner == project:
        return []
    tags = endpoint_tags(name)
    if tags is None:
        return []
    owner = owner or tags.get(PROJECT_TAG)
    if owner == project:
        return []
    return [endpoint_owned(name, owner)]


def endpoint_owned(name: str, owner: str | None) -> Problem:
    made_by = f"was deployed by project {owner!r}" if owner else "was not deployed by sagedock"
    return Problem(
        "EndpointOwned",
        "deploy.endpoint_name",
        f"endpoint {name!r} exists and {made_by}; deploying would take it over. Name another endpoint "
        f"(endpoint_name under [deploy]), or set claim_endpoint = true under [deploy] to replace what "
        f"it serves with this project's model",
    )
