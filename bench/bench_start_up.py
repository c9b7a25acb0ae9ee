"""Start-up a user waits for: `import app`, the CLI's start, the local router, the Dockerfile reader.

Each sample is a fresh interpreter, the kinds alternating so that disk cache and CPU frequency affect all
alike. `sagedock --help` is the whole CLI start as a user runs it (interpreter start included; every
subcommand module is imported to build the parser). The router is timed alone (moto's matcher imported for
it) and as `sagedock local up` makes it, after the emulator has loaded moto. With `--root OTHER` the same
figures are taken, sample by sample in turn, for another checkout of the repository (e.g.
`git archive main | tar -x -C /tmp/base`), and the ratio this tree / other is printed: a before/after on
the same, equally busy, machine.
Run: .venv/bin/python bench/bench_start_up.py [--samples N] [--root OTHER]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_cold_start import ROOT, sample

TIMED = """
import time, sys
{setup}
t = time.perf_counter()
{body}
sys.stdout.write(repr(time.perf_counter() - t))
"""
ROUTER = (
    "from sagedock import eventshapes as events\nfrom sagedock.local.router import Router\n"
    "r = Router(app.app, workers=1)\n"
    "r.matching(events.ecr_image_action(repository='r', digest='sha256:' + 'c' * 64, tag='t'))\n"
    "r.close()"
)
# name: (untimed set-up, timed body)
KINDS = {
    "import app": ("", "import app"),
    "import sagedock.cli": ("", "import sagedock.cli"),
    "CLI parser built (every subcommand)": ("", "import sagedock.cli; sagedock.cli.build_parser()"),
    "import sagedock.local.router": ("", "import sagedock.local.router"),
    "router made over the app, one event matched": ("import app", ROUTER),
    "the same once moto's server is loaded (local up)": (
        "import app\nfrom moto.moto_server import werkzeug_app\nfrom moto.s3 import notifications",
        ROUTER,
    ),
    "import sagedock.dockerfile + parse the sample": (
        "text = open('container/Dockerfile').read()",
        "from sagedock.dockerfile import parse_dockerfile\nparse_dockerfile(text)",
    ),
}
HELP = "`sagedock --help` (wall, interpreter included)"


def help_wall(root: Path) -> float:
    """Wall time of `python -m sagedock.cli --help` in `root` (its own folder first on sys.path)."""
    start = time.perf_counter()
    argv = [sys.executable, "-m", "sagedock.cli", "--help"]
    subprocess.run(argv, cwd=root, capture_output=True, check=True)
    return time.perf_counter() - start


def measure(roots: list[Path], samples: int) -> dict[Path, dict[str, list[float]]]:
    """Per root, per kind: the samples, taken in turn across kinds and roots."""
    codes = {name: TIMED.format(setup=setup, body=body) for name, (setup, body) in KINDS.items()}
    for root in roots:  # warm the bytecode caches once, unmeasured
        for code in codes.values():
            sample(code, root)
    times: dict[Path, dict[str, list[float]]] = {r: {k: [] for k in [*codes, HELP]} for r in roots}
    for _ in range(samples):
        for name, code in codes.items():
            for root in roots:
                times[root][name].append(sample(code, root))
        for root in roots:
            times[root][HELP].append(help_wall(root))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=11)
    parser.add_argument("--root", type=Path, help="another checkout to compare with, sample by sample")
    args = parser.parse_args()
    roots = [ROOT] if args.root is None else [ROOT, args.root.resolve()]
    times = measure(roots, args.samples)
    print(f"samples: {args.samples} fresh interpreters each; median (min) in ms")
    for name in times[ROOT]:
        mine = statistics.median(times[ROOT][name]) * 1000
        line = f"{name:48s} {mine:7.1f} ({min(times[ROOT][name]) * 1000:6.1f})"
        if args.root is not None:
            other = statistics.median(times[roots[1]][name]) * 1000
            line += f"   other: {other:7.1f} ({min(times[roots[1]][name]) * 1000:6.1f})"
            line += f"   ratio {mine / other:.2f}x"
        print(line)


if __name__ == "__main__":
    main()
