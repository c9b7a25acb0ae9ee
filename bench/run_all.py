"""Run every benchmark in turn (what `make bench` does); each prints its own figures and ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "bench_cold_start.py",
    "bench_start_up.py",
    "bench_registry_auth.py",
    "bench_bundle_bytes.py",
    "bench_serve.py",
    "bench_cli_startup.py",
    "bench_preflight.py",
    "bench_run_events.py",
    "bench_container_mode.py",
    "bench_sandbox.py",
]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== {name} ===", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)], cwd=HERE.parent, check=False).returncode:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
