"""Fixtures of the end-to-end tests: a local cloud per module, started and stopped as a user would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engines import DURATIONS, require_engine
from localcloud import LocalCloudProcess, start_local_cloud, stop_local_cloud

from sagedock.local.engine import Engine


@pytest.fixture(scope="module")
def local_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloudProcess]:
    state_dir = tmp_path_factory.mktemp("local-cloud")
    cloud = start_local_cloud(state_dir)
    try:
        yield cloud
    finally:
        stop_local_cloud(cloud)


@pytest.fixture(scope="session")
def container_engine() -> Engine:
    """The container engine (docker or podman) with the base image; the test skips where there is none."""
    return require_engine()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How long container mode took: its build, train and deploy dominate the e2e suite where it runs."""
    if DURATIONS:
        figures = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in DURATIONS.items())
        terminalreporter.write_line(f"container mode: {figures}")
