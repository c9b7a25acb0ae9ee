"""Cold start of the Chalice app: wall time of `import app` against a bare `import boto3`, same run.

Each sample is a fresh interpreter (as a Lambda cold start is), alternating the two so that disk cache and
CPU frequency affect both alike. Also measured: importing the app and handling a first event end to end
(an untagged push, ignored before any AWS call), which adds what import defers: settings, the clients
and the services. No network is touched.
Run: .venv/bin/python bench/bench_cold_start.py [--samples N]
"""

from __future__ import annotations

import argparse
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15)
    args = parser.parse_args()

    for module in ("boto3", "app"):  # warm the bytecode cache once, unmeasured
        sample(IMPORT.format(module=module))
    boto3_times, app_times = [], []
    for _ in range(args.samples):
        boto3_times.append(sample(IMPORT.format(module="boto3")))
        app_times.append(sample(IMPORT.format(module="app")))
    first_event = [sample(FIRST_EVENT) for _ in range(max(3, args.samples // 3))]
    upload = [sample(UPLOAD_CLIENTS) for _ in range(max(3, args.samples // 3))]

    b, a, f, u = (statistics.median(x) * 1000 for x in (boto3_times, app_times, first_event, upload))
    print(f"samples: {args.samples} fresh interpreters each, median wall time")
    print(f"import boto3                      {b:8.1f} ms")
    print(f"import app                        {a:8.1f} ms   ratio to boto3: {a / b:.2f}x (goal <= 1.30x)")
    print(f"import app + an ignored event     {f:8.1f} ms   ratio to boto3: {f / b:.2f}x")
    print(
        f"import app + an upload's clients  {u:8.1f} ms   ratio to boto3: {u / b:.2f}x"
        " (dynamodb, s3, ecr, codebuild)"
    )


if __name__ == "__main__":
    main()
