"""S3 adapter of a serve-only bundle's model archive (`deploy.model_data`): it exists, checked at validate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from botocore.exceptions import ClientError

from chalicelib.adapters.clients import error_code, translate
from chalicelib.domain import names
from chalicelib.domain.preflight_rules import Problem, model_data_missing, model_data_outside

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING: Final = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404"})
_FORBIDDEN: Final = frozenset({"AccessDenied", "AllAccessDisabled", "Forbidden", "403"})


class S3ModelData:
    """The model data port: HeadObject of the archive, in the buckets the deployment lets sagedock read."""

    def __init__(self, client: S3Client, allowed_buckets: tuple[str, ...]) -> None:
        self._s3 = client
        self._allowed = allowed_buckets

    def problems(self, uri: str) -> list[Problem]:
        """A problem when the archive is outside the allowed buckets or is not there (model_data_problems)."""
        return model_data_problems(self._s3, uri, allowed_buckets=self._allowed)


def model_data_problems(client: S3Client, uri: str, *, allowed_buckets: tuple[str, ...]) -> list[Problem]:
    """ModelDataOutsideBuckets for an archive in a bucket sagedock may not read, ModelDataMissing when
    HeadObject finds no such object (404; a 403, where sagedock may not list the bucket, says the same).

    One HeadObject. Throttling raises TransientError (the event is retried); any other failure UpstreamError.
    """
    bucket, key = names.split_s3_uri(uri)
    if bucket not in allowed_buckets:
        return [model_data_outside(uri, allowed_buckets)]
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = error_code(exc)
        if code in _MISSING:
            return [model_data_missing(uri, "there is no such object")]
        if code in _FORBIDDEN:
            return [model_data_missing(uri, "it does not exist or sagedock may not read it")]
        raise translate(exc, f"reading the model data at {uri}") from exc
    return []
