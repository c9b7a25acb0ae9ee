"""Asynchronous endpoints and data capture: the `[deploy.async]` and `[deploy.capture]` tables, what they
make of an endpoint config, and where SageMaker puts their objects.

SageMaker writes an asynchronous invocation's answer to `<output>/<inference id>.out` and its failure to
`<failure>/<inference id>-error.out`; it captures data as JSON Lines under
`<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/`. With no `output`, `failure` or `destination`, the
locations are under the artifacts bucket: `s3://<artifacts>/<project>/async/output/`, `.../async/failure/`
and `s3://<artifacts>/<project>/capture/`; the API puts an asynchronous invocation's body under
`s3://<artifacts>/<project>/async/input/`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?")
_TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
_CONTENT_TYPE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9.])*/[a-zA-Z0-9](-*[a-zA-Z0-9.+])*")

# SageMaker's limits (the AsyncInferenceClientConfig and DataCaptureConfig shapes of its API model).
MAX_CONCURRENT_INVOCATIONS: Final = 1000
MAX_CAPTURE_CONTENT_TYPES: Final = 10
MAX_S3_URI_LENGTH: Final = 512
ASYNC_INPUT: Final = "async/input"
ASYNC_OUTPUT: Final = "async/output"
ASYNC_FAILURE: Final = "async/failure"
CAPTURE: Final = "capture"
_CAPTURE_MODES: Final = {
    frozenset({"request"}): "Input",
    frozenset({"response"}): "Output",
}


def _s3_uri(value: str) -> str:
    if len(value) > MAX_S3_URI_LENGTH or not _S3_URI.fullmatch(value) or ".." in value.split("/", 3)[2]:
        raise ValueError(
            f"{value!r} is not an S3 URI SageMaker takes: write s3://<bucket>/<prefix> (at most "
            f"{MAX_S3_URI_LENGTH} characters), or leave it out for the default under the artifacts bucket"
        )
    return value.rstrip("/")


def _topic_arn(value: str) -> str:
    if not _TOPIC_ARN.fullmatch(value):
        raise ValueError(f"{value!r} is not an SNS topic ARN: write arn:aws:sns:<region>:<account>:<topic>")
    return value


def _content_type(value: str) -> str:
    if len(value) > 256 or not _CONTENT_TYPE.fullmatch(value):
        raise ValueError(f"{value!r} is not a content type: write one like 'text/csv' or 'application/json'")
    return value


S3Uri = Annotated[str, AfterValidator(_s3_uri)]
TopicArn = Annotated[str, AfterValidator(_topic_arn)]
ContentType = Annotated[str, AfterValidator(_content_type)]
ContentTypes = Annotated[list[ContentType], Field(min_length=1, max_length=MAX_CAPTURE_CONTENT_TYPES)]


CaptureWhat = Literal["request", "response"]
_CAPTURE_ALL: Final[tuple[CaptureWhat, ...]] = ("request", "response")


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class AsyncConfig(_Table):
    """[deploy.async]: an asynchronous endpoint (AsyncInferenceConfig of the endpoint config)."""

    output: S3Uri | None = None
    failure: S3Uri | None = None
    success_topic: TopicArn | None = None
    error_topic: TopicArn | None = None
    max_concurrent_invocations_per_instance: int | None = Field(
        default=None, ge=1, le=MAX_CONCURRENT_INVOCATIONS
    )

    def output_uri(self, artifact_bucket: str, project: str) -> str:
        """Where SageMaker writes the answers, `<output>/<inference id>.out` (no trailing '/')."""
        return self.output or f"s3://{artifact_bucket}/{project}/{ASYNC_OUTPUT}"

    def failure_uri(self, artifact_bucket: str, project: str) -> str:
        """Where SageMaker writes the failures, `<failure>/<inference id>-error.out`."""
        return self.failure or f"s3://{artifact_bucket}/{project}/{ASYNC_FAILURE}"


class CaptureConfig(_Table):
    """[deploy.capture]: data capture of the endpoint's requests and responses (DataCaptureConfig)."""

    sampling_percent: int = Field(default=100, ge=0, le=100)
    destination: S3Uri | None = None
    capture: Annotated[list[CaptureWhat], Field(min_length=1, max_length=2)] = Field(
        default_factory=lambda: list(_CAPTURE_ALL)
    )
    csv_content_types: ContentTypes | None = None
    json_content_types: ContentTypes | None = None

    def destination_uri(self, artifact_bucket: str, project: str) -> str:
        """The capture prefix: files land under `<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/`."""
        return self.destination or f"s3://{artifact_bucket}/{project}/{CAPTURE}"


def check_deploy(*, serverless: bool, async_: AsyncConfig | None, capture: CaptureConfig | None) -> list[str]:
    """What SageMaker refuses in these tables next to the rest of [deploy]: one message per problem."""
    problems = []
    if serverless and async_ is not None:
        problems.append(
            "async and serverless exclude each other: an asynchronous endpoint runs on instances "
            "(remove [deploy.serverless], or [deploy.async])"
        )
    if serverless and capture is not None:
        problems.append(
            "capture is not available on a serverless endpoint (SageMaker's serverless inference does "
            "not capture data): remove [deploy.capture], or run the endpoint on instances"
        )
    return problems


def async_inference_config(config: AsyncConfig, *, artifact_bucket: str, project: str) -> dict[str, Any]:
    """CreateEndpointConfig's AsyncInferenceConfig for [deploy.async]."""
    output: dict[str, Any] = {
        "S3OutputPath": config.output_uri(artifact_bucket, project) + "/",
        "S3FailurePath": config.failure_uri(artifact_bucket, project) + "/",
    }
    topics = {"SuccessTopic": config.success_topic, "ErrorTopic": config.error_topic}
    if any(topics.values()):
        output["NotificationConfig"] = {name: arn for name, arn in topics.items() if arn}
    request: dict[str, Any] = {"OutputConfig": output}
    if config.max_concurrent_invocations_per_instance is not None:
        request["ClientConfig"] = {
            "MaxConcurrentInvocationsPerInstance": config.max_concurrent_invocations_per_instance
        }
    return request


def data_capture_config(config: CaptureConfig, *, artifact_bucket: str, project: str) -> dict[str, Any]:
    """CreateEndpointConfig's DataCaptureConfig for [deploy.capture]."""
    mode = _CAPTURE_MODES.get(frozenset(config.capture), "InputAndOutput")
    modes = ["Input", "Output"] if mode == "InputAndOutput" else [mode]
    request: dict[str, Any] = {
        "EnableCapture": True,
        "InitialSamplingPercentage": config.sampling_percent,
        "DestinationS3Uri": config.destination_uri(artifact_bucket, project),
        "CaptureOptions": [{"CaptureMode": m} for m in modes],
    }
    header: dict[str, Any] = {}
    if config.csv_content_types:
        header["CsvContentTypes"] = list(config.csv_content_types)
    if config.json_content_types:
        header["JsonContentTypes"] = list(config.json_content_types)
    if header:
        request["CaptureContentTypeHeader"] = header
    return request


def input_key(project: str, inference: str) -> str:
    """The key (in the artifacts bucket) the API puts an asynchronous invocation's body at."""
    return f"{project}/{ASYNC_INPUT}/{inference}"


def output_location(output_uri: str, inference_id: str) -> str:
    """Where SageMaker writes an asynchronous invocation's answer."""
    return f"{output_uri.rstrip('/')}/{inference_id}.out"


def failure_location(failure_uri: str, inference_id: str) -> str:
    """Where SageMaker writes an asynchronous invocation's failure."""
    return f"{failure_uri.rstrip('/')}/{inference_id}-error.out"


def capture_prefix(destination_uri: str, endpoint: str, variant: str, hour: datetime | None = None) -> str:
    """The capture files' prefix of an endpoint's variant (of one UTC hour, when given)."""
    prefix = f"{destination_uri.rstrip('/')}/{endpoint}/{variant}/"
    return prefix + (f"{hour:%Y/%m/%d/%H}/" if hour is not None else "")


INFERENCE_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
