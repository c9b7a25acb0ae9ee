"""[deploy.async] and [deploy.capture]: the endpoint config's AsyncInferenceConfig and DataCaptureConfig
(validated against botocore's SageMaker model), their defaults under the artifacts bucket, the refusals at
validate, and the InvokeEndpointAsync request the runtime adapter makes (botocore's runtime model)."""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber
from botocore.validate import validate_parameters

from chalicelib.adapters.sagemaker_runtime import Endpoints
from chalicelib.domain import inference, specs
from chalicelib.domain.errors import ManifestInvalid
from chalicelib.domain.manifest import parse_manifest, stored_manifest
from tests.unit.test_specs import RUN_ID, assert_accepted, run, settings

ARTIFACTS = settings().artifact_bucket
TOPIC = "arn:aws:sns:us-east-1:123456789012:answers"
ERRORS = "arn:aws:sns:us-east-1:123456789012:failures"


def config(manifest: str) -> dict[str, Any]:
    request = specs.endpoint_config_request(
        run(manifest), config_name=RUN_ID, model_name=RUN_ID, settings=settings()
    )
    assert_accepted("CreateEndpointConfig", request)
    return request


def test_an_empty_async_table_writes_under_the_artifacts_bucket() -> None:
    request = config("[deploy.async]\n")
    assert request["AsyncInferenceConfig"] == {
        "OutputConfig": {
            "S3OutputPath": f"s3://{ARTIFACTS}/iris/async/output/",
            "S3FailurePath": f"s3://{ARTIFACTS}/iris/async/failure/",
        }
    }
    assert "DataCaptureConfig" not in request


def test_the_async_table_in_full() -> None:
    request = config(
        f"""[deploy.async]
output = "s3://answers-bucket/iris/out/"
failure = "s3://answers-bucket/iris/failed"
success_topic = "{TOPIC}"
error_topic = "{ERRORS}"
max_concurrent_invocations_per_instance = 4
"""
    )
    assert request["AsyncInferenceConfig"] == {
        "OutputConfig": {
            "S3OutputPath": "s3://answers-bucket/iris/out/",
            "S3FailurePath": "s3://answers-bucket/iris/failed/",
            "NotificationConfig": {"SuccessTopic": TOPIC, "ErrorTopic": ERRORS},
        },
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4},
    }


def test_an_empty_capture_table_captures_everything_under_the_artifacts_bucket() -> None:
    request = config("[deploy.capture]\n")
    assert request["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://{ARTIFACTS}/iris/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    }


def test_the_capture_table_in_full() -> None:
    request = config(
        """[deploy.capture]
sampling_percent = 25
destination = "s3://monitoring/iris"
capture = ["response"]
csv_content_types = ["text/csv"]
json_content_types = ["application/json", "application/jsonlines"]
"""
    )
    assert request["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 25,
        "DestinationS3Uri": "s3://monitoring/iris",
        "CaptureOptions": [{"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": ["text/csv"],
            "JsonContentTypes": ["application/json", "application/jsonlines"],
        },
    }


def test_both_tables_on_one_endpoint() -> None:
    request = config('[deploy.async]\n[deploy.capture]\ncapture = ["request"]\n')
    assert set(request) >= {"AsyncInferenceConfig", "DataCaptureConfig"}
    assert request["DataCaptureConfig"]["CaptureOptions"] == [{"CaptureMode": "Input"}]


def test_without_the_tables_the_config_is_as_before_and_needs_no_settings() -> None:
    request = specs.endpoint_config_request(run(None), config_name=RUN_ID, model_name=RUN_ID)
    assert not {"AsyncInferenceConfig", "DataCaptureConfig"} & set(request)
    with pytest.raises(ValueError, match="settings"):
        specs.endpoint_config_request(run("[deploy.async]\n"), config_name=RUN_ID, model_name=RUN_ID)


def test_the_tables_survive_the_run_record() -> None:
    # A run stores its manifest as JSON (`async_`, the field's name) and reads it back.
    stored = parse_manifest(f'[deploy.async]\nsuccess_topic = "{TOPIC}"\n', project="iris")
    again = stored_manifest(stored.model_dump(mode="json"), project="iris")
    assert again == stored
    assert again.deploy.async_ is not None and again.deploy.async_.success_topic == TOPIC
    assert specs.async_locations(run("[deploy.async]\n"), settings()) == (
        f"s3://{ARTIFACTS}/iris/async/output",
        f"s3://{ARTIFACTS}/iris/async/failure",
    )
    assert specs.async_locations(run(None), settings()) is None
    assert specs.capture_destination(run(None), settings()) is None


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("[deploy.serverless]\n[deploy.async]\n", "deploy: async and serverless exclude each other"),
        ("[deploy.serverless]\n[deploy.capture]\n", "deploy: capture is not available on a serverless"),
        ('[deploy.async]\noutput = "answers/"\n', "deploy.async.output: 'answers/' is not an S3 URI"),
        (
            '[deploy.async]\nsuccess_topic = "answers"\n',
            "deploy.async.success_topic: 'answers' is not an SNS",
        ),
        ("[deploy.async]\nmax_concurrent_invocations_per_instance = 0\n", "deploy.async.max_concurrent"),
        ("[deploy.async]\nmax_concurrent_invocations_per_instance = 1001\n", "less than or equal to 1000"),
        ("[deploy.capture]\nsampling_percent = 101\n", "deploy.capture.sampling_percent"),
        ('[deploy.capture]\ncapture = ["everything"]\n', "deploy.capture.capture.0"),
        ("[deploy.capture]\ncapture = []\n", "deploy.capture.capture"),
        ('[deploy.capture]\ncsv_content_types = ["csv"]\n', "'csv' is not a content type"),
        ("[deploy.async]\nretries = 3\n", "deploy.async.retries: unknown key (allowed here: output, failure"),
        ("[deploy]\nasynchronous = true\n", "allowed here: enabled, endpoint_name"),
    ],
)
def test_what_sagemaker_refuses_is_refused_at_validate(manifest: str, message: str) -> None:
    with pytest.raises(ManifestInvalid, match=r"^invalid sagedock\.toml") as caught:
        parse_manifest(manifest, project="iris")
    assert message in str(caught.value)


def test_the_unknown_key_message_names_the_tables_as_written() -> None:
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest("[deploy]\nasynchronous = true\n", project="iris")
    assert "async, capture)" in str(caught.value)


def test_canary_updates_are_allowed_on_an_asynchronous_endpoint() -> None:
    manifest = parse_manifest(
        '[deploy]\ninitial_instance_count = 4\n[deploy.update]\nstrategy = "canary"\ncanary_instances = 1\n'
        "[deploy.async]\n",
        project="iris",
    )
    assert manifest.deploy.async_ is not None


def test_where_sagemaker_puts_the_objects() -> None:
    assert inference.output_location("s3://b/p/", "abc") == "s3://b/p/abc.out"
    assert inference.failure_location("s3://b/p", "abc") == "s3://b/p/abc-error.out"
    assert inference.capture_prefix("s3://b/iris/capture", "iris", "AllTraffic") == (
        "s3://b/iris/capture/iris/AllTraffic/"
    )
    assert inference.input_key("iris", "abc") == "iris/async/input/abc"


# --- the runtime adapter's InvokeEndpointAsync ----------------------------------------------------------
@cache
def _runtime_model() -> Any:
    return botocore.session.get_session().get_service_model("sagemaker-runtime")


def test_invoke_async_puts_the_body_then_queues_it_as_the_runtime_model_defines() -> None:
    session = botocore.session.get_session()
    kwargs: dict[str, Any] = {
        "region_name": "us-east-1",
        "aws_access_key_id": "x",
        "aws_secret_access_key": "x",
    }
    runtime = session.create_client("sagemaker-runtime", **kwargs)
    control = session.create_client("sagemaker", **kwargs)
    s3 = session.create_client("s3", **kwargs)
    expected = {
        "EndpointName": "iris",
        "InputLocation": f"s3://{ARTIFACTS}/iris/async/input/abc",
        "ContentType": "text/csv",
        "InferenceId": "abc",
        "Accept": "application/json",
    }
    validate_parameters(expected, _runtime_model().operation_model("InvokeEndpointAsync").input_shape)
    with Stubber(runtime) as runtime_stub, Stubber(s3) as s3_stub:
        s3_stub.add_response(
            "put_object",
            {},
            {
                "Bucket": ARTIFACTS,
                "Key": "iris/async/input/abc",
                "Body": b"5.1,3.5",
                "ContentType": "text/csv",
            },
        )
        runtime_stub.add_response(
            "invoke_endpoint_async",
            {"InferenceId": "abc", "OutputLocation": f"s3://{ARTIFACTS}/iris/async/output/abc.out"},
            expected,
        )
        found = Endpoints(runtime, control, s3).invoke_async(
            "iris",
            b"5.1,3.5",
            "text/csv",
            "application/json",
            input_uri=f"s3://{ARTIFACTS}/iris/async/input/abc",
            inference_id="abc",
        )
    assert found == ("abc", f"s3://{ARTIFACTS}/iris/async/output/abc.out", None)
