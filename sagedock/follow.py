"""Following a run until it ends: a live per-stage display on a terminal, one line per change elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from sagedock.client import ApiClient, ApiError
from sagedock.output import STAGES, TERMINAL, stage_note
from sagedock.progress import LiveProgress

POLL_SECONDS = 0.5
MAX_POLL_SECONDS = 5.0  # while a run does not change (a long training job), ask no more often than this
RECORD_TIMEOUT = 120.0  # a run not recorded by then will not be: the upload did not reach the pipeline


class View(Protocol):
    """What a follow shows: every record polled, then the last one."""

    def update(self, record: dict[str, Any]) -> None: ...

    def close(self, record: dict[str, Any] | None) -> None: ...


def watch(
    client: ApiClient,
    run_id: str,
    view: View,
    *,
    timeout: float,
    poll: float = POLL_SECONDS,
    record_timeout: float = RECORD_TIMEOUT,
) -> dict[str, Any]:
    """Poll the run until it is SUCCEEDED or FAILED, showing each record; returns the final record.

    A run not recorded yet (404 right after the upload) is waited for up to record_timeout. The interval
    grows from `poll` to MAX_POLL_SECONDS while the run does not change, and is back to `poll` when it does.
    """
    began = time.monotonic()
    record: dict[str, Any] = {}
    progress = LiveProgress(client, run_id)
    interval, seen = poll, None
    try:
        while True:
            try:
                record = client.get_run(run_id)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                record = {}
            view.update(progress.annotate(record))
            if record.get("status") in TERMINAL:
                return record
            waited = time.monotonic() - began
            if not record and waited > record_timeout:
                raise TimeoutError(
                    f"no run {run_id} was recorded within {record_timeout:.0f}s of the upload: is the source "
                    "bucket's EventBridge notification reaching the pipeline? (`sagedock runs` lists what is)"
                )
            if waited > timeout:
                raise TimeoutError(
                    f"run {run_id} is still {record.get('status')} after {timeout:.0f}s; "
                    f"`sagedock status {run_id}` shows where it is"
                )
            changed = (record.get("updated_at"), record.get("status"), len(record.get("stages") or []))
            interval = poll if changed != seen else min(MAX_POLL_SECONDS, interval * 1.5)
            seen = changed
            time.sleep(interval)
    finally:
        view.close(record or None)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def stage_seconds(entry: dict[str, Any], now: datetime | None = None) -> float | None:
    """How long the stage took, or has taken so far when still open."""
    started = parse_time(entry.get("started_at"))
    if started is None:
        return None
    ended = parse_time(entry.get("ended_at")) or now or datetime.now(UTC)
    return max(0.0, (ended - started).total_seconds())


class LineView:
    """One line per change (a stage starting, ending or saying something new), for logs, pipes and CI."""

    def __init__(self, say: Callable[[str], Any] = print) -> None:
        self._say = say
        self._started = time.monotonic()
        self._seen: set[tuple[str, str, str]] = set()
        self._status = ""

    def _line(self, text: str) -> None:
        self._say(f"[{time.monotonic() - self._started:6.1f}s] {text}")

    def update(self, record: dict[str, Any]) -> None:
        for entry in record.get("stages") or []:
            key = (str(entry.get("stage")), str(entry.get("status")), stage_note(entry))
            if key not in self._seen:
                self._seen.add(key)
                note = f" - {key[2]}" if key[2] else ""
                self._line(f"{key[0]:<9} {key[1]}{note}")
        status = str(record.get("status") or "")
        if status and status != self._status:
            self._status = status
            if status in TERMINAL:
                self._line(f"run {status}")

    def close(self, record: dict[str, Any] | None) -> None:
        return None


class LiveView:
    """A live table redrawn in place: each stage's status, elapsed time and progress, and the run's clock."""

    def __init__(self, run_id: str, stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self._run_id = run_id
        self._began = time.monotonic()
        self._record: dict[str, Any] = {}
        self._console = Console(file=stream or sys.stdout)
        self._live = Live(
            console=self._console,
            get_renderable=self._render,
            refresh_per_second=4,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def update(self, record: dict[str, Any]) -> None:
        self._record = record
        self._live.refresh()

    def close(self, record: dict[str, Any] | None) -> None:
        if record is not None:
            self._record = record
        self._live.refresh()
        self._live.stop()
        status = self._record.get("status")
        if status in TERMINAL:
            self._console.print(f"run {self._run_id} {status}", highlight=False)

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        record = self._record
        status = record.get("status") or "not recorded yet"
        elapsed = time.monotonic() - self._began
        stages = record.get("stages") or []
        last_log = stages[-1].get("last_log") if stages else None
        table = Table(
            title=f"run {self._run_id}  {status}  {elapsed:5.1f}s",
            title_justify="left",
            caption=Text(f"{stages[-1].get('stage')} log: {last_log}") if last_log else None,
            caption_justify="left",
            expand=False,
        )
        table.add_column("stage")
        table.add_column("status")
        table.add_column("elapsed", justify="right")
        table.add_column("progress", overflow="fold")
        entries = {str(e.get("stage")): e for e in record.get("stages") or []}
        for stage in STAGES:
            entry = entries.get(stage)
            if entry is None:
                table.add_row(stage, Text("pending", style="dim"), "", "")
                continue
            seconds = stage_seconds(entry)
            style = {"SUCCEEDED": "green", "FAILED": "bold red", "IN_PROGRESS": "yellow"}.get(
                str(entry.get("status")), ""
            )
            spinner = "… " if entry.get("status") == "IN_PROGRESS" else ""
            table.add_row(
                stage,
                Text(f"{spinner}{entry.get('status')}", style=style),
                f"{seconds:.1f}s" if seconds is not None else "",
                Text(stage_note(entry)),
            )
        return table


def follow_view(run_id: str, *, say: Callable[[str], Any] = print, live: bool | None = None) -> View:
    """The live display on a terminal, one line per change when stdout is a file or a pipe."""
    if live is None:
        live = sys.stdout.isatty()
    return LiveView(run_id) if live else LineView(say)
