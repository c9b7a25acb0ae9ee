"""Where the sample container lives, for the container tests (a module of its own, not conftest)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "container"
IRIS = SAMPLE / "data" / "iris.csv"

# broken_bundle(train="...python...") -> a copy of the sample with those programs replaced
BundleFactory = Callable[..., Path]
