"""Wiring: the adapters a transition needs, built once per process from the settings and lazy clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from chalicelib.domain.models import utcnow
from chalicelib.settings import Settings, get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

    from chalicelib.ports import (
        AlarmsPort,
        AutoScalingPort,
        BundlesPort,
        ChannelsPort,
        CodeBuildPort,
        EcrPort,
        EndpointsPort,
        EventBusPort,
        LogsPort,
        ModelDataPort,
        OncePort,
        OutboxPort,
        RunsPort,
        SageMakerPort,
    )


class Services:
    """Everything the transitions and routes touch. Each adapter is built on first use, so an event pays
    only for the clients it needs; tests pass their own (a client, or any object with the port's methods)
    as keyword arguments instead, and `installed` hands them to the app's handlers."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], str] = utcnow,
        dynamodb: DynamoDBClient | None = None,
        runs: RunsPort | None = None,
        outbox: OutboxPort | None = None,
        events: EventBusPort | None = None,
        s3: S3Client | None = None,
        bundles: BundlesPort | None = None,
        channels: ChannelsPort | None = None,
        model_data: ModelDataPort | None = None,
        logs: LogsPort | None = None,
        endpoints: EndpointsPort | None = None,
        codebuild: CodeBuildPort | None = None,
        ecr: EcrPort | None = None,
        sagemaker: SageMakerPort | None = None,
        autoscaling: AutoScalingPort | None = None,
        alarms: AlarmsPort | None = None,
        once: OncePort | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.context: LambdaContext | None = None  # the invocation's Lambda context, set per event
        given = {
            "dynamodb": dynamodb,
            "runs": runs,
            "outbox": outbox,
            "events": events,
            "s3": s3,
            "bundles": bundles,
            "channels": channels,
            "model_data": model_data,
            "logs": logs,
            "endpoints": endpoints,
            "codebuild": codebuild,
            "ecr": ecr,
            "sagemaker": sagemaker,
            "autoscaling": autoscaling,
            "alarms": alarms,
            "once": once,
        }
        # A value in the instance's __dict__ is what a cached_property below answers without building.
        self.__dict__.update({name: value for name, value in given.items() if value is not None})

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        """The DynamoDB client of the runs table and the idempotency table."""
        from chalicelib.adapters.clients import client

        made: DynamoDBClient = client("dynamodb")
        return made

    @cached_property
    def runs(self) -> RunsPort:
        """The runs table; each transition's `Run State Change` goes out through its outbox."""
        from chalicelib.adapters.run_store import RunStore

        return RunStore(
            self.dynamodb,
            self.settings.runs_table,
            outbox=self.outbox,
            listing=self.settings.runs_listing_index,
        )

    @cached_property
    def outbox(self) -> OutboxPort:
        """Publishes run events after the write that records them (chalicelib/flows/outbox.py)."""
        from chalicelib.flows.outbox import Outbox

        return Outbox(lambda: self.events, lambda: self.clock())

    @cached_property
    def events(self) -> EventBusPort:
        """The EventBridge bus run events go to."""
        from chalicelib.adapters.clients import client
        from chalicelib.adapters.eventbus import EventBus

        return EventBus(client("events"), self.settings.event_bus)

    @cached_property
    def s3(self) -> S3Client:
        """The S3 client (bundle inspection, channels, presigned uploads)."""
        from chalicelib.adapters.clients import client

        made: S3Client = client("s3")
        return made

    @cached_property
    def bundles(self) -> BundlesPort:
        """Reads uploaded bundles with ranged GETs (chalicelib/adapters/s3_bundle.py)."""
        from chalicelib.adapters.s3_bundle import S3Bundles

        return S3Bundles(self.s3)

    @cached_property
    def channels(self) -> ChannelsPort:
        """The training channels in the data bucket (chalicelib/adapters/s3_channels.py)."""
        from chalicelib.adapters.s3_channels import S3Channels

        return S3Channels(self.s3, self.settings.data_bucket)

    @cached_property
    def model_data(self) -> ModelDataPort:
        """A serve-only bundle's model archive in the data or artifact bucket (adapters/s3_model_data.py)."""
        from chalicelib.adapters.s3_model_data import S3ModelData

        return S3ModelData(self.s3, (self.settings.data_bucket, self.settings.artifact_bucket))

    @cached_property
    def logs(self) -> LogsPort:
        """Reads CloudWatch Logs: a failed job's or endpoint's tail, and GET /runs/{run_id}/logs."""
        from chalicelib.adapters.clients import client
        from chalicelib.adapters.cloudwatch_logs import CloudWatchLogs

        return CloudWatchLogs(client("logs"))

    @cached_property
    def endpoints(self) -> EndpointsPort:
        """Invokes endpoints through SageMaker Runtime (POST /endpoints/{name}/invocations and
        /async-invocations), reads asynchronous answers and captured records from S3."""
        from chalicelib.adapters.clients import client
        from chalicelib.adapters.sagemaker_runtime import Endpoints

        return Endpoints(client("sagemaker-runtime"), client("sagemaker"), self.s3)

    @cached_property
    def codebuild(self) -> CodeBuildPort:
        """Starts builds."""
        from chalicelib.adapters.clients import client
        from chalicelib.adapters.codebuild import CodeBuild

        return CodeBuild(client("codebuild"), self.settings.codebuild_project)

    @cached_property
    def ecr(self) -> EcrPort:
        """Creates repositories and reads image scans."""
        from chalicelib.adapters.clients import client
        from chalicelib.adapters.ecr import Ecr

        return Ecr(client("ecr"))

    @cached_property
    def sagemaker(self) -> SageMakerPort:
        """Training jobs, models, endpoint configs, endpoints."""
        from chalicelib.adapters.clients import client
        from chalicelib.adapters.sagemaker import SageMaker

        return SageMaker(client("sagemaker"))

    @cached_property
    def autoscaling(self) -> AutoScalingPort:
        """Registers endpoint variants with Application Auto Scaling."""
        from chalicelib.adapters.autoscaling import AutoScaling
        from chalicelib.adapters.clients import client

        return AutoScaling(client("application-autoscaling"))

    @cached_property
    def alarms(self) -> AlarmsPort:
        """Reads the state of an update's rollback alarms."""
        from chalicelib.adapters.alarms import Alarms
        from chalicelib.adapters.clients import client

        return Alarms(client("cloudwatch"))

    @cached_property
    def once(self) -> OncePort:
        """At-most-once side effects on the idempotency table (chalicelib/adapters/idempotency.py)."""
        from chalicelib.adapters.idempotency import Once

        return Once(self.settings.idempotency_table, self.dynamodb, context=lambda: self.context)


@lru_cache(maxsize=1)
def default_services() -> Services:
    """The process-wide services for these settings (validated here, on the first event)."""
    return Services(get_settings())


# What `installed` put in place of the defaults, innermost last; empty outside every `installed` block.
_installed: list[Services] = []


def get_services() -> Services:
    """The services the app's handlers use: those of the innermost `installed` block, else the defaults."""
    return _installed[-1] if _installed else default_services()


@contextmanager
def installed(services: Services) -> Iterator[Services]:
    """The app's handlers use `services` inside this block (tests: their own clients or fakes), and what
    they used before once it ends, however it ends."""
    _installed.append(services)
    try:
        yield services
    finally:
        _installed.remove(services)


def reset() -> None:
    """Forget every per-process cache (settings, services, clients): a new mock or local cloud is a new world.

    The one hook the local cloud and the tests call, instead of clearing caches module by module. Services
    an `installed` block put in place stay until that block ends.
    """
    from chalicelib.adapters.clients import reset_clients

    default_services.cache_clear()
    get_settings.cache_clear()
    reset_clients()
