"""The SageMaker requests a run makes: the image by digest, the manifest's settings, private-registry mode,
and requests that SageMaker's own API model accepts (validated with botocore, no AWS involved)."""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session
import pytest
from botocore.validate import validate_parameters

from chalicelib.domain import specs
from chalicelib.domain.manifest import parse_manifest
from chalicelib.domain.models import ImageRef, Run, SourceRef, Status
from chalicelib.settings import Settings, load_settings
from tests.settings_env import AUTH_ARN, PRIVATE, REQUIRED, ROLE_ARN

RUN_ID = "iris-0123456789ab"
JOB = f"{RUN_ID}-t1"
REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagedock/iris"
DIGEST = "sha256:" + "ab" * 32
IMAGE_URI = f"{REPO}@{DIGEST}"
ARTIFACT = f"s3://sagedock-artifacts/iris/{RUN_ID}/{JOB}/output/model.tar.gz"
ENV = REQUIRED
PRIVATE_ENV = {**REQUIRED, **PRIVATE}
FULL_MANIFEST = """
[train]
instance_type = "ml.m5.xlarge"
instance_count = 2
volume_size_gb = 50
max_runtime_seconds = 7200
hyperparameters = { max_leaf_nodes = 5, criterion = "gini", prune = true, warm = false, rate = 0.25 }
[train.channels]
train = "iris/train/"
validation = "s3://elsewhere/iris/validation/"

[deploy]
endpoint_name = "iris-prod"
instance_type = "ml.m5.large"
initial_instance_count = 3
startup_health_timeout_seconds = 900
"""


@cache
def _sagemaker_model() -> Any:
    return botocore.session.get_session().get_service_model("sagemaker")


def assert_accepted(operation: str, request: dict[str, Any]) -> None:
    """The request passes botocore's validation of the SageMaker API model (types, required, min/max)."""
    validate_parameters(request, _sagemaker_model().operation_model(operation).input_shape)


def settings(env: dict[str, str] = ENV) -> Settings:
    return load_settings(env)


def run(manifest_text: str | None = FULL_MANIFEST, *, raw: dict[str, Any] | None = None) -> Run:
    """A run with a digest, its manifest parsed as the validator would (or `raw` as stored)."""
    manifest = (
        raw if raw is not None else parse_manifest(manifest_text, project="iris").model_dump(mode="json")
    )
    return Run(
        run_id=RUN_ID,
        project="iris",
        status=Status.TRAINING,
        source=SourceRef(bucket="sagedock-source", key="bundles/iris/v1.zip"),
        image=ImageRef(repository=REPO, tag=RUN_ID, digest=DIGEST, uri=IMAGE_URI),
        created_at="2026-11-21T12:00:00.000Z",
        updated_at="2026-11-21T12:00:00.000Z",
        manifest=manifest,
    )


def training(r: Run, s: Settings | None = None) -> dict[str, Any]:
    return specs.training_job_request(r, s or settings(), job_name=JOB, image_uri=IMAGE_URI)


TAGS = [{"Key": "sagedock:run-id", "Value": RUN_ID}, {"Key": "sagedock:project", "Value": "iris"}]


# --- training job -------------------------------------------------------------------------------------


def test_training_job_runs_the_image_by_digest_with_the_manifest_settings() -> None:
    request = training(run())

    assert request["TrainingJobName"] == JOB
    assert request["AlgorithmSpecification"] == {"TrainingImage": IMAGE_URI, "TrainingInputMode": "File"}
    assert request["RoleArn"] == ROLE_ARN
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.m5.xlarge",
        "InstanceCount": 2,
        "VolumeSizeInGB": 50,
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}
    assert request["OutputDataConfig"] == {"S3OutputPath": f"s3://sagedock-artifacts/iris/{RUN_ID}"}
    assert request["Tags"] == TAGS
    assert "VpcConfig" not in request
    assert_accepted("CreateTrainingJob", request)


def test_hyperparameters_are_strings_with_lowercase_booleans() -> None:
    request = training(run())

    assert request["HyperParameters"] == {
        "max_leaf_nodes": "5",
        "criterion": "gini",
        "prune": "true",
        "warm": "false",
        "rate": "0.25",
    }


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"n": 0}, {"n": "0"}),
        ({"lr": 1e-05}, {"lr": "1e-05"}),
        ({"b": True, "c": False}, {"b": "true", "c": "false"}),
        ({"s": "text with spaces"}, {"s": "text with spaces"}),
        ({}, {}),
    ],
)
def test_hyperparameter_strings(values: dict[str, Any], expected: dict[str, str]) -> None:
    assert specs.hyperparameter_strings(values) == expected


def test_channels_are_prefixes_in_the_data_bucket_or_full_uris() -> None:
    request = training(run())

    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]
    }
    assert channels == {
        "train": "s3://sagedock-data/iris/train/",
        "validation": "s3://elsewhere/iris/validation/",
    }
    for channel in request["InputDataConfig"]:
        source = channel["DataSource"]["S3DataSource"]
        assert source["S3DataType"] == "S3Prefix"
        assert source["S3DataDistributionType"] == "FullyReplicated"


@pytest.mark.parametrize(
    ("location", "uri"),
    [
        ("iris/train/", "s3://sagedock-data/iris/train/"),
        ("/iris/train/", "s3://sagedock-data/iris/train/"),
        ("s3://other-bucket/x/", "s3://other-bucket/x/"),
    ],
)
def test_channel_uri(location: str, uri: str) -> None:
    assert specs.channel_uri(settings(), location) == uri


def test_defaults_when_the_bundle_has_no_manifest() -> None:
    # Given a bundle without sagedock.toml whose data validate found under <project>/train/
    defaults = parse_manifest(None, project="iris")
    resolved = defaults.model_copy(update={"train": defaults.train.with_channels({"train": "iris/train/"})})
    request = training(run(raw=resolved.model_dump(mode="json")))

    # Then the job uses the documented defaults and reads <project>/train/ of the data bucket
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.m5.large",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert request["HyperParameters"] == {}
    (channel,) = request["InputDataConfig"]
    assert channel["ChannelName"] == "train"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == "s3://sagedock-data/iris/train/"
    assert_accepted("CreateTrainingJob", request)


@pytest.mark.parametrize("raw", [{}, {"train": {}}, {"deploy": {}}])
def test_defaults_when_stored_manifest_sections_are_missing(raw: dict[str, Any]) -> None:
    request = training(run(raw=raw))
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.m5.large",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert request["HyperParameters"] == {}


def test_a_job_without_channels_is_a_valid_request() -> None:
    # Given a manifest that asks for a training job with no input data
    request = training(run("[train]\nchannels = {}\n"))

    # Then the request is one SageMaker accepts, with no input channels
    assert request.get("InputDataConfig", []) == []
    assert_accepted("CreateTrainingJob", request)


# --- model and endpoint config ------------------------------------------------------------------------


def test_model_serves_the_very_image_that_trained() -> None:
    request = specs.model_request(run(), settings(), model_name=RUN_ID, model_artifact=ARTIFACT)

    assert request == {
        "ModelName": RUN_ID,
        "PrimaryContainer": {"Image": IMAGE_URI, "ModelDataUrl": ARTIFACT},
        "ExecutionRoleArn": ROLE_ARN,
        "Tags": TAGS,
    }
    assert_accepted("CreateModel", request)


def test_model_needs_an_image_digest() -> None:
    no_digest = run().model_copy(update={"image": ImageRef(repository=REPO, tag=RUN_ID)})
    with pytest.raises(ValueError, match=RUN_ID):
        specs.model_request(no_digest, settings(), model_name=RUN_ID, model_artifact=ARTIFACT)


def test_endpoint_config_with_instances_has_the_startup_health_timeout() -> None:
    request = specs.endpoint_config_request(run(), config_name=RUN_ID, model_name=RUN_ID)

    assert request == {
        "EndpointConfigName": RUN_ID,
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": RUN_ID,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 3,
                "ContainerStartupHealthCheckTimeoutInSeconds": 900,
            }
        ],
        "Tags": TAGS,
    }
    assert_accepted("CreateEndpointConfig", request)


def test_endpoint_config_defaults() -> None:
    (variant,) = specs.endpoint_config_request(run(None), config_name=RUN_ID, model_name=RUN_ID)[
        "ProductionVariants"
    ]
    assert variant["InstanceType"] == "ml.t2.medium"
    assert variant["InitialInstanceCount"] == 1
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 600


def test_serverless_endpoint_config_has_no_instances() -> None:
    manifest = "[deploy]\nserverless = { memory_size_mb = 4096, max_concurrency = 10 }\n"
    request = specs.endpoint_config_request(run(manifest), config_name=RUN_ID, model_name=RUN_ID)

    (variant,) = request["ProductionVariants"]
    assert variant == {
        "VariantName": "AllTraffic",
        "ModelName": RUN_ID,
        "ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 10},
    }
    assert_accepted("CreateEndpointConfig", request)


# --- private registry mode ----------------------------------------------------------------------------


def test_private_mode_training_pulls_through_the_vpc_with_the_credentials_function() -> None:
    request = training(run(), settings(PRIVATE_ENV))

    assert request["AlgorithmSpecification"] == {
        "TrainingImage": IMAGE_URI,
        "TrainingInputMode": "File",
        "TrainingImageConfig": {
            "TrainingRepositoryAccessMode": "Vpc",
            "TrainingRepositoryAuthConfig": {"TrainingRepositoryCredentialsProviderArn": AUTH_ARN},
        },
    }
    assert request["VpcConfig"] == {"SecurityGroupIds": ["sg-0c"], "Subnets": ["subnet-0a", "subnet-0b"]}
    assert_accepted("CreateTrainingJob", request)


def test_private_mode_model_pulls_through_the_vpc_with_the_credentials_function() -> None:
    request = specs.model_request(run(), settings(PRIVATE_ENV), model_name=RUN_ID, model_artifact=ARTIFACT)

    assert request["PrimaryContainer"] == {
        "Image": IMAGE_URI,
        "ModelDataUrl": ARTIFACT,
        "ImageConfig": {
            "RepositoryAccessMode": "Vpc",
            "RepositoryAuthConfig": {"RepositoryCredentialsProviderArn": AUTH_ARN},
        },
    }
    assert request["VpcConfig"] == {"SecurityGroupIds": ["sg-0c"], "Subnets": ["subnet-0a", "subnet-0b"]}
    assert_accepted("CreateModel", request)


# --- endpoint name and deploy switch ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (None, "iris"),
        ({}, "iris"),
        ({"deploy": {}}, "iris"),
        ({"deploy": {"endpoint_name": None}}, "iris"),
        ({"deploy": {"endpoint_name": "iris-prod"}}, "iris-prod"),
    ],
)
def test_endpoint_name_defaults_to_the_project(raw: dict[str, Any] | None, name: str) -> None:
    r = run(raw=raw) if raw is not None else run().model_copy(update={"manifest": None})
    assert specs.endpoint_name(r) == name


def test_endpoint_name_from_a_parsed_manifest() -> None:
    assert specs.endpoint_name(run()) == "iris-prod"
    assert specs.endpoint_name(run(None)) == "iris"


@pytest.mark.parametrize(
    ("manifest", "enabled"),
    [(None, True), ("[deploy]\nenabled = true\n", True), ("[deploy]\nenabled = false\n", False)],
)
def test_deploy_enabled(manifest: str | None, enabled: bool) -> None:
    assert specs.deploy_enabled(run(manifest)) is enabled


def test_deploy_enabled_without_a_manifest() -> None:
    assert specs.deploy_enabled(run().model_copy(update={"manifest": None})) is True
