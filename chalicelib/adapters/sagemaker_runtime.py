"""SageMaker Runtime adapter: forwards an invocation to an endpoint and maps its failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.adapters.clients import error_code, translate
from chalicelib.domain.errors import BadRequest, ModelFailed, NotFound

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

# What DescribeEndpoint answers for a well-formed name that names no endpoint (moto says ValidationError).
_NO_SUCH_ENDPOINT = {"ValidationException", "ValidationError"}


class Endpoints:
    """Invokes endpoints; the body and content type pass through untouched."""

    def __init__(self, client: SageMakerRuntimeClient, control: SageMakerClient) -> None:
        self._client = client
        self._control_client = control

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
