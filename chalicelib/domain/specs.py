"""Pure builders of the SageMaker requests a run makes (training job, model, endpoint config)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.domain import inference, manifest, rollout
from chalicelib.domain.models import Run
from chalicelib.settings import Settings

if TYPE_CHECKING:
    from chalicelib.domain.rollout import AutoscalingConfig

VARIANT_NAME = "AllTraffic"


def _tags(run: Run) -> list[dict[str, str]]:
    return [
        {"Key": "sagedock:run-id", "Value": run.run_id},
        {"Key": "sagedock:project", "Value": run.project},
    ]


def _vpc(settings: Settings) -> dict[str, Any]:
    return {"SecurityGroupIds": list(settings.security_group_ids), "Subnets": list(settings.subnet_ids)}


def hyperparameter_strings(values: Mapping[str, manifest.Scalar]) -> dict[str, str]:
    """SageMaker takes hyperparameters as strings only, written as the manifest's own `as_string` does."""
    return {name: manifest.as_string(value) for name, value in values.items()}


def channel_uri(settings: Settings, location: str) -> str:
    """A channel is a key prefix in the data bucket or a full s3:// URI (the manifest's own rule)."""
    return manifest.channel_uri(settings.data_bucket, location)


def output_path(settings: Settings, run: Run) -> str:
    """Where SageMaker writes `<job>/output/model.tar.gz` for this run."""
    return f"s3://{settings.artifact_bucket}/{run.project}/{run.run_id}"


def training_job_request(run: Run, settings: Settings, *, job_name: str, image_uri: str) -> dict[str, Any]:
    """CreateTrainingJob arguments: the image by digest, with the manifest's resources and inputs."""
    train = run.effective_manifest().train
    algorithm: dict[str, Any] = {"TrainingImage": image_uri, "TrainingInputMode": "File"}
    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": algorithm,
        "RoleArn": settings.sagemaker_role_arn,
        "OutputDataConfig": {"S3OutputPath": output_path(settings, run)},
        "ResourceConfig": {
            "InstanceType": train.instance_type,
            "InstanceCount": train.instance_count,
            "VolumeSizeInGB": train.volume_size_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": train.max_runtime_seconds},
        "HyperParameters": hyperparameter_strings(train.hyperparameters),
        "Tags": _tags(run),
    }
    channels = [
        {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": channel_uri(settings, location),
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
        for name, location in sorted((train.channels or {}).items())
    ]
    # `channels = {}` in the manifest: a job with no input data (SageMaker wants no empty list). None only on
    # a run recorded before validate resolved them, which never reaches training.
    if channels:
        request["InputDataConfig"] = channels
    if settings.private_mode:
        algorithm["TrainingImageConfig"] = {
            "TrainingRepositoryAccessMode": "Vpc",
            "TrainingRepositoryAuthConfig": {
                "TrainingRepositoryCredentialsProviderArn": settings.registry_auth_function_arn
            },
        }
        request["VpcConfig"] = _vpc(settings)
    return request


def model_request(
    run: Run, settings: Settings, *, model_name: str, model_artifact: str | None
) -> dict[str, Any]:
    """CreateModel arguments: the very image (by digest) that trained, with the trained artifact; for a
    serve-only bundle, `deploy.model_data`, or no ModelDataUrl at all when the model is in the image."""
    if run.image is None or not run.image.uri:
        raise ValueError(f"run {run.run_id} has no image digest yet")
    container: dict[str, Any] = {"Image": run.image.uri}
    if model_artifact is not None:
        container["ModelDataUrl"] = model_artifact
    request: dict[str, Any] = {
        "ModelName": model_name,
        "PrimaryContainer": container,
        "ExecutionRoleArn": settings.sagemaker_role_arn,
        "Tags": _tags(run),
    }
    if settings.private_mode:
        container["ImageConfig"] = {
            "RepositoryAccessMode": "Vpc",
            "RepositoryAuthConfig": {"RepositoryCredentialsProviderArn": settings.registry_auth_function_arn},
        }
        request["VpcConfig"] = _vpc(settings)
    return request


def endpoint_name(run: Run) -> str:
    """The manifest's endpoint name (the project's by default)."""
    return run.effective_manifest().deploy.endpoint_name


def train_enabled(run: Run) -> bool:
    """Whether the run trains (train.enabled, true by default); false: a serve-only bundle."""
    return run.effective_manifest().train.enabled


def model_data(run: Run) -> str | None:
    """A serve-only run's model archive (deploy.model_data); None: the model is in the image."""
    return run.effective_manifest().deploy.model_data


def deploy_enabled(run: Run) -> bool:
    """Whether the run deploys after training (deploy.enabled, true by default)."""
    return run.effective_manifest().deploy.enabled


def endpoint_config_request(
    run: Run, *, config_name: str, model_name: str, settings: Settings | None = None
) -> dict[str, Any]:
    """CreateEndpointConfig arguments: instances with a startup health timeout, or serverless; with
    [deploy.async] its AsyncInferenceConfig, with [deploy.capture] its DataCaptureConfig (their default
    locations are under the artifacts bucket of `settings`)."""
    deploy = run.effective_manifest().deploy
    variant: dict[str, Any] = {"VariantName": VARIANT_NAME, "ModelName": model_name}
    if deploy.serverless is not None:
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": deploy.serverless.memory_size_mb,
            "MaxConcurrency": deploy.serverless.max_concurrency,
        }
    else:
        variant["InstanceType"] = deploy.instance_type
        variant["InitialInstanceCount"] = deploy.initial_instance_count
        variant["ContainerStartupHealthCheckTimeoutInSeconds"] = deploy.startup_health_timeout_seconds
    request: dict[str, Any] = {
        "EndpointConfigName": config_name,
        "ProductionVariants": [variant],
        "Tags": _tags(run),
    }
    if deploy.async_ is None and deploy.capture is None:
        return request
    if settings is None:
        raise ValueError("[deploy.async] and [deploy.capture] need the settings (the artifacts bucket)")
    where = {"artifact_bucket": settings.artifact_bucket, "project": run.project}
    if deploy.async_ is not None:
        request["AsyncInferenceConfig"] = inference.async_inference_config(deploy.async_, **where)
    if deploy.capture is not None:
        request["DataCaptureConfig"] = inference.data_capture_config(deploy.capture, **where)
    return request


def async_locations(run: Run, settings: Settings) -> tuple[str, str] | None:
    """The (output, failure) prefixes of the run's asynchronous endpoint; None: it is not asynchronous."""
    config = run.effective_manifest().deploy.async_
    if config is None:
        return None
    return (
        config.output_uri(settings.artifact_bucket, run.project),
        config.failure_uri(settings.artifact_bucket, run.project),
    )


def capture_destination(run: Run, settings: Settings) -> str | None:
    """The capture prefix of the run's endpoint; None: it captures nothing."""
    config = run.effective_manifest().deploy.capture
    return config.destination_uri(settings.artifact_bucket, run.project) if config is not None else None


def instance_type(run: Run) -> str | None:
    """The instance type the run's endpoint config asks for (None: serverless)."""
    return run.effective_manifest().deploy.instance_type


def deployment_config(run: Run) -> dict[str, Any] | None:
    """UpdateEndpoint's DeploymentConfig for the run's [deploy.update] (None: SageMaker's default)."""
    return rollout.deployment_config(run.effective_manifest().deploy.update)


def rollback_alarms(run: Run) -> list[str]:
    """The alarms whose ALARM state rolls the run's endpoint update back."""
    update = run.effective_manifest().deploy.update
    return list(update.rollback_alarms) if update is not None else []


def autoscaling(run: Run) -> AutoscalingConfig | None:
    """The run's [deploy.autoscaling] table, or None."""
    return run.effective_manifest().deploy.autoscaling
