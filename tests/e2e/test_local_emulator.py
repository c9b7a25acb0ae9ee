"""The emulator behaves like AWS where moto alone does not: S3 and PutEvents reach the bus shaped as AWS
delivers them, and hooks answer or watch API calls with errors the SDKs parse."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sagedock.local.emulator import ApiCall, ApiReply, Emulator


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    instance = Emulator()
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def received(emulator: Emulator) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    emulator.bus.subscribe(seen.append)
    return seen


def _bucket(emulator: Emulator, name: str, *, versioned: bool) -> Any:
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    return s3


def test_each_way_of_creating_an_object_says_its_reason(
    emulator: Emulator, received: list[dict[str, Any]]
) -> None:
    s3 = _bucket(emulator, "reasons", versioned=True)
    put = s3.put_object(Bucket="reasons", Key="a/put.zip", Body=b"x" * 10)
    s3.copy_object(Bucket="reasons", Key="a/copy.zip", CopySource={"Bucket": "reasons", "Key": "a/put.zip"})
    upload = s3.create_multipart_upload(Bucket="reasons", Key="a/multi.zip")
    part = s3.upload_part(
        Bucket="reasons", Key="a/multi.zip", UploadId=upload["UploadId"], PartNumber=1, Body=b"y"
    )
    s3.complete_multipart_upload(
        Bucket="reasons",
        Key="a/multi.zip",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    created = {e["detail"]["object"]["key"]: e for e in received if e["detail-type"] == "Object Created"}
    assert {k: e["detail"]["reason"] for k, e in created.items()} == {
        "a/put.zip": "PutObject",
        "a/copy.zip": "CopyObject",
        "a/multi.zip": "CompleteMultipartUpload",
    }
    first = created["a/put.zip"]
    assert first["source"] == "aws.s3" and first["resources"] == ["arn:aws:s3:::reasons"]
    assert first["detail"]["object"]["version-id"] == put["VersionId"]
    assert first["detail"]["object"]["etag"] == put["ETag"].strip('"')
    assert first["detail"]["object"]["size"] == 10


def test_an_unversioned_bucket_sends_no_version_id_and_a_bucket_without_notifications_nothing(
    emulator: Emulator, received: list[dict[str, Any]]
) -> None:
    _bucket(emulator, "plain", versioned=False).put_object(Bucket="plain", Key="k", Body=b"1")
    emulator.client("s3").create_bucket(Bucket="silent")
    emulator.client("s3").put_object(Bucket="silent", Key="k", Body=b"1")
    buckets = [e["detail"]["bucket"]["name"] for e in received]
    assert buckets == ["plain"]
    assert "version-id" not in received[0]["detail"]["object"]


def test_put_events_reach_the_bus_from_the_default_bus_only(
    emulator: Emulator, received: list[dict[str, Any]]
) -> None:
    events = emulator.client("events")
    events.create_event_bus(Name="elsewhere")
    entry = {"Source": "custom.app", "DetailType": "Thing Happened", "Detail": json.dumps({"n": 1})}
    answer = events.put_events(Entries=[entry, {**entry, "EventBusName": "elsewhere"}])
    assert answer["FailedEntryCount"] == 0
    assert [e["id"] for e in received] == [answer["Entries"][0]["EventId"]]
    assert received[0]["detail"] == {"n": 1} and received[0]["source"] == "custom.app"


def test_a_hook_can_answer_a_call_with_an_error_the_sdk_parses(emulator: Emulator) -> None:
    calls: list[ApiCall] = []

    def refuse(call: ApiCall) -> ApiReply | None:
        calls.append(call)
        return ApiReply.error("ResourceInUse", "that name is taken")

    emulator.before("sagemaker", "DeleteModel", refuse)
    with pytest.raises(ClientError) as caught:
        emulator.client("sagemaker").delete_model(ModelName="m")
    assert caught.value.response["Error"]["Code"] == "ResourceInUse"
    assert calls[0].params == {"ModelName": "m"} and calls[0].region == "us-east-1"


def test_any_client_with_the_contracts_settings_reaches_it(emulator: Emulator) -> None:
    session = boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
    sts = session.client("sts", endpoint_url=emulator.url)
    assert sts.get_caller_identity()["Account"] == "123456789012"


def test_a_conditional_write_raced_by_many_threads_succeeds_exactly_once(emulator: Emulator) -> None:
    dynamodb = emulator.client("dynamodb")
    dynamodb.create_table(
        TableName="race",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    writers, keys = 6, 15
    barrier = threading.Barrier(writers)
    won: list[str] = []
    refused: list[str] = []

    def write(writer: int) -> None:
        barrier.wait()
        for key in range(keys):
            try:
                dynamodb.put_item(
                    TableName="race",
                    Item={"pk": {"S": f"k{key}"}, "writer": {"N": str(writer)}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
                won.append(f"k{key}")
            except ClientError as exc:
                refused.append(exc.response["Error"]["Code"])

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave the writers between any two steps
    try:
        threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert sorted(won) == sorted(f"k{key}" for key in range(keys))
    assert refused == ["ConditionalCheckFailedException"] * (writers - 1) * keys
