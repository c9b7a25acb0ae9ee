"""Wiring: the adapters a transition needs, built once per process from the settings and lazy clients."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property, lru_cache
from typing import Any

from chalicelib.adapters.clients import client
from chalicelib.adapters.run_store import RunStore
from chalicelib.domain.errors import StaleEvent
from chalicelib.domain.models import utcnow
from chalicelib.observability import logger
from chalicelib.settings import Settings, get_settings

KEY_PREFIX = "sagedock"


class Once:
    """Runs a side effect at most once per key (powertools idempotency on the idempotency table).

    A concurrent duplicate gets AlreadyInProgress (and is dropped); a replay gets the first result back.
    """

    def __init__(
        self,
        table: str,
        client: Any,
        expires_after_seconds: int = 24 * 3600,
        context: Callable[[], Any] = lambda: None,
    ) -> None:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

        self._persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=client)
        self._config = IdempotencyConfig(expires_after_seconds=expires_after_seconds)
        self._context = context

    def bind_context(self, context: Any) -> None:
        """Let in-progress records expire with the Lambda's remaining time (a crash is then retried)."""
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            self._config.register_lambda_context(context)

    def __call__(self, key: str, action: Callable[[], Any]) -> Any:
        self.bind_context(self._context())
        from aws_lambda_powertools.utilities.idempotency import idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

        done: list[Any] = []

        def side_effect(key: str) -> dict[str, Any]:
            done.append(action())
            return {"result": done[0]}

        # One prefix for every key: without it powertools prefixes the Lambda function's name, and the
        # two functions that may start the same training job (build finished, image pushed) would not
        # see each other's records.
        wrapped = idempotent_function(
            data_keyword_argument="key",
            persistence_store=self._persistence,
            config=self._config,
            key_prefix=KEY_PREFIX,
        )(side_effect)
        try:
            return wrapped(key=key)["result"]
        except IdempotencyAlreadyInProgressError as exc:
            raise StaleEvent(f"{key} is being done by a concurrent delivery of this event") from exc
        except Exception:
            if not done:
                raise
            # The side effect happened and only recording it failed (DynamoDB throttled past its retries):
            # its result is this delivery's to use; the record stays in progress until it expires.
            logger.warning(
                "the idempotency record of a finished side effect was not saved", extra={"key": key}
            )
            return done[0]


class Services:
    """Everything the transitions touch. Each adapter is built on first use, so an event pays only for the
    clients it needs; tests and the local cloud pass their own as keyword arguments instead."""

    def __init__(self, settings: Settings, *, clock: Callable[[], str] = utcnow, **adapters: Any) -> None:
        unknown = set(adapters) - {
            "dynamodb",
            "runs",
            "s3",
            "bundles",
            "channels",
            "codebuild",
            "ecr",
            "sagemaker",
            "once",
            "autoscaling",
            "alarms",
            "events",
            "logs",
        }
        if unknown:
            raise TypeError(f"unknown services: {sorted(unknown)}")
        self.settings = settings
        self.clock = clock
        self.context: Any = None  # the invocation's Lambda context, set per event
        self.__dict__.update(adapters)  # shadows the lazy properties below

    @cached_property
    def dynamodb(self) -> Any:
        """The DynamoDB client of the runs table and the idempotency table."""
        return client("dynamodb")

    @cached_property
    def runs(self) -> RunStore:
        """The runs table; each transition's `Run State Change` goes out through its outbox."""
        return RunStore(self.dynamodb, self.settings.runs_table, outbox=self.outbox)

    @cached_property
    def outbox(self) -> Any:
        """Publishes run events after the write that records them (chalicelib/flows/outbox.py)."""
        from chalicelib.flows.outbox import Outbox

        return Outbox(lambda: self.events, lambda: self.clock())

    @cached_property
    def events(self) -> Any:
        """The EventBridge bus run events go to."""
        from chalicelib.adapters.eventbus import EventBus

        return EventBus(client("events"), self.settings.event_bus)

    @cached_property
    def s3(self) -> Any:
        """The S3 client (bundle inspection, presigned uploads)."""
        return client("s3")

    @cached_property
    def bundles(self) -> Any:
        """Reads uploaded bundles with ranged GETs (chalicelib/adapters/s3_bundle.py)."""
        from chalicelib.adapters.s3_bundle import S3Bundles

        return S3Bundles(self.s3)

    @cached_property
    def channels(self) -> Any:
        """The training channels in the data bucket (chalicelib/adapters/s3_channels.py)."""
        from chalicelib.adapters.s3_channels import S3Channels

        return S3Channels(self.s3, self.settings.data_bucket)

    @cached_property
    def logs(self) -> Any:
        """Reads CloudWatch Logs: the tail of a failed training job's or endpoint's log."""
        from chalicelib.adapters.cloudwatch_logs import CloudWatchLogs

        return CloudWatchLogs(client("logs"))

    @cached_property
    def codebuild(self) -> Any:
        """Starts builds."""
        from chalicelib.adapters.codebuild import CodeBuild

        return CodeBuild(client("codebuild"), self.settings.codebuild_project)

    @cached_property
    def ecr(self) -> Any:
        """Creates repositories."""
        from chalicelib.adapters.ecr import Ecr

        return Ecr(client("ecr"))

    @cached_property
    def sagemaker(self) -> Any:
        """Training jobs, models, endpoint configs, endpoints."""
        from chalicelib.adapters.sagemaker import SageMaker

        return SageMaker(client("sagemaker"))

    @cached_property
    def autoscaling(self) -> Any:
        """Registers endpoint variants with Application Auto Scaling."""
        from chalicelib.adapters.autoscaling import AutoScaling

        return AutoScaling(client("application-autoscaling"))

    @cached_property
    def alarms(self) -> Any:
        """Reads the state of an update's rollback alarms."""
        from chalicelib.adapters.alarms import Alarms

        return Alarms(client("cloudwatch"))

    @cached_property
    def once(self) -> Once:
        """At-most-once side effects on the idempotency table."""
        return Once(self.settings.idempotency_table, self.dynamodb, context=lambda: self.context)


_override: Services | None = None


def use_services(services: Services | None) -> None:
    """Make every handler use these services (tests, the local cloud); None goes back to the defaults."""
    global _override
    _override = services


def get_services() -> Services:
    """The services handlers use: an override if one is set, else the process-wide defaults."""
    return _override if _override is not None else default_services()


@lru_cache(maxsize=1)
def default_services() -> Services:
    """The process-wide services for these settings (validated here, on the first event)."""
    return Services(get_settings())


def reset() -> None:
    """Forget every per-process cache (settings, services, clients): a new mock or local cloud is a new world.

    The one hook the local cloud and the tests call, instead of clearing caches module by module.
    """
    from chalicelib.adapters.clients import reset_clients
    from chalicelib.settings import get_settings

    use_services(None)
    default_services.cache_clear()
    get_settings.cache_clear()
    reset_clients()
