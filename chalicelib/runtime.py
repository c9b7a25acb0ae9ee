"""SageMaker Runtime adapter: forwards an invocation to an endpoint and maps its failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.aws import error_code, translate
from chalicelib.errors import BadRequest, ModelFailed

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient


class Endpoints:
    """Invokes endpoints; the body and content type pass through untouched."""

    def __init__(self, client: SageMakerRuntimeClient) -> None:
        self._client = client

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
                raise BadRequest(
                    f"endpoint {name}: {exc.response['Error'].get('Message', '')}", code="InvalidInvocation"
                ) from exc
            raise translate(exc, f"invoking endpoint {name}") from exc
        return response["Body"].read(), response.get("ContentType", "application/octet-stream")
