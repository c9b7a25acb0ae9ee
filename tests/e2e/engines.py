"""The container engine the container-mode tests need: they skip, saying why, where none answers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sagedock.local.baseimage import Recipe, engine_has
from sagedock.local.engine import Engine, EngineUnavailable, detect
from sagedock.local.registry import find_registry

# What the container-mode tests took (local up, each run), printed at the end of the session.
DURATIONS: dict[str, float] = {}


def require_engine() -> Engine:
    """The engine `auto` picks, with the base image built; skips the test where there is none."""
    try:
        engine = detect("auto")
    except EngineUnavailable as exc:  # pragma: no cover - auto never raises
        pytest.skip(str(exc))
    if engine.command is None:
        pytest.skip(f"no container engine answers: {engine.reason}")
    if find_registry() is None:
        pytest.skip("container mode needs docker-registry (Debian: apt-get install docker-registry)")
    if not engine_has(engine.command, Recipe()):
        pytest.skip(f"the base image {Recipe().name} is not built: run `make base-image`")
    return engine


def build_image(engine: Engine, context: Path, tag: str) -> str:
    """Build a test image with the engine; its tag."""
    assert engine.command is not None
    done = subprocess.run(
        [engine.command, "build", "--network", "host", "-q", "-t", tag, str(context)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return tag
