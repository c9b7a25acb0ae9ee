"""CodeBuild adapter: starts the image build for a bundle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.adapters.clients import translate

if TYPE_CHECKING:
    from mypy_boto3_codebuild import CodeBuildClient


class CodeBuild:
    """Starts builds of the one CodeBuild project, with the bundle object as the S3 source."""

    def __init__(self, client: CodeBuildClient, project: str) -> None:
        self._client = client
        self._project = project

    def start_build(
        self,
        *,
        bucket: str,
        key: str,
        version_id: str | None,
        environment: Mapping[str, str],
        secrets: Mapping[str, str],
        idempotency_token: str,
    ) -> str:
        """Start a build and return its id. `secrets` are Secrets Manager references, never values."""
        variables: list[Any] = [
            {"name": name, "value": value, "type": "PLAINTEXT"} for name, value in environment.items()
        ]
        variables += [
            {"name": name, "value": ref, "type": "SECRETS_MANAGER"} for name, ref in secrets.items()
        ]
        request: dict[str, Any] = {
            "projectName": self._project,
            "sourceTypeOverride": "S3",
            "sourceLocationOverride": f"{bucket}/{key}",
            "environmentVariablesOverride": variables,
            "idempotencyToken": idempotency_token,
        }
        if version_id:
            request["sourceVersion"] = version_id
        try:
            response = self._client.start_build(**request)
        except ClientError as exc:
            raise translate(exc, f"starting CodeBuild project {self._project}") from exc
        return response["build"]["id"]
