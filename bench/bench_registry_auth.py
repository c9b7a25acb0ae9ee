"""Cold-start cost of the registry_auth Lambda: its import time against a bare `import boto3`, same run.

SageMaker calls registry_auth while it creates a model or starts a training job, so the function's cold
start sits on that path. The Lambda runtime already has boto3, so the honest baseline is a bare
`import boto3` measured on the same machine in the same run: each sample is a fresh interpreter
(`python -c`), the targets are interleaved in a random order every round, and the median is reported.
registry_auth is imported from its deployment zip unpacked, compiled from source on every start as in
Lambda; boto3 is precompiled, as in the runtime. Wall time is the goal's measure; CPU time is printed too
because it is steadier when other work shares the machine.
Goal: registry_auth.handler imports in at most 1.10x the time of boto3.

Usage: python bench/bench_registry_auth.py [--repeat 21] [--json out.json] [--check]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1.10

# name -> (module to import, expression that builds the Secrets Manager client the way that code would)
TARGETS = {
    "boto3": ("boto3", "boto3.session.Session().client('secretsmanager')"),
    "registry_auth.handler": ("registry_auth.handler", "registry_auth.handler.new_client()"),
}
# For comparison only: what the powertools Parameters route would import (not used by the handler).
REFERENCES = {
    "aws_lambda_powertools.utilities.parameters": (
        "aws_lambda_powertools.utilities.parameters",
        "aws_lambda_powertools.utilities.parameters.SecretsProvider().client",
    ),
}

PROBE = """
import time
started, cpu_started = time.perf_counter(), time.process_time()
import {module}
imported, cpu_imported = time.perf_counter(), time.process_time()
{client}
built = time.perf_counter()
print((imported - started) * 1000, (cpu_imported - cpu_started) * 1000, (built - started) * 1000)
"""
# Wall time is what a cold start costs; CPU time (of the probe process alone) is the same work without the
# waits another busy process on the machine adds, so it is the steadier figure on a shared machine.
FIGURES = ("import_ms", "import_cpu_ms", "import_and_client_ms")


def sample(module: str, client: str, package_dir: Path) -> tuple[float, ...]:
    """(import wall ms, import CPU ms, import + client wall ms) in a fresh interpreter.

    registry_auth is imported from the deployment package unpacked in package_dir, with no .pyc written or
    read, as Lambda runs a zip without them; boto3 comes precompiled, as the runtime provides it.
    """
    env = dict(os.environ, PYTHONPATH=str(package_dir), PYTHONDONTWRITEBYTECODE="1")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    output = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, client=client)],
        cwd=package_dir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return tuple(float(value) for value in output)


def deployment_package() -> bytes:
    """The zip Lambda runs, as `python -m registry_auth.build` writes it."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from registry_auth.build import deployment_zip

    return deployment_zip()


def _load() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def _row(label: str, *cells: str) -> str:
    return f"{label:54}" + "".join(f"{cell:>8}" for cell in cells)


def importable(module: str) -> bool:
    check = [sys.executable, "-c", f"import {module}"]
    return subprocess.run(check, capture_output=True, check=False).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21, help="fresh interpreters per target (default 21)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--check", action="store_true", help=f"exit 1 when the ratio exceeds {GOAL_RATIO}")
    args = parser.parse_args(argv)

    targets = dict(TARGETS)
    targets.update({name: spec for name, spec in REFERENCES.items() if importable(spec[0])})
    package = deployment_package()
    samples: dict[str, list[tuple[float, ...]]] = {name: [] for name in targets}
    with tempfile.TemporaryDirectory() as unpacked:
        zipfile.ZipFile(io.BytesIO(package)).extractall(unpacked)
        for module, client in targets.values():  # warm-up: fill the OS file cache
            sample(module, client, Path(unpacked))
        order = list(targets)
        for _ in range(args.repeat):
            random.shuffle(order)
            for name in order:
                samples[name].append(sample(*targets[name], Path(unpacked)))

    results: dict[str, dict[str, float]] = {}
    for name, runs in samples.items():
        results[name] = {"import_ms_min": min(s[0] for s in runs), "import_ms_max": max(s[0] for s in runs)}
        for index, figure in enumerate(FIGURES):
            results[name][f"{figure}_median"] = statistics.median(s[index] for s in runs)
    for figures in results.values():
        for figure in FIGURES:
            figures[f"{figure}_ratio"] = figures[f"{figure}_median"] / results["boto3"][f"{figure}_median"]
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        files, source_bytes, zipped_bytes = (
            len(archive.infolist()),
            sum(i.file_size for i in archive.infolist()),
            len(package),
        )

    ratio = results["registry_auth.handler"]["import_ms_ratio"]
    python = sys.version.split()[0]
    print(f"registry_auth cold start: {args.repeat} fresh interpreters per target, Python {python}")
    print(_row("target (medians in ms)", "import", "min", "max", "ratio", "cpu", "ratio", "+client", "ratio"))
    for name, f in results.items():
        label = name if name in TARGETS else f"{name} (reference)"
        numbers = ("import_ms_median", "import_ms_min", "import_ms_max", "import_ms_ratio")
        numbers += ("import_cpu_ms_median", "import_cpu_ms_ratio")
        numbers += ("import_and_client_ms_median", "import_and_client_ms_ratio")
        print(
            _row(label, *(f"{f[key]:.3f}" if key.endswith("ratio") else f"{f[key]:.1f}" for key in numbers))
        )
    verdict = "met" if ratio <= GOAL_RATIO else "MISSED"
    cpu_ratio = results["registry_auth.handler"]["import_cpu_ms_ratio"]
    print(f"goal: registry_auth.handler import <= {GOAL_RATIO:.2f}x bare boto3: {ratio:.3f}x, {verdict}")
    print(f"      (CPU time: {cpu_ratio:.3f}x; load average during the run: {_load()})")
    print(f"package: {files} files, {source_bytes} B of source, {zipped_bytes} B zipped, no dependencies")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "repeat": args.repeat,
            "python": sys.version.split()[0],
            "goal_ratio": GOAL_RATIO,
            "results": results,
            "package": {"files": files, "source_bytes": source_bytes, "zipped_bytes": zipped_bytes},
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if args.check and ratio > GOAL_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
