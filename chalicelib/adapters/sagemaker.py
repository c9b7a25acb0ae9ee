"""SageMaker adapter: training jobs, models, endpoint configs and endpoints, each created idempotently."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ParamValidationError

from chalicelib.adapters.clients import error_code, translate
from chalicelib.domain.errors import Conflict, UpstreamError
from chalicelib.domain.models import EndpointState

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

BUSY_STATUSES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})


class SageMaker:
    """Creates what a run needs; a replayed create finds the resource from the first and goes on."""

    def __init__(self, client: SageMakerClient) -> None:
        self._client = client

    def create_training_job(self, request: dict[str, Any]) -> bool:
        """Start the job; False when a job of that name exists already (a replay)."""
        try:
            self._client.create_training_job(**request)
        except (ClientError, ParamValidationError) as exc:
            if isinstance(exc, ClientError) and error_code(exc) == "ResourceInUse":
                return False
            raise translate(exc, f"creating training job {request['TrainingJobName']}") from exc
        return True

    def model_artifact(self, job_name: str) -> str:
        """The S3 URI of the job's model.tar.gz (the event does not carry it)."""
        try:
            job = self._client.describe_training_job(TrainingJobName=job_name)
        except ClientError as exc:
            raise translate(exc, f"describing training job {job_name}") from exc
        artifact = job.get("ModelArtifacts", {}).get("S3ModelArtifacts")
        if not artifact:
            raise UpstreamError(
                f"training job {job_name} completed without a model artifact", code="NoArtifact"
            )
        return artifact

    def create_model(self, request: dict[str, Any]) -> None:
        """Create the model unless it exists already."""
        self._create_unless_exists(
            "model", self._client.create_model, self._client.describe_model, "ModelName", request
        )

    def create_endpoint_config(self, request: dict[str, Any]) -> None:
        """Create the endpoint config unless it exists already."""
        self._create_unless_exists(
            "endpoint config",
            self._client.create_endpoint_config,
            self._client.describe_endpoint_config,
            "EndpointConfigName",
            request,
        )

    @staticmethod
    def _create_unless_exists(
        kind: str, create: Any, describe: Any, name_key: str, request: dict[str, Any]
    ) -> None:
        """Create; on refusal, succeed if the resource exists (a replay), else raise the refusal.

        SageMaker refuses a duplicate name with a ValidationException like any other invalid request, so the
        describe call, not the error's text, tells the two apart.
        """
        name = request[name_key]
        try:
            create(**request)
        except ParamValidationError as exc:
            raise translate(exc, f"creating {kind} {name}") from exc
        except ClientError as exc:
            try:
                describe(**{name_key: name})
            except ClientError:
                raise translate(exc, f"creating {kind} {name}") from exc

    def describe_endpoint(self, name: str) -> EndpointState | None:
        """The endpoint's state, or None when it does not exist."""
        try:
            matches = self._client.list_endpoints(NameContains=name, MaxResults=100)["Endpoints"]
        except ClientError as exc:
            raise translate(exc, f"listing endpoints named {name}") from exc
        if not any(e["EndpointName"] == name for e in matches):
            return None
        try:
            found = self._client.describe_endpoint(EndpointName=name)
        except ClientError as exc:
            raise translate(exc, f"describing endpoint {name}") from exc
        rollback = (found.get("LastDeploymentConfig") or {}).get("AutoRollbackConfiguration") or {}
        return EndpointState(
            name=name,
            status=found["EndpointStatus"],
            config_name=found["EndpointConfigName"],
            failure_reason=found.get("FailureReason"),
            rollback_alarms=tuple(alarm["AlarmName"] for alarm in rollback.get("Alarms", [])),
        )

    def instance_type(self, config_name: str) -> str | None:
        """The instance type of an endpoint config's first variant (None: serverless)."""
        try:
            config = self._client.describe_endpoint_config(EndpointConfigName=config_name)
        except ClientError as exc:
            raise translate(exc, f"describing endpoint config {config_name}") from exc
        variants = config.get("ProductionVariants") or []
        return variants[0].get("InstanceType") if variants else None

    def endpoint_tags(self, name: str) -> dict[str, str] | None:
        """The endpoint's tags, or None when it does not exist."""
        try:
            matches = self._client.list_endpoints(NameContains=name, MaxResults=100)["Endpoints"]
            arn = next((e["EndpointArn"] for e in matches if e["EndpointName"] == name), None)
            if arn is None:
                return None
            tags = self._client.list_tags(ResourceArn=arn, MaxResults=100).get("Tags", [])
        except ClientError as exc:
            raise translate(exc, f"reading the tags of endpoint {name}") from exc
        return {tag["Key"]: tag["Value"] for tag in tags}

    def create_or_update_endpoint(
        self,
        name: str,
        config_name: str,
        tags: list[dict[str, str]],
        deployment_config: dict[str, Any] | None = None,
    ) -> str:
        """Point the endpoint at `config_name`: create it, update it (blue/green, as `deployment_config`
        says), or nothing if it already is.

        Returns what was done: "created", "updated", "recreated" (a Failed endpoint, which SageMaker lets
        one only delete, deleted and created again) or "unchanged".
        """
        current = self.describe_endpoint(name)
        try:
            if current is None:
                self._client.create_endpoint(EndpointName=name, EndpointConfigName=config_name, Tags=tags)  # type: ignore[arg-type]
                return "created"
            if current.config_name == config_name:
                return "unchanged"
            if current.status in BUSY_STATUSES:
                raise Conflict(
                    f"endpoint {name} is {current.status} with config {current.config_name}; "
                    "retry this run once that change has finished"
                )
            if current.status == "Failed":
                # Deletion is the only operation SageMaker allows on a failed endpoint (it serves nothing).
                self._client.delete_endpoint(EndpointName=name)
                after = self.describe_endpoint(name)
                if after is None:
                    self._client.create_endpoint(EndpointName=name, EndpointConfigName=config_name, Tags=tags)  # type: ignore[arg-type]
                    return "recreated"
                raise Conflict(
                    f"endpoint {name} was Failed ({current.failure_reason or 'no reason given'}), the only "
                    f"change SageMaker allows on it is deletion, and it is {after.status} now; retry this "
                    "run once it is gone (usually within a minute)"
                )
            update: dict[str, Any] = {"EndpointName": name, "EndpointConfigName": config_name}
            if deployment_config:
                update["DeploymentConfig"] = deployment_config
            self._client.update_endpoint(**update)
            return "updated"
        except (ClientError, ParamValidationError) as exc:
            raise translate(exc, f"deploying endpoint {name}") from exc
