"""Pure builders of the SageMaker requests a run makes (training job, model, endpoint config)."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.models import Run
from chalicelib.settings import Settings

VARIANT_NAME = "AllTraffic"


def _tags(run: Run) -> list[dict[str, str]]:
    return [
        {"Key": "sagedock:run-id", "Value": run.run_id},
        {"Key": "sagedock:project", "Value": run.project},
    ]


def _vpc(settings: Settings) -> dict[str, Any]:
    return {"SecurityGroupIds": list(settings.security_group_ids), "Subnets": list(settings.subnet_ids)}


def hyperparameter_strings(values: dict[str, Any]) -> dict[str, str]:
    """SageMaker takes hyperparameters as strings only, written as the manifest's own `as_string` does."""
    from chalicelib.domain.manifest import (
        as_string,  # imported here: only the training request needs the manifest
    )

    return {name: as_string(value) for name, value in values.items()}


def channel_uri(settings: Settings, location: str) -> str:
    """A channel is a key prefix in the data bucket or a full s3:// URI (the manifest's own rule)."""
    from chalicelib.domain import manifest  # imported here: only the training request needs the manifest

    return manifest.channel_uri(settings.data_bucket, location)


def output_path(settings: Settings, run: Run) -> str:
    """Where SageMaker writes `<job>/output/model.tar.gz` for this run."""
    return f"s3://{settings.artifact_bucket}/{run.project}/{run.run_id}"


def training_job_request(run: Run, settings: Settings, *, job_name: str, image_uri: str) -> dict[str, Any]:
    """CreateTrainingJob arguments: the image by digest, with the manifest's resources and inputs."""
    train = (run.manifest or {}).get("train", {})
    algorithm: dict[str, Any] = {"TrainingImage": image_uri, "TrainingInputMode": "File"}
    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": algorithm,
        "RoleArn": settings.sagemaker_role_arn,
        "OutputDataConfig": {"S3OutputPath": output_path(settings, run)},
        "ResourceConfig": {
            "InstanceType": train.get("instance_type", "ml.m5.large"),
            "InstanceCount": int(train.get("instance_count", 1)),
            "VolumeSizeInGB": int(train.get("volume_size_gb", 30)),
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": int(train.get("max_runtime_seconds", 3600))},
        "HyperParameters": hyperparameter_strings(train.get("hyperparameters", {})),
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
        for name, location in sorted(train.get("channels", {}).items())
    ]
    if channels:  # `channels = {}` in the manifest: a job with no input data (SageMaker wants no empty list)
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


def model_request(run: Run, settings: Settings, *, model_name: str, model_artifact: str) -> dict[str, Any]:
    """CreateModel arguments: the very image (by digest) that trained, with the trained artifact."""
    if run.image is None or not run.image.uri:
        raise ValueError(f"run {run.run_id} has no image digest yet")
    container: dict[str, Any] = {"Image": run.image.uri, "ModelDataUrl": model_artifact}
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
    """The manifest's endpoint name, or the project's."""
    deploy = (run.manifest or {}).get("deploy", {})
    return str(deploy.get("endpoint_name") or run.project)


def deploy_enabled(run: Run) -> bool:
    """Whether the run deploys after training (deploy.enabled, true by default)."""
    return bool((run.manifest or {}).get("deploy", {}).get("enabled", True))


def endpoint_config_request(run: Run, *, config_name: str, model_name: str) -> dict[str, Any]:
    """CreateEndpointConfig arguments: instances with a startup health timeout, or serverless."""
    deploy = (run.manifest or {}).get("deploy", {})
    variant: dict[str, Any] = {"VariantName": VARIANT_NAME, "ModelName": model_name}
    serverless = deploy.get("serverless")
    if serverless:
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": int(serverless["memory_size_mb"]),
            "MaxConcurrency": int(serverless["max_concurrency"]),
        }
    else:
        variant["InstanceType"] = deploy.get("instance_type", "ml.t2.medium")
        variant["InitialInstanceCount"] = int(deploy.get("initial_instance_count", 1))
        variant["ContainerStartupHealthCheckTimeoutInSeconds"] = int(
            deploy.get("startup_health_timeout_seconds", 600)
        )
    return {"EndpointConfigName": config_name, "ProductionVariants": [variant], "Tags": _tags(run)}


def _deploy(run: Run) -> dict[str, Any]:
    deploy: dict[str, Any] = (run.manifest or {}).get("deploy", {})
    return deploy


def instance_type(run: Run) -> str | None:
    """The instance type the run's endpoint config asks for (None: serverless)."""
    deploy = _deploy(run)
    return None if deploy.get("serverless") else str(deploy.get("instance_type", "ml.t2.medium"))


def deployment_config(run: Run) -> dict[str, Any] | None:
    """UpdateEndpoint's DeploymentConfig for the run's [deploy.update] (None: SageMaker's default)."""
    from chalicelib.domain.rollout import deployment_config as build

    return build(_deploy(run).get("update"))


def rollback_alarms(run: Run) -> list[str]:
    """The alarms whose ALARM state rolls the run's endpoint update back."""
    return list((_deploy(run).get("update") or {}).get("rollback_alarms") or [])


def autoscaling(run: Run) -> dict[str, Any] | None:
    """The run's [deploy.autoscaling] table, or None."""
    scaling: dict[str, Any] | None = _deploy(run).get("autoscaling")
    return scaling
