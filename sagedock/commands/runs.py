"""`sagedock runs`: the runs, newest first, filtered by project and status, as a table or the API's JSON."""

from __future__ import annotations

import argparse
from typing import Any

from sagedock.client import ApiClient, add_target_arguments, target_from_args
from sagedock.output import add_output_argument, int_between, one_line, print_page

STATUSES = ("RECEIVED", "BUILDING", "TRAINING", "DEPLOYING", "SUCCEEDED", "FAILED")
MAX_LIMIT = 100  # the API's largest page


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("runs", help="list runs, newest first")
    parser.add_argument("--project", help="only this project's runs")
    parser.add_argument("--status", choices=STATUSES, help="only runs with this status")
    parser.add_argument(
        "--limit",
        type=int_between(1, MAX_LIMIT),
        default=20,
        help=f"at most this many runs, 1-{MAX_LIMIT} (default 20)",
    )
    parser.add_argument("--next-token", help="the next page: the token a previous page ended with")
    add_output_argument(parser)
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    page = ApiClient(target_from_args(args)).list_runs(
        project=args.project, status=args.status, limit=args.limit, next_token=args.next_token
    )
    headers = ("RUN", "PROJECT", "STATUS", "STAGE", "CREATED", "DETAIL")
    print_page(page, args.output, items="runs", headers=headers, row=row)
    return 0


def row(record: dict[str, Any]) -> tuple[Any, ...]:
    """One run's table row: where it is, and for a FAILED run what went wrong."""
    stages = record.get("stages") or []
    stage = stages[-1].get("stage") if stages else None
    if record.get("status") == "FAILED":
        error = record.get("error") or {}
        stage = error.get("stage") or stage
        detail = one_line(f"{error.get('code', '')}: {error.get('message', '')}", 60)
    else:
        detail = record.get("endpoint_name") or ""
    return (
        record.get("run_id"),
        record.get("project"),
        record.get("status"),
        stage,
        (record.get("created_at") or "")[:19].replace("T", " "),
        detail,
    )
