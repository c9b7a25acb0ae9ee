"""Fixtures for the container contract tests: the sample bundle, broken copies of it, leak detection."""

from __future__ import annotations

import shutil
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sample_bundle import IRIS, SAMPLE, BundleFactory

from sagedock.image import LocalImage, build_local_image
from sagedock.optml import layout_opt_ml, pack_model
from sagedock.programs import ServeProcess, free_port, run_train

# Sessions (the leader's pid) of servers that fixtures keep running across tests.
SHARED_SESSIONS: set[int] = set()


def _processes_mentioning(marker: str, allowed_sessions: set[int]) -> list[str]:
    """Live processes whose command line mentions `marker` (a temporary directory of this run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, session = fields[0], int(fields[3])
        if marker in cmdline and state != "Z" and session not in allowed_sessions:
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


def _assert_no_processes(tmp_path_factory: pytest.TempPathFactory, allowed_sessions: set[int]) -> None:
    marker = str(tmp_path_factory.getbasetemp())
    deadline = time.monotonic() + 3
    while (left := _processes_mentioning(marker, allowed_sessions)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes left behind: {left}"


@pytest.fixture(autouse=True)
def no_leaked_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every program a test starts (workers included) must be gone when the test ends."""
    yield
    _assert_no_processes(tmp_path_factory, SHARED_SESSIONS)


@pytest.fixture(scope="session", autouse=True)
def nothing_left_at_the_end(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Not even the shared servers survive the session."""
    yield
    _assert_no_processes(tmp_path_factory, set())


@pytest.fixture(scope="session")
def sample_image(tmp_path_factory: pytest.TempPathFactory) -> LocalImage:
    """The sample container built once into a directory."""
    return build_local_image(SAMPLE, tmp_path_factory.mktemp("sample-image"))


@pytest.fixture(scope="session")
def sample_model(sample_image: LocalImage, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model.tar.gz of the sample trained on the shipped iris data."""
    opt_ml = tmp_path_factory.mktemp("sample-train") / "opt_ml"
    layout_opt_ml(opt_ml, hyperparameters={"max_leaf_nodes": "5"}, channels={"train": IRIS.parent})
    outcome = run_train(sample_image, opt_ml, timeout=120)
    assert outcome.ok, outcome.failure_reason
    return pack_model(opt_ml, opt_ml.parent / "model.tar.gz")


@pytest.fixture(scope="module")
def served(
    sample_image: LocalImage, sample_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    """The sample's `serve` on a free port, shared by a module's tests."""
    lines: list[str] = []
    server = ServeProcess.start(
        sample_image,
        sample_model,
        port=free_port(),
        workdir=tmp_path_factory.mktemp("serve"),
        log=lines.append,
    )
    SHARED_SESSIONS.add(server.pid)
    try:
        assert server.wait_healthy(30), f"serve never became healthy: {lines}"
        yield server
    finally:
        server.stop(grace=10)
        SHARED_SESSIONS.discard(server.pid)


@pytest.fixture
def broken_bundle(tmp_path: Path) -> BundleFactory:
    """A copy of the sample with some of its programs replaced: `broken_bundle(train="...python...")`."""

    def make(**programs: str) -> Path:
        bundle = tmp_path / "bundle"
        shutil.copytree(SAMPLE, bundle, ignore=shutil.ignore_patterns("__pycache__"))
        for name, source in programs.items():
            path = bundle / "program" / name
            path.write_text("#!/usr/bin/env python3\n" + textwrap.dedent(source).lstrip())
            path.chmod(0o755)
        return bundle

    return make
