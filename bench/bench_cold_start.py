"""Cold start of the Chalice app: wall time of `import app` against a bare `import boto3`, same run.

Each sample is a fresh interpreter (as a Lambda cold start is), alternating the two so that disk cache and
CPU frequency affect both alike. Also measured: importing the app and handling a first event end to end
(an untagged push, ignored before any AWS call), which adds what import defers: settings, the clients
and the services. No network is touched.
Run: .venv/bin/python bench/bench_cold_start.py [--samples N] [--before OTHER_CHECKOUT]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

IMPORT = """
import time, sys
t = time.perf_counter()
import {module}
sys.stdout.write(repr(time.perf_counter() - t))
"""

FIRST_EVENT = """
import os, time, sys
os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")
t = time.perf_counter()
import app
event = {"version": "0", "id": "1", "detail-type": "ECR Image Action", "source": "aws.ecr",
         "account": "123456789012", "time": "2026-11-21T12:00:00Z", "region": "us-east-1",
         "resources": [], "detail": {"result": "SUCCESS", "repository-name": "sagedock/x",
         "image-digest": "sha256:00", "action-type": "PUSH", "image-tag": ""}}
outcome = app.app.handler_map["image_pushed"](event, None)
assert outcome["action"] == "ignored", outcome
sys.stdout.write(repr(time.perf_counter() - t))
"""

UPLOAD_CLIENTS = """
import os, time, sys
os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")
t = time.perf_counter()
import app
from chalicelib.services import get_services
svc = get_services()
svc.runs, svc.s3, svc.ecr, svc.codebuild, svc.once
sys.stdout.write(repr(time.perf_counter() - t))
"""

SETTINGS = {
    "SAGEDOCK_SOURCE_BUCKET": "bench-source",
    "SAGEDOCK_DATA_BUCKET": "bench-data",
    "SAGEDOCK_ARTIFACT_BUCKET": "bench-artifacts",
    "SAGEDOCK_RUNS_TABLE": "bench-runs",
    "SAGEDOCK_IDEMPOTENCY_TABLE": "bench-idempotency",
    "SAGEDOCK_CODEBUILD_PROJECT": "bench-build",
    "SAGEDOCK_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/bench",
}


def sample(code: str, root: Path = ROOT) -> float:
    """Seconds reported by one fresh interpreter running `code` in the checkout `root`."""
    import os

    env = {**os.environ, **SETTINGS, "PYTHONDONTWRITEBYTECODE": "0"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(out.stdout.strip().splitlines()[-1])


def ratios(root: Path, samples: int) -> tuple[float, float, float]:
    """(import boto3, import app, import app + an ignored event) in ms: minima over alternating runs."""
    for module in ("boto3", "app"):  # warm the bytecode cache once, unmeasured
        sample(IMPORT.format(module=module), root)
    boto3_times, app_times, event_times = [], [], []
    for _ in range(samples):
        boto3_times.append(sample(IMPORT.format(module="boto3"), root))
        app_times.append(sample(IMPORT.format(module="app"), root))
        event_times.append(sample(FIRST_EVENT, root))
    return min(boto3_times) * 1000, min(app_times) * 1000, min(event_times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--before", type=Path, help="another checkout to compare with (e.g. main's archive)")
    args = parser.parse_args()

    trees = [("before", args.before)] if args.before else []
    for name, root in [*trees, ("this tree", ROOT)]:
        b, a, f = ratios(root, args.samples)
        print(f"{name}: {args.samples} alternating fresh interpreters, minimum wall time")
        print(f"  import boto3                   {b:8.1f} ms")
        print(f"  import app                     {a:8.1f} ms   ratio to boto3: {a / b:.2f}x (goal <= 1.10x)")
        print(f"  import app + an ignored event  {f:8.1f} ms   ratio to boto3: {f / b:.2f}x")
    upload = [sample(UPLOAD_CLIENTS) for _ in range(max(3, args.samples // 3))]
    print(
        f"this tree: import app + an upload's clients {min(upload) * 1000:8.1f} ms"
        " (dynamodb, s3, ecr, codebuild)"
    )


if __name__ == "__main__":
    main()
