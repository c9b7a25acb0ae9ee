"""S3 adapter of training channels: each channel holds data, or the channels found by the SDK's convention."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from chalicelib.adapters.clients import error_code, translate
from chalicelib.domain import limits, names
from chalicelib.domain.preflight_rules import Problem, empty_channel

if TYPE_CHECKING:
    from chalicelib.domain.manifest import Manifest


class S3Channels:
    """The channels port on the data bucket."""

    def __init__(self, client: Any, data_bucket: str) -> None:
        self._s3 = client
        self._data_bucket = data_bucket

    def problems(self, channels: Mapping[str, str]) -> list[Problem]:
        """An EmptyChannel problem for each channel whose prefix holds no object (channel_problems)."""
        return channel_problems(self._s3, channels, data_bucket=self._data_bucket)

    def resolve(self, manifest: Manifest, *, project: str) -> tuple[Manifest, list[Problem]]:
        """The manifest with its channels resolved, and their problems (resolve_channels)."""
        return resolve_channels(self._s3, manifest, project=project, data_bucket=self._data_bucket)


_NOT_LISTABLE: Final = frozenset({"AccessDenied", "AllAccessDisabled", "403"})


_NO_BUCKET: Final = frozenset({"NoSuchBucket", "404"})


# --- channels --------------------------------------------------------------------------------------------
def channel_problems(client: Any, channels: Mapping[str, str], *, data_bucket: str) -> list[Problem]:
    """An EmptyChannel problem for each channel (name -> s3:// URI) whose prefix holds no object.

    One ListObjectsV2 with MaxKeys=1 per channel. Throttling raises TransientError (the event is retried);
    a data bucket sagedock may not list raises UpstreamError (the deployment is wrong, not the bundle).
    """
    problems = []
    for name, uri in sorted(channels.items()):
        bucket, prefix = names.split_s3_uri(uri)
        try:
            listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except ClientError as exc:
            code = error_code(exc)
            if code in _NO_BUCKET:
                problems.append(empty_channel(name, uri, f"bucket {bucket} does not exist"))
            elif code in _NOT_LISTABLE and bucket != data_bucket:
                from chalicelib.observability import logger

                logger.info("channel not checked: sagedock may not list it", extra={"channel": uri})
            else:
                raise translate(exc, f"listing training channel {name} at {uri}") from exc
            continue
        if not listed.get("Contents"):
            problems.append(empty_channel(name, uri, "it holds no object"))
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
    from chalicelib.domain.manifest import CHANNEL_NAME_PATTERN

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
