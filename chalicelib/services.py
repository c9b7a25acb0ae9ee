"""Wiring: the adapters a transition needs, built once per process from the settings and lazy clients."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from chalicelib.errors import StaleEvent
from chalicelib.models import utcnow
from chalicelib.runs import RunStore
from chalicelib.settings import Settings, get_settings


class Once:
    """Runs a side effect at most once per key (powertools idempotency on the idempotency table).

    A concurrent duplicate gets AlreadyInProgress (and is dropped); a replay gets the first result back.
    """

    def __init__(self, table: str, client: Any, expires_after_seconds: int = 24 * 3600) -> None:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

        self._persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=client)
        self._config = IdempotencyConfig(expires_after_seconds=expires_after_seconds)

    def bind_context(self, context: Any) -> None:
        """Let in-progress records expire with the Lambda's remaining time (a crash is then retried)."""
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            self._config.register_lambda_context(context)

    def __call__(self, key: str, action: Callable[[], Any]) -> Any:
        from aws_lambda_powertools.utilities.idempotency import idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

        def side_effect(key: str) -> dict[str, Any]:
            return {"result": action()}

        side_effect.__name__ = key.split(":", 1)[0]
        wrapped = idempotent_function(
            data_keyword_argument="key", persistence_store=self._persistence, config=self._config
        )(side_effect)
        try:
            return wrapped(key=key)["result"]
        except IdempotencyAlreadyInProgressError as exc:
            raise StaleEvent(f"{key} is being done by a concurrent delivery of this event") from exc


@dataclass
class Services:
    """Everything the transitions touch, injected so tests and the local cloud can supply their own."""

    settings: Settings
    runs: RunStore
    s3: Any
    codebuild: Any
    ecr: Any
    sagemaker: Any
    once: Once
    clock: Callable[[], str] = field(default=utcnow)


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
    """The process-wide services (clients are created here, on the first event, not at import)."""
    from chalicelib.aws import client
    from chalicelib.codebuild import CodeBuild
    from chalicelib.ecr import Ecr
    from chalicelib.sagemaker import SageMaker

    settings = get_settings()
    dynamodb = client("dynamodb")
    return Services(
        settings=settings,
        runs=RunStore(dynamodb, settings.runs_table),
        s3=client("s3"),
        codebuild=CodeBuild(client("codebuild"), settings.codebuild_project),
        ecr=Ecr(client("ecr")),
        sagemaker=SageMaker(client("sagemaker")),
        once=Once(settings.idempotency_table, dynamodb),
    )
