"""Paging 10,000 runs, and the DynamoDB writes of a run, from the one-partition by_created against by_shard.

An in-process moto table is loaded with --runs runs of --projects projects (batch_write_item), then each
listing is read page by page through RunStore: every run (GET /runs), one project's runs
(GET /runs?project=), the projects (GET /projects). Per page it reports the time (p50/p99: moto's CPU, not
AWS latency), the DynamoDB calls and the items read, and the read units DynamoDB would charge (each
Query's items' bytes rounded up to 4 KB, halved for an eventually consistent read). Then --lifecycles runs
go through their five transitions with each layout, and it counts the calls, the items written and, per
index, the writes the busiest partition value takes.
Run: .venv/bin/python bench/bench_runs_paging.py [--runs 10000] [--pages 30]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

from bench_run_events import one_run  # noqa: E402  (bench/ is this script's directory)

REGION = "us-east-1"
TABLE = "runs"
GSI_KEYS = {"by_created": "kind", "by_shard": "shard", "by_pending": "pending", "by_project": "project"}


def item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's item size: each attribute's name and value (strings and numbers as text)."""
    total = 0
    for name, value in item.items():
        ((kind, raw),) = value.items()
        total += len(name) + (len(str(raw).encode()) if kind in ("S", "N") else 1)
    return total


class Counted:
    """A boto3 client that counts its calls by operation, and shows each call to `asked` (before it is
    made, so a refused conditional write is counted too) and to `seen` (with its answer)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            self.asked(name, kwargs)
            answer = attr(**kwargs)
            self.seen(name, kwargs, answer)
            return answer

        return call

    def asked(self, name: str, request: dict[str, Any]) -> None:
        """One call about to be made."""

    def seen(self, name: str, request: dict[str, Any], answer: Any) -> None:
        """One call made, with its answer."""


class Reads(Counted):
    """A client that counts calls, items read and read units (from each answer's items)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.items = 0
        self.units = 0.0

    def seen(self, name: str, request: dict[str, Any], answer: Any) -> None:
        items = answer.get("Items", [])
        self.items += len(items)
        if name == "query":
            self.units += max(1, math.ceil(sum(item_bytes(i) for i in items) / 4096)) / 2


class Writes(Counted):
    """A client that counts calls, items written and, per GSI, the writes of each partition value."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.partitions: dict[str, Counter[str]] = {index: Counter() for index in GSI_KEYS}

    def asked(self, name: str, request: dict[str, Any]) -> None:
        if name == "put_item":
            for index, key in GSI_KEYS.items():
                if key in request["Item"]:
                    self.partitions[index][request["Item"][key]["S"]] += 1


def seed(client: Any, runs: int, projects: int) -> list[Any]:
    from chalicelib.adapters import run_store
    from chalicelib.domain.models import Status
    from tests.run_records import many_runs

    made = many_runs(runs, projects, status=Status.RECEIVED)
    latest = {run.project: run for run in made}
    # by_created items carry `kind` and `shard` both: the two listings read the same table
    items = [run_store.run_item(run, "by_created") for run in made]
    items += [i for run in latest.values() for i in run_store.summary_items(run, "by_created")]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        client.batch_write_item(RequestItems={TABLE: batch})
    return made


def pages(listing: Any, max_pages: int, client: Reads) -> dict[str, float]:
    """Read up to max_pages pages of a listing: p50/p99 ms, calls, items and read units per page."""
    seconds: list[float] = []
    calls = items = 0
    units = 0.0
    token = None
    for _ in range(max_pages):
        before = (sum(client.calls.values()), client.items, client.units)
        began = time.perf_counter()
        _page, token = listing(token)
        seconds.append(time.perf_counter() - began)
        calls += sum(client.calls.values()) - before[0]
        items += client.items - before[1]
        units += client.units - before[2]
        if token is None:
            break
    n = len(seconds)
    ordered = sorted(seconds)
    return {
        "pages": n,
        "p50": statistics.median(seconds) * 1000,
        "p99": ordered[min(n - 1, math.ceil(0.99 * n) - 1)] * 1000,
        "calls": calls / n,
        "items": items / n,
        "units": units / n,
    }


def lifecycles(client: Any, listing: str, count: int, projects: int) -> Writes:
    from chalicelib.adapters.run_store import RunStore

    writes = Writes(client)
    store = RunStore(writes, TABLE, listing=listing)  # type: ignore[arg-type]
    offset = 10_000_000 if listing == "by_shard" else 20_000_000
    for index in range(count):
        one_run(store, offset + index, f"life{index % projects:02d}")
    return writes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--projects", type=int, default=40)
    parser.add_argument("--pages", type=int, default=30, help="pages of each listing to time")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--lifecycles", type=int, default=200)
    args = parser.parse_args()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        os.environ.setdefault(key, value)
    import boto3
    import pytest
    from moto import mock_aws
    from moto_fast import sort_each_table_once

    from chalicelib.adapters.run_store import SHARDS, RunStore, table_definition

    with mock_aws(), pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(io.StringIO()):
        sort_each_table_once(monkeypatch)
        raw = boto3.client("dynamodb", region_name=REGION)
        raw.create_table(**table_definition(TABLE))
        seed(raw, args.runs, args.projects)
        results = {}
        for listing in ("by_created", "by_shard"):
            reads = Reads(raw)
            store = RunStore(reads, TABLE, listing=listing)  # type: ignore[arg-type]
            store.list(project=None, status=None, limit=args.limit, next_token=None)  # warm up
            results[listing] = {
                "GET /runs": pages(
                    lambda t, s=store: s.list(project=None, status=None, limit=args.limit, next_token=t),
                    args.pages,
                    reads,
                ),
                "GET /runs?project=": pages(
                    lambda t, s=store: s.list(project="p07", status=None, limit=args.limit, next_token=t),
                    args.pages,
                    reads,
                ),
                "GET /projects": pages(
                    lambda t, s=store: s.list_projects(limit=20, next_token=t), args.pages, reads
                ),
            }
        writes = {
            listing: lifecycles(raw, listing, args.lifecycles, args.projects)
            for listing in ("by_created", "by_shard")
        }

    print(
        f"{args.runs} runs of {args.projects} projects in moto, pages of {args.limit} (projects: 20), "
        f"{SHARDS} shards; times are moto's CPU, not AWS latency"
    )
    for listing, routes in results.items():
        print(f"  listing from {listing}:")
        for route, r in routes.items():
            print(
                f"    {route:<20} {r['pages']:>3.0f} pages: p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms"
                f"  {r['calls']:5.1f} calls  {r['items']:6.1f} items read  {r['units']:5.1f} read units"
                " per page"
            )
    n = args.lifecycles
    print(f"  writes per run (created, BUILDING, TRAINING, DEPLOYING, SUCCEEDED; {n} runs, no outbox):")
    for listing, w in writes.items():
        per = ", ".join(f"{op} {count / n:.1f}" for op, count in sorted(w.calls.items()))
        print(f"    writing for {listing}: {per}")
        for index in ("by_created", "by_shard", "by_project"):
            parts = w.partitions[index]
            if not parts:
                print(f"      {index:<10} no writes")
                continue
            busiest, top = parts.most_common(1)[0]
            share = top / sum(parts.values())
            print(
                f"      {index:<10} {sum(parts.values()) / n:.1f} index writes per run over {len(parts)} "
                f"partition values; busiest {busiest!r} takes {share:.0%}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
