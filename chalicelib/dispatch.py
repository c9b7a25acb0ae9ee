"""The one path every event takes: parse its detail, bind logging to it, run its transition."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, cast

from chalicelib.domain.errors import BadRequest
from chalicelib.observability import count, logger
from chalicelib.services import Services, get_services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from chalicelib.flows.outcomes import Outcome


class LambdaEvent(Protocol):
    """What Chalice hands an on_cw_event handler (chalice.app.CloudWatchEvent)."""

    event_id: str
    detail_type: str
    source: str
    detail: dict[str, Any]

    @property
    def context(self) -> object:
        """The invocation's Lambda context (chalice's stubs say a dict; Lambda hands its context object)."""


@contextmanager
def _logging_for(event: LambdaEvent) -> Iterator[None]:
    """Every log line of the event names it; nothing of it is left on the logger for the next one."""
    logger.set_correlation_id(None)
    logger.append_keys(event_id=event.event_id, detail_type=event.detail_type)
    try:
        yield
    finally:
        logger.remove_keys(["event_id", "detail_type"])
        logger.set_correlation_id(None)


def handle(event: LambdaEvent, model: Any, transition: Callable[[Any, Services], Outcome]) -> dict[str, Any]:
    """Parse `event.detail` into `model` and apply `transition`; a malformed event is logged and dropped.

    A malformed event cannot name its run, so there is nothing to record it on; retrying it would fail the
    same way, so it is not raised (Lambda would retry it twice and then drop it anyway).
    """
    from chalicelib.domain.event_models import parse_detail  # built on the first event, not at import

    with _logging_for(event):
        try:
            detail = parse_detail(model, event.detail)
        except BadRequest as exc:
            logger.error("malformed event dropped", extra={"error_message": exc.message})
            count("MalformedEvents")
            return {"action": "rejected", "code": exc.code, "reason": exc.message}
        svc = get_services()
        svc.context = cast("LambdaContext | None", getattr(event, "context", None))
        outcome = transition(detail, svc).as_dict()
        logger.info("event handled", extra={"outcome": outcome})
        return outcome
