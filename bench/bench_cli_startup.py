"""Start-up of the `sagedock` CLI: wall time of fresh processes for `--help` and for the runs command.

Each sample is a new interpreter running the real entry point (`python -m sagedock.cli`), as a user's shell
does; the commands alternate so that disk cache and CPU frequency affect all alike. `runs` is pointed at a
closed loopback port, so it measures imports, parsing and one refused connection, never a server. A bare
`python -c pass` is the floor the ratios are taken against. Also printed: which heavy modules each command
imports (botocore, rich, pydantic), the start-up cost the CLI keeps out of commands that do not need them.
Run: .venv/bin/python bench/bench_cli_startup.py [--samples N] [--root OTHER] (another checkout, e.g.
`git archive main | tar -x -C /tmp/base`, measured in the same loop with its own code under this interpreter).
bench_start_up.py breaks `--help` down (import, parser); this one adds `runs` and the heavy-module check.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("botocore", "boto3", "rich", "pydantic", "chalicelib.domain.names")

PROBE = """
import sys, runpy
sys.argv = ["sagedock", *{args!r}]
try:
    runpy.run_module("sagedock.cli", run_name="__main__")
except SystemExit:
    pass
print(",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def once(command: list[str], env: dict[str, str], root: Path) -> float:
    began = time.perf_counter()
    subprocess.run(command, cwd=root, env=env, capture_output=True, check=False)
    return time.perf_counter() - began


def heavy_imports(args: list[str], env: dict[str, str], root: Path) -> str:
    code = PROBE.format(args=args, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument(
        "--root",
        type=Path,
        action="append",
        default=[],
        help="another checkout (e.g. the code before a change) measured in the same loop, for a ratio",
    )
    options = parser.parse_args()
    roots = [ROOT, *(path.resolve() for path in options.root)]
    api_url = f"http://127.0.0.1:{closed_port()}"
    envs = {
        root: {
            **os.environ,
            "PYTHONPATH": str(root),
            "SAGEDOCK_API_URL": api_url,
            "SAGEDOCK_SOURCE_BUCKET": "b",
        }
        for root in roots
    }
    commands = {"--help": ["--help"], "runs": ["runs"]}
    cases: dict[str, tuple[Path, list[str] | None]] = {"python -c pass": (ROOT, None)}
    for index, root in enumerate(roots):
        for name, args in commands.items():
            cases[f"sagedock {name}" + (f" [{index}]" if len(roots) > 1 else "")] = (root, args)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(options.samples):
        for name, (root, args) in cases.items():
            command = [
                sys.executable,
                *(["-m", "sagedock.cli", *args] if args is not None else ["-c", "pass"]),
            ]
            samples[name].append(once(command, envs[root], root))
    floor = statistics.median(samples["python -c pass"])
    print(f"median of {options.samples} fresh processes each, interleaved (noisy on a shared machine)")
    for index, root in enumerate(roots):
        if len(roots) > 1:
            print(f"[{index}] {root}")
    print(
        f"{'command':<22} {'ms':>8} {'min ms':>8} {'minus python':>13} {'ratio':>7}  heavy modules imported"
    )
    for name, values in samples.items():
        root, args = cases[name]
        median = statistics.median(values)
        heavy = heavy_imports(args, envs[root], root) if args is not None else ""
        line = (
            f"{name:<22} {median * 1000:8.1f} {min(values) * 1000:8.1f} {(median - floor) * 1000:13.1f} "
            f"{median / floor:6.2f}x"
        )
        print(f"{line}  {heavy or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
