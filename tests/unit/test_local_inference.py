"""The local cloud's asynchronous invocations and data capture (sagedock/local/inference.py) against moto's
S3 and SNS: the objects at SageMaker's locations, its capture format and path layout."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sagedock.local import inference

REGION = "us-east-1"
BUCKET = "artifacts"
CAPTURE = {
    "EnableCapture": True,
    "InitialSamplingPercentage": 100,
    "DestinationS3Uri": f"s3://{BUCKET}/iris/capture",
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
}


class FakeEmulator:
    region = REGION

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEmulator]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        yield FakeEmulator()


def objects(prefix: str) -> dict[str, bytes]:
    s3 = boto3.client("s3", region_name=REGION)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def test_a_real_time_invocation_is_captured_in_sagemakers_format_and_layout(emulator: FakeEmulator) -> None:
    key = inference.capture(
        emulator, CAPTURE, "iris", ("text/csv", b"5.1,3.5,1.4,0.2"), ("application/json", b'{"p": 1}')
    )

    assert key is not None
    assert re.fullmatch(
        r"iris/capture/iris/AllTraffic/\d{4}/\d{2}/\d{2}/\d{2}/\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl", key
    ), key
    (line,) = objects("iris/capture/").values()
    record = json.loads(line)
    assert record["eventVersion"] == "0"
    assert set(record["eventMetadata"]) == {"eventId", "inferenceTime"}
    assert record["captureData"] == {
        "endpointInput": {
            "observedContentType": "text/csv",
            "mode": "INPUT",
            "data": "5.1,3.5,1.4,0.2",
            "encoding": "CSV",
        },
        "endpointOutput": {
            "observedContentType": "application/json",
            "mode": "OUTPUT",
            "data": base64.b64encode(b'{"p": 1}').decode(),
            "encoding": "BASE64",
        },
    }


def test_only_what_the_config_captures_and_nothing_when_not_sampled(emulator: FakeEmulator) -> None:
    only_output = {**CAPTURE, "CaptureOptions": [{"CaptureMode": "Output"}]}
    inference.capture(emulator, only_output, "iris", ("text/csv", b"1"), ("text/csv", b"a"))
    (line,) = objects("iris/capture/").values()
    assert set(json.loads(line)["captureData"]) == {"endpointOutput"}

    never = {**CAPTURE, "InitialSamplingPercentage": 0}
    assert inference.capture(emulator, never, "iris", ("text/csv", b"1"), ("text/csv", b"a")) is None
    assert len(objects("iris/capture/")) == 1


ASYNC = {
    "OutputConfig": {
        "S3OutputPath": f"s3://{BUCKET}/iris/async/output/",
        "S3FailurePath": f"s3://{BUCKET}/iris/async/failure/",
    }
}


def request(inference_id: str) -> inference.AsyncRequest:
    queued = inference.queued(
        "iris",
        ASYNC,
        {
            "X-Amzn-Sagemaker-Inputlocation": f"s3://{BUCKET}/iris/async/input/{inference_id}",
            "X-Amzn-Sagemaker-Content-Type": "text/csv",
            "X-Amzn-Sagemaker-Inference-Id": inference_id,
        },
    )
    assert isinstance(queued, inference.AsyncRequest)
    return queued


def test_an_async_answer_lands_at_output_slash_id_dot_out_and_is_captured(emulator: FakeEmulator) -> None:
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key="iris/async/input/a1", Body=b"5.1")
    sent: list[tuple[bytes, str, str | None]] = []

    def serve(body: bytes, content_type: str, accept: str | None) -> tuple[int, str, bytes]:
        sent.append((body, content_type, accept))
        return 200, "text/csv", b"setosa\n"

    inference.process(emulator, request("a1"), serve, CAPTURE)

    assert sent == [(b"5.1", "text/csv", None)]
    assert objects("iris/async/output/") == {"iris/async/output/a1.out": b"setosa\n"}
    (line,) = objects("iris/capture/").values()
    assert json.loads(line)["eventMetadata"]["inferenceId"] == "a1"


def test_a_model_error_or_a_missing_input_is_a_failure_object_and_tells_the_error_topic(
    emulator: FakeEmulator,
) -> None:
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="failures")["TopicArn"]
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    config = {"OutputConfig": {**ASYNC["OutputConfig"], "NotificationConfig": {"ErrorTopic": topic}}}
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key="iris/async/input/b2", Body=b"x")

    def broken(body: bytes, content_type: str, accept: str | None) -> tuple[int, str, bytes]:
        return 500, "text/plain", b"could not parse x"

    inference.process(emulator, _with(request("b2"), config), broken, None)
    inference.process(emulator, _with(request("c3"), config), broken, None)  # no input object at all

    failures = objects("iris/async/failure/")
    assert set(failures) == {"iris/async/failure/b2-error.out", "iris/async/failure/c3-error.out"}
    assert b"Received server error (500) from primary" in failures["iris/async/failure/b2-error.out"]
    assert b"Failed to download the input" in failures["iris/async/failure/c3-error.out"]
    assert objects("iris/async/output/") == {}
    messages = [
        json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    ]
    assert sorted(m["inferenceId"] for m in messages) == ["b2", "c3"]
    assert {m["invocationStatus"] for m in messages} == {"Failed"}
    assert all(m["responseParameters"]["failureLocation"].endswith("-error.out") for m in messages)


def _with(queued: inference.AsyncRequest, config: dict[str, Any]) -> inference.AsyncRequest:
    return replace(queued, config=config)


def test_an_input_location_that_is_not_s3_is_refused() -> None:
    assert inference.queued("iris", ASYNC, {"X-Amzn-Sagemaker-Inputlocation": "/tmp/x"}) == (
        "ValidationError",
        "InputLocation must be an S3 URI (s3://bucket/key)",
    )
