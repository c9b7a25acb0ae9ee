"""A run's logs: which CloudWatch Logs stream holds a stage's output, and its tail or what came after."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.aws import error_code, translate
from chalicelib.errors import BadRequest
from chalicelib.models import STAGE_OF_STATUS, Run, Stage, Status

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

TRAINING_JOBS_GROUP = "/aws/sagemaker/TrainingJobs"
ENDPOINTS_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
MAX_STREAMS_PER_PAGE = 50
# What a failed job's or endpoint's error quotes of its log: its last lines, within a bounded size.
FAILURE_TAIL_LINES = 10
FAILURE_TAIL_CHARS = 1500


def build_log_group(codebuild_project: str) -> str:
    """The group CodeBuild writes a project's builds to (infra/ creates it under this name)."""
    return f"/aws/codebuild/{codebuild_project}"


def endpoint_log_group(endpoint_name: str) -> str:
    """The group SageMaker writes an endpoint's containers to."""
    return ENDPOINTS_GROUP_PREFIX + endpoint_name


@dataclass(frozen=True)
class Where:
    """Where a stage's output is: a group, and the exact stream or the prefix of the streams to pick from."""

    group: str
    stream: str | None = None
    prefix: str = ""

    def holds(self, stream: str) -> bool:
        """Whether a stream named in a token is one of this stage's."""
        return stream == self.stream if self.stream is not None else stream.startswith(self.prefix)


def default_stage(run: Run) -> Stage:
    """The stage whose logs a caller means: the failed one of a FAILED run, else the current one."""
    if run.status == Status.FAILED and run.error is not None:
        return run.error.stage
    if run.status in (Status.SUCCEEDED, Status.FAILED):
        return Stage.DEPLOY
    return STAGE_OF_STATUS[run.status]


def where(run: Run, stage: Stage, codebuild_project: str) -> Where | None:
    """The stream(s) of a stage of this run; None while the stage has not started anything that logs.

    validate runs inside the API's Lambda: its output is in that function's log, not the run's.
    """
    if stage == Stage.BUILD and run.build_id:
        return Where(build_log_group(codebuild_project), stream=run.build_id.split(":", 1)[-1])
    if stage == Stage.TRAIN and run.training_job_name:
        # One stream per instance: <job>/algo-1-<epoch>, <job>/algo-2-<epoch>, ...
        return Where(TRAINING_JOBS_GROUP, prefix=run.training_job_name + "/")
    if stage == Stage.DEPLOY and run.endpoint_name:
        # One stream per variant and instance: AllTraffic/<instance id>.
        return Where(endpoint_log_group(run.endpoint_name))
    return None


def encode_token(stage: Stage, group: str, stream: str, forward: str) -> str:
    """An opaque token: the stage and stream read, and CloudWatch's forward token after the last event."""
    raw = json.dumps(
        {"t": stage.value, "g": group, "s": stream, "f": forward}, separators=(",", ":")
    ).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[Stage, str, str, str]:
    """(stage, group, stream, forward token); BadRequest when the token is not one this API returned."""
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("next_token is not a token this API returned", code="InvalidToken") from exc
    if not (
        isinstance(value, dict)
        and set(value) == {"t", "g", "s", "f"}
        and all(isinstance(v, str) and v for v in value.values())
        and value["t"] in {stage.value for stage in Stage}
    ):
        raise BadRequest("next_token is not a token this API returned", code="InvalidToken")
    return Stage(value["t"]), value["g"], value["s"], value["f"]


def iso(timestamp_ms: int) -> str:
    """CloudWatch's epoch milliseconds as the API's ISO 8601 UTC."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class CloudWatchLogs:
    """Reads log streams; a group or stream that does not exist (yet) reads as empty."""

    def __init__(self, client: CloudWatchLogsClient) -> None:
        self._client = client

    def latest_stream(self, group: str, prefix: str) -> str | None:
        """The stream of the group (starting with prefix) that was written last, or None."""
        request: dict[str, Any] = {"logGroupName": group, "limit": MAX_STREAMS_PER_PAGE}
        if prefix:
            request["logStreamNamePrefix"] = prefix  # cannot be combined with orderBy LastEventTime
        else:
            request |= {"orderBy": "LastEventTime", "descending": True}
        try:
            streams = self._client.describe_log_streams(**request).get("logStreams", [])
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise translate(exc, f"finding the log streams of {group}") from exc
        if not streams:
            return None
        # The latest stream: the one with the newest event, else the newest created (no event yet).
        chosen = max(
            streams,
            key=lambda s: (s.get("lastEventTimestamp") or 0, s.get("creationTime") or 0, s["logStreamName"]),
        )
        return str(chosen["logStreamName"])

    def tail(self, group: str, prefix: str, *, lines: int) -> tuple[str, list[str]] | None:
        """The latest stream of the group (starting with prefix) and its last `lines` messages, or None."""
        stream = self.latest_stream(group, prefix)
        if stream is None:
            return None
        events, _ = self.read(group, stream, limit=lines, forward=None)
        return stream, [event["message"].rstrip() for event in events]

    def read(
        self, group: str, stream: str, *, limit: int, forward: str | None
    ) -> tuple[list[dict[str, str]], str | None]:
        """The last `limit` events (or, after a forward token, the next ones) and the token after them."""
        request: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "limit": limit}
        if forward:
            request |= {"nextToken": forward, "startFromHead": True}
        else:
            request["startFromHead"] = False
        try:
            response = self._client.get_log_events(**request)
        except ClientError as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                return [], None
            if code == "InvalidParameterException" and forward:
                raise BadRequest("next_token is not a token this API returned", code="InvalidToken") from exc
            raise translate(exc, f"reading the log stream {group} {stream}") from exc
        events = [
            {"timestamp": iso(int(event.get("timestamp", 0))), "message": str(event.get("message", ""))}
            for event in response.get("events", [])
        ]
        following = response.get("nextForwardToken")
        return events, str(following) if following else forward


def run_logs(
    run: Run,
    stage: Stage | None,
    *,
    limit: int,
    next_token: str | None,
    codebuild_project: str,
    logs: CloudWatchLogs,
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


def with_log_tail(message: str, logs: CloudWatchLogs, group: str, prefix: str = "") -> str:
    """A failure's message followed by the last lines of the log that explains it.

    SageMaker's FailureReason says that a container exited or failed its health check, not why: the why is
    in its CloudWatch log. Lines the message already holds are not repeated; logs that cannot be read
    leave the message as it is (the failure is recorded all the same).
    """
    from chalicelib.errors import SagedockError
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
