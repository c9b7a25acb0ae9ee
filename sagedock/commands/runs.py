"""`sagedock runs`: the runs, newest first, filtered by project and status."""

from __future__ import annotations

import argparse
import itertools
import sys
from typing import Any

from sagedock.client import ApiClient, ApiError, NoTarget, add_target_arguments, target_from_args

STATUSES = ("RECEIVED", "BUILDING", "TRAINING", "DEPLOYING", "SUCCEEDED", "FAILED")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("runs", help="list runs, newest first")
    parser.add_argument("--project", help="only this project's runs")
    parser.add_argument("--status", choices=STATUSES, help="only runs with this status")
    parser.add_argument("--limit", type=int, default=20, help="at most this many runs (default 20)")
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        client = ApiClient(target_from_args(args))
        runs = list(
            itertools.islice(client.iter_runs(project=args.project, status=args.status), max(args.limit, 0))
        )
    except (ApiError, NoTarget) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not runs:
        print("no runs")
        return 0
    print(f"{'RUN':<28} {'STATUS':<10} {'CREATED':<25} DETAIL")
    for record in runs:
        error = record.get("error") or {}
        detail = record.get("endpoint_name") or ""
        if record.get("status") == "FAILED":
            detail = f"{error.get('stage')}: {error.get('message', '')}"[:80]
        run_id, status, created = (
            record.get("run_id", ""),
            record.get("status", ""),
            record.get("created_at", ""),
        )
        print(f"{run_id:<28} {status:<10} {created:<25} {detail}")
    return 0
