"""Reading a run's logs: the tail of a stage's stream for GET /runs/{id}/logs, and a failure's last lines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.domain.errors import BadRequest
from chalicelib.domain.log_locations import decode_token, default_stage, encode_token, where

if TYPE_CHECKING:
    from chalicelib.domain.models import Run, Stage
    from chalicelib.ports import LogsPort

# What a failed job's or endpoint's error quotes of its log: its last lines, within a bounded size.
# What a failed job's or endpoint's error quotes of its log: its last lines, within a bounded size.
FAILURE_TAIL_LINES = 10


FAILURE_TAIL_CHARS = 1500


def run_logs(
    run: Run,
    stage: Stage | None,
    *,
    limit: int,
    next_token: str | None,
    codebuild_project: str,
    logs: LogsPort,
) -> dict[str, Any]:
    """GET /runs/{run_id}/logs: the tail of a stage's stream, or only what came after `next_token`.

    A token keeps its stage: following a build's log goes on reading it after the run has moved on.
    """
    token = decode_token(next_token) if next_token else None
    if token is not None and stage is not None and stage != token[0]:
        raise BadRequest(f"next_token is a token of the {token[0]} stage, not {stage}", code="InvalidToken")
    chosen = token[0] if token is not None else stage or default_stage(run)
    answer: dict[str, Any] = {"run_id": run.run_id, "stage": chosen.value, "source": None, "events": []}
    answer["next_token"] = None
    place = where(run, chosen, codebuild_project)
    forward: str | None = None
    if token is not None:
        _stage, group, stream, forward = token
        if place is None or group != place.group or not place.holds(stream):
            raise BadRequest("next_token belongs to another run", code="InvalidToken")
    elif place is not None:
        group = place.group
        found = place.stream or logs.latest_stream(place.group, place.prefix)
        if found is None:
            return answer
        stream = found
    else:
        return answer
    events, following = logs.read(group, stream, limit=limit, forward=forward)
    answer |= {
        "source": {"log_group": group, "log_stream": stream},
        "events": events,
        "next_token": encode_token(chosen, group, stream, following) if following else None,
    }
    return answer


def with_log_tail(message: str, logs: LogsPort, group: str, prefix: str = "") -> str:
    """A failure's message followed by the last lines of the log that explains it.

    SageMaker's FailureReason says that a container exited or failed its health check, not why: the why is
    in its CloudWatch log. Lines the message already holds are not repeated; logs that cannot be read
    leave the message as it is (the failure is recorded all the same).
    """
    from chalicelib.domain.errors import SagedockError
    from chalicelib.observability import logger

    try:
        found = logs.tail(group, prefix, lines=FAILURE_TAIL_LINES)
    except SagedockError as exc:
        logger.warning("the failure's log could not be read", extra={"group": group, "error": exc.message})
        return message
    if found is None:
        return message
    stream, lines = found
    quoted = " | ".join(line for line in lines if line.strip() and line.strip() not in message)
    if not quoted:
        return message
    if len(quoted) > FAILURE_TAIL_CHARS:
        quoted = "..." + quoted[-FAILURE_TAIL_CHARS:]
    return f"{message}; the last lines of its log ({group} {stream}): {quoted}"
