"""How local invocations log: Lambda output to the app log (one invocation at a time), job output to files."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
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
