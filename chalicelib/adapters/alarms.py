"""CloudWatch adapter: which of an update's rollback alarms fired (the run's error names them)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.adapters.clients import translate

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient


class Alarms:
    """Reads alarm states; sagedock never creates or changes alarms (they are the user's)."""

    def __init__(self, client: CloudWatchClient) -> None:
        self._client = client

    def fired(self, names: list[str], since: datetime) -> list[str]:
        """Those of `names` in ALARM now, else those whose state changed since `since` (an alarm that
        tripped the rollback may be back to OK when the endpoint's event arrives)."""
        if not names:
            return []
        try:
            found = self._client.describe_alarms(
                AlarmNames=names, AlarmTypes=["MetricAlarm", "CompositeAlarm"]
            )
        except ClientError as exc:
            raise translate(exc, "reading the rollback alarms") from exc
        alarms = [*found.get("MetricAlarms", []), *found.get("CompositeAlarms", [])]
        in_alarm = [a["AlarmName"] for a in alarms if a.get("StateValue") == "ALARM"]
        if in_alarm:
            return sorted(in_alarm)
        changed = [
            a for a in alarms if a.get("StateUpdatedTimestamp") and a["StateUpdatedTimestamp"] >= since
        ]
        return sorted(a["AlarmName"] for a in changed)
