"""Asynchronous invocations and data capture, as SageMaker hosting does them, for the hosting executor.

An InvokeEndpointAsync is answered 202 at once with the inference id and its output and failure locations;
then the input is read from the emulator's S3, sent to the endpoint's serve (/invocations), and the answer
is written to `<S3OutputPath>/<inference id>.out` (a model error or an unreadable input to
`<S3FailurePath>/<inference id>-error.out`), and the config's SNS topics get SageMaker's notification.

With a DataCaptureConfig, each sampled invocation (real-time or asynchronous) is written as one line of
SageMaker's capture format, in a JSON Lines file under
`<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/` named `<mm>-<ss>-<ms>-<uuid>.jsonl`, as SageMaker
names them.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sagedock import eventshapes as events

log = logging.getLogger("local_cloud.inference")

VARIANT = "AllTraffic"


@dataclass(frozen=True)
class AsyncRequest:
    """One queued asynchronous invocation."""

    endpoint: str
    inference_id: str
    input_location: str
    content_type: str
    accept: str | None
    output_location: str
    failure_location: str
    config: dict[str, Any]  # the endpoint config's AsyncInferenceConfig


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def queued(endpoint: str, config: dict[str, Any], headers: dict[str, str]) -> AsyncRequest | tuple[str, str]:
    """The request InvokeEndpointAsync's headers make, or (error code, message) as SageMaker refuses it."""
    found = {name.lower(): value for name, value in headers.items()}
    input_location = found.get("x-amzn-sagemaker-inputlocation", "")
    if not input_location.startswith("s3://"):
        return "ValidationError", "InputLocation must be an S3 URI (s3://bucket/key)"
    inference_id = found.get("x-amzn-sagemaker-inference-id") or str(uuid.uuid4())
    output = config.get("OutputConfig") or {}
    output_path = str(output.get("S3OutputPath", "")).rstrip("/")
    failure_path = str(output.get("S3FailurePath") or output_path).rstrip("/")
    return AsyncRequest(
        endpoint=endpoint,
        inference_id=inference_id,
        input_location=input_location,
        content_type=found.get("x-amzn-sagemaker-content-type", "application/octet-stream"),
        accept=found.get("x-amzn-sagemaker-accept"),
        output_location=f"{output_path}/{inference_id}.out",
        failure_location=f"{failure_path}/{inference_id}-error.out",
        config=config,
    )


def process(
    emulator: Any,
    request: AsyncRequest,
    invoke: Any,
    capture_config: dict[str, Any] | None,
) -> None:
    """Read the input, invoke the serve, write the answer or the failure, notify, capture."""
    s3 = emulator.client("s3")
    received = _now()
    failure: str | None = None
    answer = b""
    out_type = "application/octet-stream"
    try:
        bucket, key = _split(request.input_location)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        body = b""
        failure = f"Failed to download the input from {request.input_location}: {exc}"
    if failure is None:
        try:
            status, out_type, answer = invoke(body, request.content_type, request.accept)
        except Exception as exc:
            failure = f"Received server error from primary: {exc}"
        else:
            if status >= 400:
                kind = "client" if status < 500 else "server"
                failure = (
                    f"Received {kind} error ({status}) from primary with message "
                    f'"{answer.decode("utf-8", "replace")[:1000]}".'
                )
    if failure is None:
        bucket, key = _split(request.output_location)
        s3.put_object(Bucket=bucket, Key=key, Body=answer, ContentType=out_type)
        if capture_config:
            capture(
                emulator,
                capture_config,
                request.endpoint,
                (request.content_type, body),
                (out_type, answer),
                inference_id=request.inference_id,
            )
    else:
        bucket, key = _split(request.failure_location)
        s3.put_object(Bucket=bucket, Key=key, Body=failure.encode(), ContentType="text/plain")
    log.info(
        "async invocation %s on %s %s",
        request.inference_id,
        request.endpoint,
        "failed" if failure else "completed",
    )
    _notify(emulator, request, received, failure, out_type)


def _notify(emulator: Any, request: AsyncRequest, received: str, failure: str | None, out_type: str) -> None:
    """SageMaker's InferenceResult notification to the success or the error topic, when configured."""
    topics = (request.config.get("OutputConfig") or {}).get("NotificationConfig") or {}
    topic = topics.get("ErrorTopic" if failure else "SuccessTopic")
    if not topic:
        return
    message: dict[str, Any] = {
        "awsRegion": emulator.region,
        "eventTime": _now(),
        "receivedTime": received,
        "invocationStatus": "Failed" if failure else "Completed",
        "requestParameters": {
            "accept": request.accept or "*/*",
            "contentType": request.content_type,
            "endpointName": request.endpoint,
            "inputLocation": request.input_location,
        },
        "responseParameters": (
            {"contentType": "text/plain; charset=utf-8", "failureLocation": request.failure_location}
            if failure
            else {"contentType": out_type, "outputLocation": request.output_location}
        ),
        "inferenceId": request.inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    if failure:
        message["failureReason"] = failure
    try:
        emulator.client("sns").publish(TopicArn=topic, Message=json.dumps(message))
    except Exception:
        log.exception("publishing the async result of %s to %s failed", request.inference_id, topic)


def _encoded(config: dict[str, Any], content_type: str, data: bytes) -> tuple[str, str]:
    header = config.get("CaptureContentTypeHeader") or {}
    base = content_type.split(";")[0].strip()
    if base in header.get("CsvContentTypes", []):
        return "CSV", data.decode("utf-8", "replace")
    if base in header.get("JsonContentTypes", []):
        return "JSON", data.decode("utf-8", "replace")
    return "BASE64", base64.b64encode(data).decode()


def capture(
    emulator: Any,
    config: dict[str, Any],
    endpoint: str,
    request: tuple[str, bytes],
    response: tuple[str, bytes],
    *,
    inference_id: str | None = None,
) -> str | None:
    """Write one invocation's capture record, if sampled: the key written (None: not captured)."""
    if not config.get("EnableCapture", True):
        return None
    if random.uniform(0, 100) >= float(config.get("InitialSamplingPercentage", 100)):  # noqa: S311
        return None
    modes = {option.get("CaptureMode") for option in config.get("CaptureOptions", [])}
    data: dict[str, Any] = {}
    for mode, name, (content_type, body) in (
        ("Input", "endpointInput", request),
        ("Output", "endpointOutput", response),
    ):
        if mode in modes or "InputAndOutput" in modes:
            encoding, text = _encoded(config, content_type, body)
            data[name] = {
                "observedContentType": content_type,
                "mode": mode.upper(),
                "data": text,
                "encoding": encoding,
            }
    now = datetime.now(UTC)
    metadata: dict[str, Any] = {
        "eventId": str(uuid.uuid4()),
        "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if inference_id:
        metadata["inferenceId"] = inference_id
    record = {"captureData": data, "eventMetadata": metadata, "eventVersion": "0"}
    bucket, prefix = _split(str(config.get("DestinationS3Uri", "")).rstrip("/"))
    name = f"{now:%M-%S}-{now.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
    key = "/".join(part for part in (prefix, endpoint, VARIANT, f"{now:%Y/%m/%d/%H}", name) if part)
    emulator.client("s3").put_object(Bucket=bucket, Key=key, Body=(json.dumps(record) + "\n").encode())
    return key


def endpoint_config(emulator: Any, config_name: str) -> Any:
    """The emulator's (moto's) endpoint config object, or None."""
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[events.ACCOUNT][emulator.region].endpoint_configs.get(config_name)
