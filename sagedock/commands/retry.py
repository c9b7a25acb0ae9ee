"""`sagedock retry RUN_ID [--follow]`: run a FAILED run again from the stage that failed."""

from __future__ import annotations

import argparse
from typing import Any

from sagedock.client import ApiClient, add_target_arguments, target_from_args
from sagedock.commands.submit import follow_to_the_end
from sagedock.output import add_follow_arguments, add_output_argument, print_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "retry", help="restart a FAILED run from its failed stage (after fixing what its error names)"
    )
    parser.add_argument("run_id", metavar="RUN_ID")
    add_follow_arguments(parser)
    add_output_argument(parser)
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """0 once restarted (with --follow: once SUCCEEDED; 1 if it FAILED again)."""
    client = ApiClient(target_from_args(args))
    record = client.retry_run(args.run_id)
    if args.output == "json":
        print_json(record)
    else:
        attempt = f" (attempt {record['attempt']})" if record.get("attempt") else ""
        print(f"run {record.get('run_id', args.run_id)} restarted: {record.get('status')}{attempt}")
    if not args.follow:
        return 0
    return follow_to_the_end(client, args.run_id, timeout=args.timeout)
