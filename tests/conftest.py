"""What every test shares, run serially or on `make test`'s two workers (pytest-xdist, --dist loadfile).

Each worker is a process of its own with its own temporary directory (tmp_path_factory's basetemp is
`popen-gwN` under the run's), so what a test keeps under tmp_path, a local cloud's state dir included, is
its worker's alone; ports are free ones, container names carry a nonce and their owner's label.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# The process environment as Python started with it: `os.environ` must stay this object, whose changes
# (monkeypatch.setenv included) reach the processes a test starts.
PROCESS_ENVIRON = os.environ


@pytest.fixture(autouse=True)
def environ_stays_the_process_environment() -> Iterator[None]:
    """A test that leaves `os.environ` replaced (by a plain dict, say) fails, rather than a later one."""
    yield
    if os.environ is not PROCESS_ENVIRON:
        replaced = type(os.environ).__name__
        os.environ = PROCESS_ENVIRON  # noqa: B003 - the process environment itself, put back
        pytest.fail(
            f"os.environ was left replaced by a {replaced}: changes to it would no longer reach the "
            "processes later tests start (os.environ is restored now)"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a test worker, the files allowed the longest (timeout mark, then the slow mark) come first.

    Every worker collects alike and loadfile hands files out in this order (with --no-loadscope-reorder,
    as `make test` passes), so the longest file starts at once instead of last, on a worker of its own while
    the other runs the rest. A serial run keeps the collection order."""
    if not hasattr(config, "workerinput"):
        return
    weight: dict[str, tuple[float, int]] = {}
    for item in items:
        timeout = item.get_closest_marker("timeout")
        allowed = float(timeout.args[0]) if timeout is not None and timeout.args else 0.0
        slow = 1 if item.get_closest_marker("slow") is not None else 0
        path = item.nodeid.split("::", 1)[0]
        weight[path] = max(weight.get(path, (0.0, 0)), (allowed, slow))
    items.sort(key=lambda item: tuple(-value for value in weight[item.nodeid.split("::", 1)[0]]))
