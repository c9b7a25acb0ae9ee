"""What reading SageMaker's instance type sets from botocore costs a cold Lambda, and what it adds to a
process that makes a SageMaker client anyway (bundle_uploaded does, for the endpoint-ownership check).

Each sample is a fresh interpreter with boto3 imported first (the Lambda has it loaded for its other
clients). Figures: the first `instance_types()` (chalicelib/adapters/instance_types.py) alone; a SageMaker
client alone; the client then the sets, and the sets then the client (as validate does: either reuses the
model the session's loader cached for the other). No network is touched.
Run: .venv/bin/python bench/bench_preflight.py [--samples N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = """
import os, time, sys
os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")
import boto3
from chalicelib.adapters import clients as aws
from chalicelib.adapters.instance_types import instance_types
"""
SETS = "instance_types()\n"
CLIENT = 'aws.client("sagemaker")\n'


def program(before: str, measured: str) -> str:
    """A fresh interpreter's code: the prelude, `before` untimed, then the time `measured` takes."""
    return PRELUDE + before + "t = time.perf_counter()\n" + measured + TIMED


TIMED = "sys.stdout.write(repr(time.perf_counter() - t))\n"
CASES = {
    "instance type sets, cold": program("", SETS),
    "SageMaker client, cold": program("", CLIENT),
    "sets after the client": program(CLIENT, SETS),
    "sets, then the client": program("", SETS + CLIENT),
}


def sample(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=7)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.samples):  # alternate the cases so that machine noise hits them alike
        for name, code in CASES.items():
            times[name].append(sample(code))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:<28} median {median * 1000:7.1f} ms  (min {min(times[name]) * 1000:.1f} ms)")
    cold, after = medians["instance type sets, cold"], medians["sets after the client"]
    print(f"sets after the client / sets cold: {after / cold:.3f}")
    client = medians["SageMaker client, cold"]
    print(f"sets cold / SageMaker client cold: {cold / client:.2f}")
    both = medians["sets, then the client"]
    print(f"(sets, then the client) / client alone: {both / client:.2f}  (validate makes both)")


if __name__ == "__main__":
    main()
