"""The EventBridge events the pipeline reacts to, parsed into typed models (shapes as AWS sends them)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chalicelib.domain.errors import BadRequest


class _Detail(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


# --- S3 "Object Created" (source aws.s3) ---------------------------------------------------------------
class S3Bucket(_Detail):
    name: str


class S3Object(_Detail):
    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = Field(default=None, alias="version-id")
    sequencer: str | None = None


class ObjectCreated(_Detail):
    """detail of `Object Created`."""

    bucket: S3Bucket
    object: S3Object
    reason: str | None = None


# --- CodeBuild "CodeBuild Build State Change" (source aws.codebuild) -----------------------------------
class NameValue(_Detail):
    name: str
    value: str = ""
    type: str | None = None


class BuildPhase(_Detail):
    phase_type: str | None = Field(default=None, alias="phase-type")
    phase_status: str | None = Field(default=None, alias="phase-status")
    phase_context: list[str] = Field(default_factory=list, alias="phase-context")


class BuildLogs(_Detail):
    deep_link: str | None = Field(default=None, alias="deep-link")


class BuildEnvironment(_Detail):
    environment_variables: list[NameValue] = Field(default_factory=list, alias="environment-variables")


class BuildInformation(_Detail):
    logs: BuildLogs | None = None
    phases: list[BuildPhase] = Field(default_factory=list)
    exported_environment_variables: list[NameValue] = Field(
        default_factory=list, alias="exported-environment-variables"
    )
    environment: BuildEnvironment | None = None


class BuildStateChange(_Detail):
    """detail of `CodeBuild Build State Change`."""

    build_status: str = Field(alias="build-status")
    project_name: str = Field(alias="project-name")
    build_id: str = Field(alias="build-id")
    current_phase: str | None = Field(default=None, alias="current-phase")
    current_phase_context: str | None = Field(default=None, alias="current-phase-context")
    additional_information: BuildInformation = Field(
        default_factory=BuildInformation, alias="additional-information"
    )

    def environment_value(self, name: str) -> str | None:
        """A variable the build was started with (the pipeline passes RUN_ID this way)."""
        env = self.additional_information.environment
        for var in env.environment_variables if env else []:
            if var.name == name:
                return var.value
        return None

    def exported(self, name: str) -> str | None:
        """A variable the buildspec exported (IMAGE_DIGEST, IMAGE_URI), final once post_build ends."""
        for var in self.additional_information.exported_environment_variables:
            if var.name == name and var.value:
                return var.value
        return None

    def failure(self) -> tuple[str, str]:
        """(failing phase, its context) from the phases list, falling back on the current phase."""
        for phase in self.additional_information.phases:
            if phase.phase_status in ("FAILED", "FAULT", "TIMED_OUT", "STOPPED", "CLIENT_ERROR"):
                context = "; ".join(c for c in phase.phase_context if c and c != ": ")
                return phase.phase_type or "UNKNOWN", context
        return self.current_phase or "UNKNOWN", self.current_phase_context or ""


# --- ECR "ECR Image Action" (source aws.ecr) -----------------------------------------------------------
class ImageAction(_Detail):
    """detail of `ECR Image Action`."""

    result: str
    repository_name: str = Field(alias="repository-name")
    image_digest: str = Field(alias="image-digest")
    action_type: str = Field(alias="action-type")
    image_tag: str | None = Field(default=None, alias="image-tag")


class ImageScan(_Detail):
    """detail of `ECR Image Scan` (basic scanning): the scan of one image and its findings by severity."""

    scan_status: str = Field(alias="scan-status")
    repository_name: str = Field(alias="repository-name")
    image_digest: str = Field(alias="image-digest")
    image_tags: list[str] = Field(default_factory=list, alias="image-tags")
    finding_severity_counts: dict[str, int] = Field(default_factory=dict, alias="finding-severity-counts")


# --- SageMaker (source aws.sagemaker) ------------------------------------------------------------------
class SecondaryStatusTransition(_Detail):
    """One step of a training job (Starting, Downloading, Training, Uploading, ...); times in epoch ms."""

    status: str = Field(alias="Status")
    start_time: float = Field(alias="StartTime")
    status_message: str | None = Field(default=None, alias="StatusMessage")


class TrainingJobStateChange(_Detail):
    """detail of `SageMaker Training Job State Change` (sent on each status and secondary status change)."""

    training_job_name: str = Field(alias="TrainingJobName")
    training_job_status: str = Field(alias="TrainingJobStatus")
    secondary_status: str | None = Field(default=None, alias="SecondaryStatus")
    failure_reason: str | None = Field(default=None, alias="FailureReason")
    tags: dict[str, str] = Field(default_factory=dict, alias="Tags")
    secondary_status_transitions: tuple[SecondaryStatusTransition, ...] = Field(
        default=(), alias="SecondaryStatusTransitions"
    )
    last_modified_time: float | None = Field(default=None, alias="LastModifiedTime")


class EndpointStateChange(_Detail):
    """detail of `SageMaker Endpoint State Change`; EndpointStatus comes in UPPER_SNAKE (IN_SERVICE)."""

    endpoint_name: str = Field(alias="EndpointName")
    endpoint_config_name: str | None = Field(default=None, alias="EndpointConfigName")
    endpoint_status: str = Field(alias="EndpointStatus")
    failure_reason: str | None = Field(default=None, alias="FailureReason")
    tags: dict[str, str] = Field(default_factory=dict, alias="Tags")

    @property
    def status(self) -> str:
        """The status normalised to DescribeEndpoint's spelling (IN_SERVICE -> InService)."""
        return normalise_endpoint_status(self.endpoint_status)


def normalise_endpoint_status(value: str) -> str:
    """`IN_SERVICE`/`InService` -> `InService`: events and DescribeEndpoint spell statuses differently."""
    if "_" in value or value.isupper():
        return "".join(part.capitalize() for part in value.split("_"))
    return value


D = TypeVar("D", bound=_Detail)


def parse_detail(model: type[D], detail: dict[str, Any] | Any) -> D:
    """Validate an event's detail, raising BadRequest that lists what is missing or malformed."""
    try:
        return model.model_validate(detail)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'detail'}: {err['msg']}" for err in exc.errors()
        )
        raise BadRequest(f"malformed {model.__name__} event: {problems}", code="MalformedEvent") from exc
