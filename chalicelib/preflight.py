"""Pre-flight: what SageMaker would refuse or fail on, found before a build or a training job is paid for.

The manifest's own limits (instance types, counts, ranges, lengths: chalicelib/limits.py) are checked when
it is parsed. What depends on the world is checked here, every problem collected so that all are reported
at once:

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
- the names derived from the run id fit SageMaker's 63 characters (NameTooLong).

A channel in a bucket other than the data bucket that sagedock may not list is not checked (the
deployment grants s3:ListBucket on the data bucket only) and is logged; SageMaker still reads it with its
own role.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from chalicelib import limits, names
from chalicelib.aws import error_code, translate
from chalicelib.errors import BundleRejected, Conflict, UpstreamError

if TYPE_CHECKING:
    from chalicelib.manifest import Manifest
    from chalicelib.models import Run
    from chalicelib.services import Services

PROJECT_TAG: Final = "sagedock:project"
_NOT_LISTABLE: Final = frozenset({"AccessDenied", "AllAccessDisabled", "403"})
_NO_BUCKET: Final = frozenset({"NoSuchBucket", "404"})


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


# --- channels --------------------------------------------------------------------------------------------
def channel_problems(client: Any, channels: Mapping[str, str], *, data_bucket: str) -> list[Problem]:
    """An EmptyChannel problem for each channel (name -> s3:// URI) whose prefix holds no object.

    One ListObjectsV2 with MaxKeys=1 per channel. Throttling raises TransientError (the event is retried);
    a data bucket sagedock may not list raises UpstreamError (the deployment is wrong, not the bundle).
    """
    problems = []
    for name, uri in sorted(channels.items()):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        try:
            listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except ClientError as exc:
            code = error_code(exc)
            if code in _NO_BUCKET:
                problems.append(_empty(name, uri, f"bucket {bucket} does not exist"))
            elif code in _NOT_LISTABLE and bucket != data_bucket:
                from chalicelib.observability import logger

                logger.info("channel not checked: sagedock may not list it", extra={"channel": uri})
            else:
                raise translate(exc, f"listing training channel {name} at {uri}") from exc
            continue
        if not listed.get("Contents"):
            problems.append(_empty(name, uri, "it holds no object"))
    return problems


def resolve_channels(
    client: Any, manifest: Manifest, *, project: str, data_bucket: str
) -> tuple[Manifest, list[Problem]]:
    """The manifest with its channels resolved, and the problems of its channels.

    Named channels stay as they are and are checked for data; with none named, each `<project>/<channel>/`
    prefix holding data becomes a channel (the SageMaker SDK's convention), and no such prefix is a problem.
    """
    if manifest.train.channels is not None:
        uris = manifest.train.channel_uris(data_bucket)
        return manifest, channel_problems(client, uris, data_bucket=data_bucket)
    found, problems = discovered_channels(client, project=project, data_bucket=data_bucket)
    return manifest.model_copy(update={"train": manifest.train.with_channels(found)}), problems


def discovered_channels(
    client: Any, *, project: str, data_bucket: str
) -> tuple[dict[str, str], list[Problem]]:
    """Each `<project>/<name>/` prefix of the data bucket as a channel `name` -> that prefix.

    A prefix is listed only when an object lies under it, so every channel found holds data. Names that
    SageMaker would refuse as a channel name are left out (and logged).
    """
    from chalicelib.manifest import CHANNEL_NAME_PATTERN

    base = f"{project}/"
    names_found: list[str] = []
    request: dict[str, Any] = {"Bucket": data_bucket, "Prefix": base, "Delimiter": "/"}
    while True:
        try:
            listed = client.list_objects_v2(**request)
        except ClientError as exc:
            raise translate(exc, f"listing the channels under s3://{data_bucket}/{base}") from exc
        names_found += [entry["Prefix"][len(base) : -1] for entry in listed.get("CommonPrefixes", [])]
        if not listed.get("IsTruncated") or len(names_found) > limits.MAX_CHANNELS:
            break
        request["ContinuationToken"] = listed["NextContinuationToken"]
    usable = sorted(name for name in names_found if CHANNEL_NAME_PATTERN.fullmatch(name))
    if len(usable) < len(names_found):
        from chalicelib.observability import logger

        skipped = sorted(set(names_found) - set(usable))
        logger.info("prefixes that are not channel names left out", extra={"prefixes": skipped})
    where = f"s3://{data_bucket}/{base}"
    if not usable:
        return {}, [
            Problem(
                "EmptyChannel",
                "train.channels",
                f"no channel named under [train.channels] and no data under {where}<channel>/: put each "
                f"channel's data under its own prefix ({where}train/, or {where}training/ for a container "
                "that reads /opt/ml/input/data/training), name the channels under [train.channels], or "
                "write channels = {} under [train] for a job without input",
            )
        ]
    if len(usable) > limits.MAX_CHANNELS:
        return {}, [
            Problem(
                "TooManyChannels",
                "train.channels",
                f"more than {limits.MAX_CHANNELS} prefixes under {where} would each be a channel, and "
                f"SageMaker takes at most {limits.MAX_CHANNELS}: name the channels under [train.channels]",
            )
        ]
    return {name: f"{base}{name}/" for name in usable}, []


def _empty(name: str, uri: str, why: str) -> Problem:
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
    return [_owned(name, owner)]


def _owned(name: str, owner: str | None) -> Problem:
    made_by = f"was deployed by project {owner!r}" if owner else "was not deployed by sagedock"
    return Problem(
        "EndpointOwned",
        "deploy.endpoint_name",
        f"endpoint {name!r} exists and {made_by}; deploying would take it over. Name another endpoint "
        f"(endpoint_name under [deploy]), or set claim_endpoint = true under [deploy] to replace what "
        f"it serves with this project's model",
    )


# --- the checks of a run ---------------------------------------------------------------------------------
def check_run(svc: Services, run_id: str, project: str, attempt: int, manifest: Manifest) -> Manifest:
    """Every pre-flight check of a run at validate; PreflightFailed lists every problem found. The
    manifest comes back with its channels resolved (`resolve_channels`), as the run records it.

    An AWS call that fails for a reason other than the bundle ends the run too (BundleRejected with the
    call's code), since validate has nothing to retry; throttling is raised as TransientError.
    """
    data_bucket = svc.settings.data_bucket
    try:
        manifest, channels = resolve_channels(svc.s3, manifest, project=project, data_bucket=data_bucket)
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
    data_bucket = svc.settings.data_bucket
    raise_if_any(channel_problems(svc.s3, training_channels(request), data_bucket=data_bucket))


# --- at deploy: the endpoint is still this project's -----------------------------------------------------
def _claims(run: Run) -> bool:
    return bool((run.manifest or {}).get("deploy", {}).get("claim_endpoint", False))


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
        raise PreflightFailed([_owned(endpoint, project_of_run(owner) if owner else None)]) from exc
