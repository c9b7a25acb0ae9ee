"""At-most-once side effects: powertools idempotency on the idempotency table (the OncePort of the flows)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

from chalicelib.domain.errors import StaleEvent
from chalicelib.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

KEY_PREFIX = "sagedock"
T = TypeVar("T")


def _no_context() -> LambdaContext | None:
    return None


class Once:
    """Runs a side effect at most once per key (powertools idempotency on the idempotency table).

    A concurrent duplicate gets AlreadyInProgress (and is dropped); a replay gets the first result back.
    """

    def __init__(
        self,
        table: str,
        client: DynamoDBClient,
        expires_after_seconds: int = 24 * 3600,
        context: Callable[[], LambdaContext | None] = _no_context,
    ) -> None:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

        self._persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=client)
        self._config = IdempotencyConfig(expires_after_seconds=expires_after_seconds)
        self._context = context

    def bind_context(self, context: LambdaContext | None) -> None:
        """Let in-progress records expire with the Lambda's remaining time (a crash is then retried)."""
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            self._config.register_lambda_context(context)

    def __call__(self, key: str, action: Callable[[], T]) -> T:
        self.bind_context(self._context())
        from aws_lambda_powertools.utilities.idempotency import idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

        done: list[T] = []

        def side_effect(key: str) -> dict[str, T]:
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
            # A replay answers the first delivery's result as the table stored it (JSON): the actions
            # return JSON values (None, a flag, a name), so it is what the first delivery's action returned.
            return cast("T", wrapped(key=key)["result"])
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
