"""What the run-event outbox costs: AWS calls and time per transition, with the outbox against without.

A run is driven through its five transitions (created, BUILDING, TRAINING, DEPLOYING, SUCCEEDED) on the
runs table of an in-process moto account, once with a RunStore that has no outbox and once with the
outbox publishing to a moto EventBridge bus. The calls are counted exactly; the times are moto's (no
network), so they show the CPU the outbox adds, not AWS latency: read the call counts for that.
Run: .venv/bin/python bench/bench_run_events.py [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REGION = "us-east-1"
NOW = "2026-11-21T12:00:00.000Z"


class Counting:
    """A boto3 client that counts its calls by operation."""

    def __init__(self, inner: Any, calls: Counter[str]) -> None:
        self._inner, self._calls = inner, calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def call(**kwargs: Any) -> Any:
            self._calls[name] += 1
            return attr(**kwargs)

        return call


def one_run(store: Any, index: int, project: str = "iris") -> None:
    """A run of `project` through its five transitions (created, BUILDING, TRAINING, DEPLOYING, SUCCEEDED)."""
    from chalicelib.domain import statemachine as sm
    from chalicelib.domain.models import ImageRef, Run, SourceRef, Status

    run_id = f"{project}-{index:012x}"
    fresh = Run(
        run_id=run_id,
        project=project,
        status=Status.RECEIVED,
        source=SourceRef(bucket="b", key=f"bundles/{project}/{index}.zip"),
        created_at=NOW,
        updated_at=NOW,
    )
    store.create(sm.new_run(fresh))
    store.update(
        run_id, lambda r: sm.start_build(r, image=ImageRef(repository=f"r/{project}", tag=run_id), now=NOW)
    )
    digest = "sha256:" + "a" * 64
    store.update(
        run_id,
        lambda r: sm.start_training(r, digest=digest, uri=f"r/{project}@{digest}", job_name="j", now=NOW),
    )
    store.update(
        run_id,
        lambda r: sm.start_deploy(
            r, model_artifact="s3://a/m", model_name="m", endpoint_config_name="c", endpoint_name="e", now=NOW
        ),
    )
    store.update(run_id, lambda r: sm.succeed(r, now=NOW))


def measure(with_outbox: bool, runs: int) -> tuple[Counter[str], list[float]]:
    import boto3
    from moto import mock_aws

    from chalicelib.adapters.eventbus import EventBus
    from chalicelib.adapters.run_store import RunStore, table_definition
    from chalicelib.flows.outbox import Outbox

    calls: Counter[str] = Counter()
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(**table_definition("runs"))
        bus = EventBus(Counting(boto3.client("events", region_name=REGION), calls), "default")  # type: ignore[arg-type]
        outbox = Outbox(lambda: bus, lambda: NOW) if with_outbox else None
        store = RunStore(Counting(dynamodb, calls), "runs", outbox=outbox)  # type: ignore[arg-type]
        one_run(store, 0)  # warm up: clients, moto's backends
        calls.clear()
        seconds = []
        for index in range(1, runs + 1):
            began = time.perf_counter()
            one_run(store, index)
            seconds.append(time.perf_counter() - began)
    return calls, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        os.environ.setdefault(key, value)
    transitions = 5 * args.runs
    with contextlib.redirect_stdout(io.StringIO()):  # the metrics' EMF lines
        results = {label: measure(label == "outbox", args.runs) for label in ("no outbox", "outbox")}
    print(f"{args.runs} runs of 5 transitions each, in-process moto (times are CPU, not AWS latency)")
    for label, (calls, seconds) in results.items():
        per = ", ".join(f"{name} {count / transitions:.1f}" for name, count in sorted(calls.items()))
        print(f"  {label:<10} per transition: {per}; median {statistics.median(seconds) / 5 * 1000:.2f} ms")
    base, with_box = (statistics.median(results[label][1]) for label in ("no outbox", "outbox"))
    print(f"  time ratio outbox / no outbox: {with_box / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
