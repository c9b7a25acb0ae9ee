"""SageMaker Runtime adapter: forwards an invocation to an endpoint and maps its failures; puts an
asynchronous invocation's body in S3 and reads back its answer, and the endpoint's captured records."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.adapters.clients import error_code, translate
from chalicelib.domain import names
from chalicelib.domain.errors import BadRequest, ModelFailed, NotFound

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

_NO_SUCH_KEY = {"NoSuchKey", "404", "NotFound"}
# Capture files are JSON Lines of at most a few MB (SageMaker rolls them over); one is read whole.
MAX_CAPTURE_FILE_BYTES = 64 * 1024**2

# What DescribeEndpoint answers for a well-formed name that names no endpoint (moto says ValidationError).
_NO_SUCH_ENDPOINT = {"ValidationException", "ValidationError"}


class Endpoints:
    """Invokes endpoints; the body and content type pass through untouched."""

    def __init__(self, client: SageMakerRuntimeClient, control: SageMakerClient, s3: S3Client) -> None:
        self._client = client
        self._control_client = control
        self._s3_client = s3

    def invoke(self, name: str, body: bytes, content_type: str, accept: str | None) -> tuple[bytes, str]:
        """The model's answer and its content type."""
        request = {"EndpointName": name, "Body": body, "ContentType": content_type}
        if accept:
            request["Accept"] = accept
        try:
            response = self._client.invoke_endpoint(**request)  # type: ignore[arg-type]
        except ClientError as exc:
            code = error_code(exc)
            if code == "ModelError":
                original = int(str(exc.response.get("OriginalStatusCode") or 502))
                status = original if 400 <= original < 500 else 502
                message = str(exc.response.get("OriginalMessage") or exc.response["Error"].get("Message", ""))
                raise ModelFailed(
                    f"endpoint {name}: the model answered {original}: {message}", status=status
                ) from exc
            if code == "ValidationError":
                if not self._exists(name):
                    raise NotFound(f"no endpoint {name}: deploy a run to create it") from exc
                raise BadRequest(
                    f"endpoint {name}: {exc.response['Error'].get('Message', '')}", code="InvalidInvocation"
                ) from exc
            raise translate(exc, f"invoking endpoint {name}") from exc
        return response["Body"].read(), response.get("ContentType", "application/octet-stream")

    def _exists(self, name: str) -> bool:
        """Whether the endpoint exists: the runtime answers ValidationError for a missing endpoint and for a
        bad request alike, so one DescribeEndpoint, on this error path only, tells them apart."""
        try:
            self._control_client.describe_endpoint(EndpointName=name)
        except ClientError as exc:
            # Anything else (throttling, a denied call) says nothing about the endpoint: keep its own error.
            return error_code(exc) not in _NO_SUCH_ENDPOINT
        return True

    # -- asynchronous invocations ---------------------------------------------------------------------
    def invoke_async(
        self,
        name: str,
        body: bytes,
        content_type: str,
        accept: str | None,
        *,
        input_uri: str,
        inference_id: str,
    ) -> tuple[str, str, str | None]:
        """Put the body at `input_uri` and queue it: (inference id, output location, failure location)."""
        bucket, key = names.split_s3_uri(input_uri)
        try:
            self._s3_client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        except ClientError as exc:
            raise translate(exc, f"putting the invocation's body at {input_uri}") from exc
        request: dict[str, Any] = {
            "EndpointName": name,
            "InputLocation": input_uri,
            "ContentType": content_type,
            "InferenceId": inference_id,
        }
        if accept:
            request["Accept"] = accept
        try:
            response = self._client.invoke_endpoint_async(**request)
        except ClientError as exc:
            if error_code(exc) in ("ValidationError", "ValidationException"):
                if not self._exists(name):
                    raise NotFound(f"no endpoint {name}: deploy a run to create it") from exc
                raise BadRequest(
                    f"endpoint {name}: {exc.response['Error'].get('Message', '')}", code="InvalidInvocation"
                ) from exc
            raise translate(exc, f"invoking endpoint {name} asynchronously") from exc
        return (
            str(response.get("InferenceId") or inference_id),
            str(response["OutputLocation"]),
            response.get("FailureLocation"),
        )

    def read(self, uri: str) -> tuple[bytes, str] | None:
        """An object's body and content type; None: there is none (yet)."""
        bucket, key = names.split_s3_uri(uri)
        try:
            found = self._s3_client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _NO_SUCH_KEY:
                return None
            raise translate(exc, f"reading {uri}") from exc
        return found["Body"].read(), found.get("ContentType") or "application/octet-stream"

    # -- data capture ---------------------------------------------------------------------------------
    def captures(self, prefix_uri: str, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` records captured under `<prefix>` (`<destination>/<endpoint>/<variant>/`),
        newest first: the hour folders yyyy/mm/dd/hh/ are walked from the latest down."""
        bucket, prefix = names.split_s3_uri(prefix_uri)
        records: list[dict[str, Any]] = []
        for key in self._newest_files(bucket, prefix, depth=4):
            lines = self._lines(bucket, key)
            for line in reversed(lines):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
                if len(records) >= limit:
                    return records
        return records

    def _newest_files(self, bucket: str, prefix: str, depth: int) -> Any:
        """The keys under `prefix`, newest folder (and, inside an hour, newest name) first."""
        folders, files = self._list(bucket, prefix)
        if depth == 0:
            yield from sorted(files, reverse=True)
            return
        for folder in sorted(folders, reverse=True):
            yield from self._newest_files(bucket, folder, depth - 1)

    def _list(self, bucket: str, prefix: str) -> tuple[list[str], list[str]]:
        folders: list[str] = []
        files: list[str] = []
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
        try:
            while True:
                page = self._s3_client.list_objects_v2(**request)
                folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
                files += [o["Key"] for o in page.get("Contents", []) if o.get("Size", 0) > 0]
                if not page.get("IsTruncated"):
                    break
                request["ContinuationToken"] = page["NextContinuationToken"]
        except ClientError as exc:
            if error_code(exc) == "NoSuchBucket":
                return [], []
            raise translate(exc, f"listing s3://{bucket}/{prefix}") from exc
        return folders, files

    def _lines(self, bucket: str, key: str) -> list[str]:
        try:
            found = self._s3_client.get_object(
                Bucket=bucket, Key=key, Range=f"bytes=0-{MAX_CAPTURE_FILE_BYTES}"
            )
        except ClientError as exc:
            if error_code(exc) in _NO_SUCH_KEY:
                return []
            raise translate(exc, f"reading s3://{bucket}/{key}") from exc
        text = found["Body"].read().decode("utf-8", errors="replace")
        return [line for line in text.splitlines() if line.strip()]
