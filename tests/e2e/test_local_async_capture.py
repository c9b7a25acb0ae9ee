"""An asynchronous, capturing endpoint on the local cloud: the sample deployed with [deploy.async] and
[deploy.capture], invoked through the API and the CLI; the answer and the failure come back through S3,
the SNS topics get SageMaker's notifications, and the captured records read back through the API and CLI."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from typing import Any

import pytest
from localcloud import ROOT, LocalCloudProcess, wait_until

from sagedock.commands.submit import zip_directory

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 300.0
ENDPOINT = "iris-async"


def with_manifest(data: bytes, manifest: str) -> bytes:
    """The bundle with its sagedock.toml replaced."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            if item.filename != "sagedock.toml":
                target.writestr(item, source.read(item))
        target.writestr("sagedock.toml", manifest)
    return out.getvalue()


@pytest.fixture(scope="module")
def deployed(local_cloud: LocalCloudProcess) -> dict[str, Any]:
    """The sample as an asynchronous, capturing endpoint; SNS topics delivering to one SQS queue."""
    sns, sqs = local_cloud.aws("sns"), local_cloud.aws("sqs")
    queue = sqs.create_queue(QueueName="async-results")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    topics = {}
    for name in ("answers", "failures"):
        topics[name] = sns.create_topic(Name=name)["TopicArn"]
        sns.subscribe(
            TopicArn=topics[name],
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
        )
    manifest = f"""
[train]
hyperparameters = {{ max_leaf_nodes = 5 }}
[train.channels]
train = "iris/train/"
[deploy]
endpoint_name = "{ENDPOINT}"
[deploy.async]
success_topic = "{topics["answers"]}"
error_topic = "{topics["failures"]}"
[deploy.capture]
csv_content_types = ["text/csv"]
"""
    key = local_cloud.upload("iris", with_manifest(zip_directory(ROOT / "container"), manifest), "async")
    run = local_cloud.wait_run(local_cloud.run_for_key("iris", key), RUN_TIMEOUT)
    assert run["status"] == "SUCCEEDED", run.get("error")
    return {"run": run, "queue": queue, "topics": topics}


def notifications(local_cloud: LocalCloudProcess, queue: str, inference_id: str) -> dict[str, Any]:
    """The SNS notification of one inference, as the queue received it."""
    sqs = local_cloud.aws("sqs")
    seen: dict[str, dict[str, Any]] = {}

    def arrived() -> dict[str, Any] | None:
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            body = json.loads(message["Body"])
            seen[body["inferenceId"]] = body
        return seen.get(inference_id)

    return dict(wait_until(arrived, timeout=30, what=f"the notification of {inference_id}"))


def test_an_async_invocation_is_answered_through_s3_and_notified(
    local_cloud: LocalCloudProcess, deployed: dict[str, Any]
) -> None:
    waited = local_cloud.cli(
        "invoke", ENDPOINT, "--async", "--wait", "--timeout", "60", "--data", "5.1,3.5,1.4,0.2"
    )

    assert waited.returncode == 0, waited.stdout + waited.stderr
    lines = waited.stdout.splitlines()
    inference_id = lines[0].removeprefix("inference ")
    output = lines[1].removeprefix("output ")
    assert output.endswith(f"/iris/async/output/{inference_id}.out"), output
    assert "setosa" in waited.stdout
    # The answer is the object SageMaker writes, and the success topic was told where it is
    bucket, _, key = output.removeprefix("s3://").partition("/")
    assert b"setosa" in local_cloud.aws("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    told = notifications(local_cloud, deployed["queue"], inference_id)
    assert told["invocationStatus"] == "Completed"
    assert told["responseParameters"]["outputLocation"] == output
    assert told["requestParameters"]["endpointName"] == ENDPOINT


def test_a_failing_async_invocation_writes_its_failure_and_tells_the_error_topic(
    local_cloud: LocalCloudProcess, deployed: dict[str, Any]
) -> None:
    waited = local_cloud.cli(
        "invoke", ENDPOINT, "--async", "--wait", "--timeout", "60", "--data", "not,a,number,at all"
    )

    assert waited.returncode == 1, waited.stdout + waited.stderr
    inference_id = waited.stdout.splitlines()[0].removeprefix("inference ")
    assert f"inference {inference_id} failed" in waited.stderr
    body = local_cloud.api.async_answer(ENDPOINT, inference_id)
    assert body["status"] == "failed"
    assert body["location"].endswith(f"/iris/async/failure/{inference_id}-error.out")
    told = notifications(local_cloud, deployed["queue"], inference_id)
    assert told["invocationStatus"] == "Failed"
    assert told["failureReason"]


def test_the_api_says_pending_for_an_inference_not_answered(
    local_cloud: LocalCloudProcess, deployed: dict[str, Any]
) -> None:
    answer = local_cloud.api.async_answer(ENDPOINT, "never-queued")
    assert answer["status"] == "pending"


def test_invocations_are_captured_and_read_back_newest_first(
    local_cloud: LocalCloudProcess, deployed: dict[str, Any]
) -> None:
    queued = local_cloud.cli("invoke", ENDPOINT, "--async", "--wait", "--data", "6.7,3.0,5.2,2.3")
    assert queued.returncode == 0, queued.stderr
    inference_id = queued.stdout.splitlines()[0].removeprefix("inference ")

    shown = local_cloud.cli("captures", ENDPOINT, "--limit", "5", "--output", "json")

    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    newest = body["records"][0]
    assert newest["eventMetadata"]["inferenceId"] == inference_id
    assert newest["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": "6.7,3.0,5.2,2.3",
        "encoding": "CSV",
    }
    # The answer's content type is not among csv_content_types: captured base64-encoded, as SageMaker does
    answer = newest["captureData"]["endpointOutput"]
    assert (answer["mode"], answer["encoding"]) == ("OUTPUT", "BASE64")
    assert "virginica" in base64.b64decode(answer["data"]).decode()
    assert newest["eventVersion"] == "0"
    text = local_cloud.cli("captures", ENDPOINT)
    assert text.returncode == 0, text.stderr
    assert "request  [text/csv] 6.7,3.0,5.2,2.3" in text.stdout
