"""`sagedock demo` in container mode against process mode: whole demo, build stage, deploy stage (first ping).

Each sample is a fresh `sagedock demo --engine E` on a state directory of its own (so nothing but the
engine's layer cache and the base image carries over, as for a user's second run); the engines alternate so
that caches and CPU frequency affect both alike. The figures are the run's own timeline (build, train,
deploy: the deploy stage is pull, start and the first answered /ping) and the demo's wall time; printed as
minima and the ratio of the minima. Skips container mode, saying why, where no engine answers.
Run: .venv/bin/python bench/bench_container_mode.py [--samples N] [--engine podman|docker]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE = re.compile(r"^\s+(build|train|deploy)\s+SUCCEEDED\s+([0-9.]+)s", re.M)


def once(engine: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as state:
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "sagedock.cli", "demo", "--engine", engine, "--state-dir", state],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"demo --engine {engine} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    figures = {stage: float(seconds) for stage, seconds in STAGE.findall(done.stdout)}
    figures["demo"] = wall
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--engine", default="podman")
    args = parser.parse_args()
    from sagedock.local.engine import EngineUnavailable, detect

    engines = ["process"]
    try:
        detect(args.engine)
        engines.append(args.engine)
    except EngineUnavailable as exc:
        print(f"container mode skipped: {exc}")
    samples: dict[str, list[dict[str, float]]] = {engine: [] for engine in engines}
    for _ in range(args.samples):
        for engine in engines:
            samples[engine].append(once(engine))
    print(f"{'figure':<8}" + "".join(f"{engine + ' min (s)':>20}" for engine in engines))
    for figure in ("build", "train", "deploy", "demo"):
        minima = [min(s.get(figure, float("nan")) for s in samples[engine]) for engine in engines]
        line = f"{figure:<8}" + "".join(f"{value:>20.1f}" for value in minima)
        if len(minima) == 2 and minima[0] > 0:
            line += f"   {engines[1]}/process = {minima[1] / minima[0]:.1f}x"
        print(line)
    print(f"samples per engine: {args.samples}, alternating; minima of each figure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
