"""The ports: what the flows ask of AWS, as Protocols; chalicelib/adapters/ implements one per service.

Flows and HTTP routes are typed against these, never against an adapter module, so a test (or the local
cloud) can hand a flow any object with these methods, and a flow's import never pulls in boto3.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from chalicelib.domain.bundle import BundleLimits, BundleReport, ReadStats
    from chalicelib.domain.manifest import Manifest
    from chalicelib.domain.models import EndpointState, Run, ScanResult, Status
    from chalicelib.domain.preflight_rules import Problem
    from chalicelib.domain.rollout import AutoscalingConfig

T = TypeVar("T")


class RunsPort(Protocol):
    """The runs table (chalicelib/adapters/run_store.py): conditional writes, so replays cannot clobber."""

    def create(self, run: Run) -> tuple[Run, bool]: ...
    def get(self, run_id: str) -> Run: ...
    def find(self, run_id: str) -> Run | None: ...
    def save(self, run: Run, *, expected_version: int) -> Run: ...
    def update(self, run_id: str, change: Callable[[Run], Run]) -> Run: ...
    def list(
        self, *, project: str | None, status: Status | None, limit: int, next_token: str | None
    ) -> tuple[builtins.list[Run], str | None]: ...
    def with_pending_events(self, limit: int = 100) -> tuple[str, ...]: ...
    def waiting_for_scan(self, limit: int = 100) -> tuple[str, ...]: ...
    def set_endpoint_owner(self, endpoint_name: str, run_id: str, *, take_over: bool = False) -> None: ...
    def endpoint_owner(self, endpoint_name: str) -> str | None: ...
    def list_projects(
        self, *, limit: int, next_token: str | None
    ) -> tuple[builtins.list[dict[str, Any]], str | None]: ...
    def latest_run(self, project: str) -> Run | None: ...
    def latest_succeeded(self, project: str) -> Run | None: ...


class OutboxPort(Protocol):
    """What the run store asks of the outbox (flows/outbox.py): stage an event, publish it after."""

    def stage(self, previous: Run | None, new: Run) -> tuple[Run, str]: ...
    def flush(self, store: RunsPort, run: Run, claim: str) -> int: ...
    def recover(self, store: RunsPort, run: Run) -> int: ...


class EventBusPort(Protocol):
    """The EventBridge bus run events go to; `put` says, per entry, whether it was accepted."""

    def put(self, entries: list[dict[str, Any]]) -> list[bool]: ...


class BundlesPort(Protocol):
    """Reads an uploaded bundle with ranged GETs and judges it (chalicelib/domain/bundle.py)."""

    def inspect(
        self,
        bucket: str,
        key: str,
        *,
        limits: BundleLimits,
        project: str,
        version_id: str | None = None,
        size: int | None = None,
        etag: str | None = None,
    ) -> tuple[BundleReport, ReadStats]: ...


class ChannelsPort(Protocol):
    """The training data's channels in S3: found by the SDK's convention, or checked to hold data."""

    def problems(self, channels: Mapping[str, str]) -> list[Problem]: ...
    def resolve(self, manifest: Manifest, *, project: str) -> tuple[Manifest, list[Problem]]: ...


class ModelDataPort(Protocol):
    """A serve-only bundle's model archive in S3 (`deploy.model_data`): where it is, and that it exists."""

    def problems(self, uri: str) -> list[Problem]: ...


class CodeBuildPort(Protocol):
    """Starts the image builds."""

    def start_build(
        self,
        *,
        bucket: str,
        key: str,
        version_id: str | None,
        environment: Mapping[str, str],
        secrets: Mapping[str, str],
        idempotency_token: str,
    ) -> str: ...


class EcrPort(Protocol):
    """The projects' image repositories and their scans."""

    def ensure_repository(self, name: str, *, project: str) -> str: ...
    def scan_result(self, repository: str, digest: str) -> ScanResult | None: ...


class SageMakerPort(Protocol):
    """Training jobs, models, endpoint configs and endpoints."""

    def create_training_job(self, request: dict[str, Any]) -> bool: ...
    def model_artifact(self, job_name: str) -> str: ...
    def create_model(self, request: dict[str, Any]) -> None: ...
    def create_endpoint_config(self, request: dict[str, Any]) -> None: ...
    def describe_endpoint(self, name: str) -> EndpointState | None: ...
    def instance_type(self, config_name: str) -> str | None: ...
    def endpoint_tags(self, name: str) -> dict[str, str] | None: ...
    def create_or_update_endpoint(
        self,
        name: str,
        config_name: str,
        tags: list[dict[str, str]],
        deployment_config: dict[str, Any] | None = None,
    ) -> str: ...


class AutoScalingPort(Protocol):
    """Application Auto Scaling of an endpoint's variant."""

    def register(self, endpoint: str, variant: str, scaling: AutoscalingConfig) -> None: ...
    def is_scaled(self, endpoint: str, variant: str) -> bool: ...
    def deregister(self, endpoint: str, variant: str) -> bool: ...


class AlarmsPort(Protocol):
    """CloudWatch alarms: which of an update's rollback alarms went to ALARM since it started."""

    def fired(self, names: list[str], since: datetime) -> list[str]: ...


class LogsPort(Protocol):
    """CloudWatch Logs: a stage's latest stream, its tail, or what came after a token."""

    def latest_stream(self, group: str, prefix: str) -> str | None: ...
    def tail(self, group: str, prefix: str, *, lines: int) -> tuple[str, list[str]] | None: ...
    def read(
        self, group: str, stream: str, *, limit: int, forward: str | None
    ) -> tuple[list[dict[str, str]], str | None]: ...


class EndpointsPort(Protocol):
    """SageMaker Runtime: an invocation forwarded to an endpoint, its body untouched; an asynchronous one
    (its body put in S3 first) and its answer read back; the endpoint's captured records."""

    def invoke(self, name: str, body: bytes, content_type: str, accept: str | None) -> tuple[bytes, str]: ...
    def invoke_async(
        self,
        name: str,
        body: bytes,
        content_type: str,
        accept: str | None,
        *,
        input_uri: str,
        inference_id: str,
    ) -> tuple[str, str, str | None]: ...
    def read(self, uri: str) -> tuple[bytes, str] | None: ...
    def captures(self, prefix_uri: str, limit: int) -> builtins.list[dict[str, Any]]: ...


class OncePort(Protocol):
    """Runs a side effect at most once per key (chalicelib/adapters/idempotency.py)."""

    def __call__(self, key: str, action: Callable[[], T]) -> T: ...
