"""Cold-start cost of the registry_auth Lambda: its import time against a bare `import boto3`, same run.

SageMaker calls registry_auth while it creates a model or starts a training job, so the function's cold
start sits on that path. The Lambda runtime already has boto3, so the honest baseline is a bare
`import boto3` measured on the same machine in the same run: each sample is a fresh interpreter
(`python -c`), the targets are interleaved in a random order every round, and the median is reported.
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
started = time.perf_counter()
import {module}
imported = time.perf_counter()
{client}
built = time.perf_counter()
print((imported - started) * 1000, (built - started) * 1000)
"""


def sample(module: str, client: str) -> tuple[float, float]:
    """(import ms, import + client ms) in a fresh interpreter."""
    env = dict(
        os.environ, PYTHONPATH=str(ROOT), AWS_DEFAULT_REGION=os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    )
    output = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, client=client)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(output[0]), float(output[1])


def package_size() -> tuple[int, int, int]:
    """(files, source bytes, zipped bytes) of the deployment package: the registry_auth package alone."""
    sources = sorted((ROOT / "registry_auth").glob("*.py"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sources:
            archive.write(path, f"registry_auth/{path.name}")
    return len(sources), sum(path.stat().st_size for path in sources), len(buffer.getvalue())


def _row(label: str, *cells: str) -> str:
    return f"{label:54}" + "".join(f"{cell:>9}" for cell in cells)


def importable(module: str) -> bool:
    check = [sys.executable, "-c", f"import {module}"]
    return subprocess.run(check, cwd=ROOT, capture_output=True, check=False).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21, help="fresh interpreters per target (default 21)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--check", action="store_true", help=f"exit 1 when the ratio exceeds {GOAL_RATIO}")
    args = parser.parse_args(argv)

    targets = dict(TARGETS)
    targets.update({name: spec for name, spec in REFERENCES.items() if importable(spec[0])})
    for module, client in targets.values():  # warm-up: compile .pyc files, fill the OS cache
        sample(module, client)

    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    order = list(targets)
    for _ in range(args.repeat):
        random.shuffle(order)
        for name in order:
            samples[name].append(sample(*targets[name]))

    results = {
        name: {
            "import_ms_median": statistics.median(s[0] for s in runs),
            "import_ms_min": min(s[0] for s in runs),
            "import_ms_max": max(s[0] for s in runs),
            "import_and_client_ms_median": statistics.median(s[1] for s in runs),
        }
        for name, runs in samples.items()
    }
    baseline = results["boto3"]
    for figures in results.values():
        figures["import_ratio"] = figures["import_ms_median"] / baseline["import_ms_median"]
        figures["import_and_client_ratio"] = (
            figures["import_and_client_ms_median"] / baseline["import_and_client_ms_median"]
        )
    files, source_bytes, zipped_bytes = package_size()

    ratio = results["registry_auth.handler"]["import_ratio"]
    python = sys.version.split()[0]
    print(f"registry_auth cold start: {args.repeat} fresh interpreters per target, Python {python}")
    print(_row("target (medians in ms)", "import", "min", "max", "ratio", "+client", "ratio"))
    for name, f in results.items():
        label = name if name in TARGETS else f"{name} (reference)"
        numbers = ("import_ms_median", "import_ms_min", "import_ms_max", "import_ratio")
        numbers += ("import_and_client_ms_median", "import_and_client_ratio")
        print(
            _row(label, *(f"{f[key]:.3f}" if key.endswith("ratio") else f"{f[key]:.1f}" for key in numbers))
        )
    verdict = "met" if ratio <= GOAL_RATIO else "MISSED"
    print(f"goal: registry_auth.handler import <= {GOAL_RATIO:.2f}x bare boto3: {ratio:.3f}x, {verdict}")
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
