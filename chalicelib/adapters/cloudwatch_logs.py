"""CloudWatch Logs adapter: a stage's latest stream, its tail, or the events after a forward token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.adapters.clients import error_code, translate
from chalicelib.domain.errors import BadRequest
from chalicelib.domain.log_locations import iso

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

MAX_STREAMS_PER_PAGE = 50


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
