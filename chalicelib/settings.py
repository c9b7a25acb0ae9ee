"""One settings model, read from the environment once and validated at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from chalicelib.domain.errors import SettingsError

PREFIX = "SAGEDOCK_"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], BeforeValidator(_split_csv)]


class Settings(BaseModel):
    """Every environment variable the Lambdas read, by its name without the SAGEDOCK_ prefix."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    source_bucket: str = Field(min_length=3, validation_alias="SAGEDOCK_SOURCE_BUCKET")
    data_bucket: str = Field(min_length=3, validation_alias="SAGEDOCK_DATA_BUCKET")
    artifact_bucket: str = Field(min_length=3, validation_alias="SAGEDOCK_ARTIFACT_BUCKET")
    runs_table: str = Field(min_length=3, validation_alias="SAGEDOCK_RUNS_TABLE")
    idempotency_table: str = Field(min_length=3, validation_alias="SAGEDOCK_IDEMPOTENCY_TABLE")
    codebuild_project: str = Field(min_length=2, validation_alias="SAGEDOCK_CODEBUILD_PROJECT")
    ecr_prefix: str = Field(
        default="sagedock", pattern=r"^[a-z0-9][a-z0-9._/-]*[a-z0-9]$", validation_alias="SAGEDOCK_ECR_PREFIX"
    )
    sagemaker_role_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$", validation_alias="SAGEDOCK_SAGEMAKER_ROLE_ARN"
    )

    # The EventBridge bus every `Run State Change` goes to (a name or an ARN).
    event_bus: str = Field(default="default", min_length=1, validation_alias="SAGEDOCK_EVENT_BUS")

    # Private registry mode: the registry host, and then the function, network and secret below too.
    private_registry: str | None = Field(default=None, validation_alias="SAGEDOCK_PRIVATE_REGISTRY")
    registry_auth_function_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9$_-]+)?$",
        validation_alias="SAGEDOCK_REGISTRY_AUTH_FUNCTION_ARN",
    )
    subnet_ids: CsvList = Field(default_factory=list, validation_alias="SAGEDOCK_SUBNET_IDS")
    security_group_ids: CsvList = Field(default_factory=list, validation_alias="SAGEDOCK_SECURITY_GROUP_IDS")
    # The secret (JSON username/password) the build pushes with; CodeBuild resolves it, it is never read here.
    registry_secret_id: str | None = Field(default=None, validation_alias="SAGEDOCK_REGISTRY_SECRET_ID")

    # Bundle limits: a bundle beyond any of them is rejected before a build is paid for.
    max_bundle_entries: int = Field(default=10_000, ge=1, validation_alias="SAGEDOCK_MAX_BUNDLE_ENTRIES")
    max_bundle_uncompressed_bytes: int = Field(
        default=4 * 1024**3, ge=1, validation_alias="SAGEDOCK_MAX_BUNDLE_UNCOMPRESSED_BYTES"
    )
    max_compression_ratio: float = Field(
        default=200.0, gt=1, validation_alias="SAGEDOCK_MAX_COMPRESSION_RATIO"
    )

    # The image scan gate for every run of the stage, whatever the bundle's `[build] scan` says.
    require_image_scan: bool = Field(default=False, validation_alias="SAGEDOCK_REQUIRE_IMAGE_SCAN")
    # How long a run waits for ECR's scan of its image before it fails with ImageScanTimeout.
    image_scan_timeout_seconds: int = Field(
        default=1800, ge=60, validation_alias="SAGEDOCK_IMAGE_SCAN_TIMEOUT_SECONDS"
    )

    # Which index lists every run and project: by_shard (its SHARDS partitions, merged), or the one-partition
    # by_created a stage deployed before it reads until its runs are backfilled (docs/deploy.md).
    runs_listing_index: Literal["by_shard", "by_created"] = Field(
        default="by_shard", validation_alias="SAGEDOCK_RUNS_LISTING_INDEX"
    )

    @model_validator(mode="after")
    def _scan_needs_ecr(self) -> Settings:
        if self.require_image_scan and self.private_registry:
            raise ValueError(
                "SAGEDOCK_REQUIRE_IMAGE_SCAN needs ECR's scanning, and SAGEDOCK_PRIVATE_REGISTRY pushes "
                "elsewhere: unset one of them"
            )
        return self

    @model_validator(mode="after")
    def _private_registry_complete(self) -> Settings:
        if not self.private_registry:
            return self
        missing = [
            name
            for name, value in (
                ("SAGEDOCK_REGISTRY_AUTH_FUNCTION_ARN", self.registry_auth_function_arn),
                ("SAGEDOCK_SUBNET_IDS", self.subnet_ids),
                ("SAGEDOCK_SECURITY_GROUP_IDS", self.security_group_ids),
                ("SAGEDOCK_REGISTRY_SECRET_ID", self.registry_secret_id),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                "SAGEDOCK_PRIVATE_REGISTRY is set, so these must be set too: " + ", ".join(missing)
            )
        return self

    @property
    def private_mode(self) -> bool:
        """True when images live in a private Docker registry instead of ECR."""
        return bool(self.private_registry)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Validate the environment, raising SettingsError that names each missing or malformed variable."""
    env = os.environ if environ is None else environ
    values = {key: value for key, value in env.items() if key.startswith(PREFIX)}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            problems.append(f"{name}: {error['msg']}" if name else error["msg"])
        raise SettingsError("invalid sagedock settings: " + "; ".join(problems)) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated on first use."""
    return load_settings()
