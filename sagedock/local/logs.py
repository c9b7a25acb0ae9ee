"""How local invocations log: Lambda output to the app log (one invocation at a time); job output to files and
to the emulator's CloudWatch Logs, under the group and stream names AWS uses, so GET /runs/{id}/logs reads
them with the same code as in AWS."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO


def line_logger(path: Path) -> Callable[[str], None]:
    """A callback that appends each line to `path` (opened per line: no handle outlives the program)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def write(line: str) -> None:
        with lock, path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    return write


def cloudwatch_logger(logs: Any, group: str, stream: str) -> Callable[[str], None]:
    """A callback that puts each line into a CloudWatch Logs stream (created on the first line), as
    CodeBuild and SageMaker write their jobs' output. A line that cannot be written is dropped, never a
    failed job: the file log keeps it."""
    lock = threading.Lock()
    ready = False

    def write(line: str) -> None:
        nonlocal ready
        with lock:
            try:
                if not ready:
                    for create, kwargs in (
                        (logs.create_log_group, {"logGroupName": group}),
                        (logs.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
                    ):
                        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                            create(**kwargs)
                    ready = True
                logs.put_log_events(
                    logGroupName=group,
                    logStreamName=stream,
                    logEvents=[{"timestamp": int(time.time() * 1000), "message": line}],
                )
            except Exception:
                logging.getLogger("local_cloud").debug(
                    "log line for %s %s dropped", group, stream, exc_info=True
                )

    return write


def tee(*writers: Callable[[str], None]) -> Callable[[str], None]:
    """One line callback that hands each line to every writer."""

    def write(line: str) -> None:
        for writer in writers:
            writer(line)

    return write


class LineTee(io.TextIOBase):
    """A text file that also hands each complete line written to it to a callback."""

    def __init__(self, file: TextIO, on_line: Callable[[str], None]) -> None:
        self._file = file
        self._on_line = on_line
        self._pending = ""

    def write(self, text: str) -> int:
        self._file.write(text)
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._on_line(line)
        return len(text)

    def flush(self) -> None:
        self._file.flush()

    def writable(self) -> bool:
        return True


_inside = threading.local()
# The app's handlers share this process's module state (log keys, cached services) the way one Lambda
# instance does, and an instance runs one invocation at a time: so do we.
_one_at_a_time = threading.RLock()


@contextlib.contextmanager
def invocation() -> Iterator[None]:
    """Run a Lambda invocation (a handler or an API request): one at a time, its output to the app log."""
    with _one_at_a_time:
        previous = getattr(_inside, "active", False)
        _inside.active = True
        try:
            yield
        finally:
            _inside.active = previous


class InvocationOutput(io.TextIOBase):
    """sys.stdout while the local cloud runs: what a Lambda prints goes to its log file (as it would go to
    CloudWatch Logs); everything else goes where it always went."""

    def __init__(self, real: TextIO, path: Path) -> None:
        self._real = real
        self._path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def write(self, text: str) -> int:
        if getattr(_inside, "active", False):
            with self._lock:
                self._file.write(text)
                self._file.flush()
            return len(text)
        return self._real.write(text)

    def flush(self) -> None:
        self._real.flush()

    def writable(self) -> bool:
        return True

    def close_log(self) -> None:
        """Close the log file (the proxy keeps passing output to the real stream)."""
        with self._lock:
            self._file.close()


def capture_invocation_output(path: Path) -> Callable[[], None]:
    """Install InvocationOutput as sys.stdout, and point log handlers that write to stdout at it; returns
    the undo."""
    real = sys.stdout
    proxy = InvocationOutput(real, path)
    sys.stdout = proxy
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    for logger in [logging.getLogger(), *map(logging.getLogger, list(logging.root.manager.loggerDict))]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and handler.stream in (real, sys.__stdout__):
                moved.append((handler, handler.setStream(proxy)))

    def undo() -> None:
        for handler, previous in moved:
            handler.setStream(previous)
        if sys.stdout is proxy:
            sys.stdout = real
        proxy.close_log()

    return undo
