"""EventBridge adapter: puts sagedock's events on the configured bus, entry by entry success."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ParamValidationError

from chalicelib.adapters.clients import translate

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

MAX_ENTRIES = 10  # PutEvents takes at most 10 entries per call


class EventBus:
    """PutEvents on one bus; a refused call raises a domain error, a refused entry is reported as False."""

    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._client = client
        self._bus_name = bus_name

    def put(self, entries: list[dict[str, Any]]) -> list[bool]:
        """Put the entries (Source, DetailType, Detail, Time) in order; whether each was accepted."""
        accepted: list[bool] = []
        for start in range(0, len(entries), MAX_ENTRIES):
            batch = [
                {**entry, "EventBusName": self._bus_name} for entry in entries[start : start + MAX_ENTRIES]
            ]
            try:
                response = self._client.put_events(Entries=batch)  # type: ignore[arg-type]
            except (ClientError, ParamValidationError) as exc:
                raise translate(exc, f"putting events on bus {self._bus_name}") from exc
            accepted.extend("EventId" in result for result in response["Entries"])
            if len(accepted) < start + len(
                batch
            ):  # cannot happen per the API; never count a lost entry as sent
                accepted.extend([False] * (start + len(batch) - len(accepted)))
        return accepted
