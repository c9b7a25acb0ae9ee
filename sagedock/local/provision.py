"""The one place that creates what the pipeline needs in the emulator; the local cloud and the tests reuse it.

Buckets (the source bucket versioned, with EventBridge notifications on), the runs and idempotency tables
(their schemas come from chalicelib.adapters.run_store, the same definitions infra/ deploys), the
CodeBuild project, the IAM roles, and the sample data the demo trains on.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagedock.eventshapes import ACCOUNT, REGION

DEFAULT_CHANNEL_PREFIX = "iris/train/"

_TRUST = {
    "codebuild": "codebuild.amazonaws.com",
    "sagemaker": "sagemaker.amazonaws.com",
}


@dataclass(frozen=True)
class Resources:
    """The names of everything provisioned; `settings()` is the app's environment for them."""

    prefix: str = "sagedock-local"
    region: str = REGION
    account: str = ACCOUNT
    ecr_prefix: str = "sagedock"

    @property
    def source_bucket(self) -> str:
        return f"{self.prefix}-source"

    @property
    def data_bucket(self) -> str:
        return f"{self.prefix}-data"

    @property
    def artifact_bucket(self) -> str:
        return f"{self.prefix}-artifacts"

    @property
    def runs_table(self) -> str:
        return f"{self.prefix}-runs"

    @property
    def idempotency_table(self) -> str:
        return f"{self.prefix}-idempotency"

    @property
    def codebuild_project(self) -> str:
        return f"{self.prefix}-image-build"

    @property
    def events_queue(self) -> str:
        """The SQS queue a rule on the default bus fills with sagedock's run events."""
        return f"{self.prefix}-run-events"

    @property
    def sagemaker_role_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:role/{self.prefix}-sagemaker"

    @property
    def codebuild_role_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:role/{self.prefix}-codebuild"

    def settings(self) -> dict[str, str]:
        """SAGEDOCK_* variables, as chalicelib.settings reads them."""
        return {
            "SAGEDOCK_SOURCE_BUCKET": self.source_bucket,
            "SAGEDOCK_DATA_BUCKET": self.data_bucket,
            "SAGEDOCK_ARTIFACT_BUCKET": self.artifact_bucket,
            "SAGEDOCK_RUNS_TABLE": self.runs_table,
            "SAGEDOCK_IDEMPOTENCY_TABLE": self.idempotency_table,
            "SAGEDOCK_CODEBUILD_PROJECT": self.codebuild_project,
            "SAGEDOCK_ECR_PREFIX": self.ecr_prefix,
            "SAGEDOCK_SAGEMAKER_ROLE_ARN": self.sagemaker_role_arn,
        }


def provision(
    session: Any, endpoint_url: str, resources: Resources, *, sample_data: Path | None = None
) -> None:
    """Create every resource (idempotent only against a fresh emulator) and upload the sample data."""
    from chalicelib.adapters.run_store import idempotency_table_definition, table_definition

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url, region_name=resources.region)

    s3 = client("s3")
    for bucket in (resources.source_bucket, resources.data_bucket, resources.artifact_bucket):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=resources.source_bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )

    dynamodb = client("dynamodb")
    dynamodb.create_table(**table_definition(resources.runs_table))
    dynamodb.create_table(**idempotency_table_definition(resources.idempotency_table))
    dynamodb.update_time_to_live(
        TableName=resources.idempotency_table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )

    iam = client("iam")
    for role_arn, service in (
        (resources.codebuild_role_arn, "codebuild"),
        (resources.sagemaker_role_arn, "sagemaker"),
    ):
        iam.create_role(
            RoleName=role_arn.rsplit("/", 1)[-1],
            AssumeRolePolicyDocument=_trust_policy(_TRUST[service]),
        )

    client("codebuild").create_project(
        name=resources.codebuild_project,
        source={"type": "S3", "location": f"{resources.source_bucket}/bundles/"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_SMALL",
            "privilegedMode": True,
        },
        serviceRole=resources.codebuild_role_arn,
    )

    from sagedock.eventqueue import subscribe

    subscribe(client("events"), client("sqs"), queue_name=resources.events_queue)

    if sample_data is not None:
        for key, path in sample_objects(sample_data):
            s3.upload_file(str(path), resources.data_bucket, key)


def sample_objects(container_dir: Path) -> Iterator[tuple[str, Path]]:
    """(key, file) for the sample image's data: each file of `data/` under each channel prefix it names."""
    data_dir = container_dir / "data"
    if not data_dir.is_dir():
        return
    files = sorted(p for p in data_dir.rglob("*") if p.is_file())
    for prefix in channel_prefixes(container_dir / "sagedock.toml"):
        for path in files:
            yield prefix + path.relative_to(data_dir).as_posix(), path


def channel_prefixes(manifest: Path) -> list[str]:
    """The data-bucket prefixes the manifest's channels read (s3:// URIs are someone else's bucket)."""
    channels: Mapping[str, Any] = {}
    if manifest.is_file():
        channels = tomllib.loads(manifest.read_text()).get("train", {}).get("channels", {})
    prefixes = [str(v) for v in channels.values() if isinstance(v, str) and not v.startswith("s3://")]
    return [p if p.endswith("/") else p + "/" for p in prefixes] or [DEFAULT_CHANNEL_PREFIX]


def _trust_policy(principal: str) -> str:
    import json

    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": principal}, "Action": "sts:AssumeRole"}
            ],
        }
    )
