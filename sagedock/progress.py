"""What a followed run is doing now, beyond its record: the build's phase and the open stage's latest log
line (GET /runs/{id}/logs), and the endpoint's own status while it deploys (GET /projects/{project})."""

from __future__ import annotations

import re
import time
from typing import Any

from sagedock.client import ApiClient, ApiError
from sagedock.output import one_line

ASK_EVERY_SECONDS = 2.0  # each source is asked at most this often, whatever the follow's own poll
LOG_PAGE = 50
# CodeBuild's own lines: "[Container] 2026/12/05 10:00:00.123456 Entering phase BUILD"
PHASE = re.compile(r"Entering phase (\w+)")


class _Every:
    """True at most once per period; never again once switched off (an API without the route)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._last = -seconds
        self.on = True

    def reset(self) -> None:
        self._last = -self._seconds

    def due(self) -> bool:
        if self.on and time.monotonic() - self._last >= self._seconds:
            self._last = time.monotonic()
            return True
        return False


class LiveProgress:
    """Adds to the open stage of each polled record `progress` (build phase, endpoint status: a change a
    line-per-change view prints) and `last_log` (the stage's latest log line, for the live view only)."""

    def __init__(self, client: ApiClient, run_id: str, every: float = ASK_EVERY_SECONDS) -> None:
        self._client = client
        self._run_id = run_id
        self._logs = _Every(every)
        self._endpoint = _Every(every)
        self._stage: str | None = None
        self._token: str | None = None
        self._phase: str | None = None
        self._last_line: str | None = None
        self._endpoint_status: str | None = None

    def annotate(self, record: dict[str, Any]) -> dict[str, Any]:
        stages = record.get("stages") or []
        if not stages or stages[-1].get("status") != "IN_PROGRESS":
            return record
        entry = dict(stages[-1])
        stage = str(entry.get("stage"))
        self._read_log(stage)
        found = []
        if stage == "build" and self._phase:
            found.append(f"phase {self._phase}")
        if stage == "deploy" and (status := self._endpoint_of(record)):
            found.append(f"endpoint {status}")
        if found and not entry.get("progress"):  # what the record itself says wins
            entry["progress"] = ", ".join(found)
        if self._last_line:
            entry["last_log"] = self._last_line
        return {**record, "stages": [*stages[:-1], entry]}

    def _read_log(self, stage: str) -> None:
        if stage != self._stage:  # a new stage: its log from its start, asked at once
            self._stage, self._token, self._phase, self._last_line = stage, None, None, None
            self._logs.reset()
        if not self._logs.due():
            return
        try:
            page = self._client.get_logs(self._run_id, stage=stage, limit=LOG_PAGE, next_token=self._token)
        except ApiError as exc:
            if exc.status == 0:
                raise
            self._logs.on = False
            return
        for event in page.get("events") or []:
            message = str(event.get("message") or "").strip()
            if phase := PHASE.search(message):
                self._phase = phase.group(1)
            if message:
                self._last_line = one_line(message, 100)
        self._token = page.get("next_token") or self._token

    def _endpoint_of(self, record: dict[str, Any]) -> str | None:
        if self._endpoint.due():
            try:
                endpoint = self._client.get_project(str(record.get("project"))).get("endpoint") or {}
            except ApiError as exc:
                if exc.status == 0:
                    raise
                self._endpoint.on = False
                return None
            if endpoint.get("name") == record.get("endpoint_name") and endpoint.get("status"):
                self._endpoint_status = str(endpoint["status"])
        return self._endpoint_status
