"""The run record: what GET /runs/{run_id} returns and what the runs table stores."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from chalicelib.domain.manifest import Manifest, default_manifest, upgraded


class Status(StrEnum):
    """Run statuses; they only move forward, in this order, to SUCCEEDED or FAILED."""

    RECEIVED = "RECEIVED"
    BUILDING = "BUILDING"
    TRAINING = "TRAINING"
    DEPLOYING = "DEPLOYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def rank(self) -> int:
        """Position in the forward order (both terminal statuses share the last rank)."""
        return _RANK[self]

    @property
    def terminal(self) -> bool:
        """Whether no event can move the run any further."""
        return self in (Status.SUCCEEDED, Status.FAILED)


_RANK = {
    Status.RECEIVED: 0,
    Status.BUILDING: 1,
    Status.TRAINING: 2,
    Status.DEPLOYING: 3,
    Status.SUCCEEDED: 4,
    Status.FAILED: 4,
}


class Stage(StrEnum):
    """The pipeline stages; an error names the one that failed."""

    VALIDATE = "validate"
    BUILD = "build"
    TRAIN = "train"
    DEPLOY = "deploy"


STAGE_OF_STATUS = {
    Status.RECEIVED: Stage.VALIDATE,
    Status.BUILDING: Stage.BUILD,
    Status.TRAINING: Stage.TRAIN,
    Status.DEPLOYING: Stage.DEPLOY,
}
STATUS_OF_STAGE = {stage: status for status, stage in STAGE_OF_STATUS.items()}


def utcnow() -> str:
    """ISO 8601 UTC timestamp with milliseconds and a Z, sortable as a string."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class SourceRef(_Model):
    """The bundle object the run was made from."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    sha256: str | None = None


class ImageRef(_Model):
    """The image the run built; `uri` is always the by-digest reference once the push is known."""

    repository: str
    tag: str
    digest: str | None = None
    uri: str | None = None


class StageEntry(_Model):
    """One step of the timeline."""

    stage: Stage
    status: str  # IN_PROGRESS, SUCCEEDED, FAILED, SKIPPED
    started_at: str
    ended_at: str | None = None
    detail: str | None = None
    progress: str | None = None  # the open stage's latest step, e.g. the training job's secondary status
    progress_at: str | None = None  # when that step began (orders late events)


class RunError(_Model):
    """Why a run FAILED, in words a person can act on."""

    stage: Stage
    code: str
    message: str


class ScanResult(_Model):
    """ECR's scan of the run's image (`[build] scan = true`): its status and findings by severity.

    `waiting_since` (internal) marks a run waiting for the scan, for the scan sweeper, until training starts.
    """

    digest: str
    status: str
    counts: dict[str, int] = Field(default_factory=dict)
    waiting_since: str | None = None


class PendingEvent(_Model):
    """A `Run State Change` written with its transition and not yet known to be published (the outbox).

    `claim` names the writer that may publish it until `claimed_until`; after that anyone may take it over.
    """

    sequence: int = Field(ge=1)
    time: str
    detail: dict[str, Any]
    claim: str
    claimed_until: str


class Run(_Model):
    """A run of the pipeline for one bundle object (or a retrain of an earlier run's image)."""

    run_id: str
    project: str
    status: Status
    source: SourceRef
    image: ImageRef | None = None
    build_id: str | None = None
    training_job_name: str | None = None
    model_artifact: str | None = None
    model_name: str | None = None
    endpoint_config_name: str | None = None
    endpoint_name: str | None = None
    created_at: str
    updated_at: str
    stages: tuple[StageEntry, ...] = ()
    error: RunError | None = None
    attempt: int = Field(default=1, ge=1)
    # Recorded when the build starts (validated, channels resolved); None before, and for a run that failed
    # at validate. The runs table stores it as a JSON map, read back through `manifest.upgraded`.
    manifest: Manifest | None = None
    retrained_from: str | None = None
    events_recorded: int = Field(default=0, ge=0)
    outbox: tuple[PendingEvent, ...] = ()
    scan: ScanResult | None = None
    version: int = Field(default=0, ge=0)

    @field_validator("manifest", mode="before")
    @classmethod
    def _read_stored_manifest(cls, value: Any, info: ValidationInfo) -> Any:
        """A stored map (whatever version wrote it) becomes the Manifest, defaults filled in."""
        if isinstance(value, Mapping):
            return upgraded(value, project=str(info.data.get("project", "")))
        return value

    def effective_manifest(self) -> Manifest:
        """What the run follows: its manifest, or the defaults when none is recorded yet."""
        return self.manifest if self.manifest is not None else default_manifest(self.project)

    def public(self) -> dict[str, Any]:
        """The JSON form of the API (the lock version and the event outbox are internal)."""
        internal: dict[str, Any] = {
            "version": True,
            "events_recorded": True,
            "outbox": True,
            "scan": {"waiting_since"},
        }
        return self.model_dump(mode="json", exclude=internal)


@dataclass(frozen=True)
class EndpointState:
    """What DescribeEndpoint says: the source of truth when an endpoint event arrives."""

    name: str
    status: str
    config_name: str
    failure_reason: str | None
    # The alarms of the last update's AutoRollbackConfiguration (DescribeEndpoint's LastDeploymentConfig).
    rollback_alarms: tuple[str, ...] = ()
