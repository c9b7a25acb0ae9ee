"""`sagedock events [--follow]`: the run events on the bus as they come (from the queue a rule fills)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from sagedock.client import NoTarget, Target, add_target_arguments, target_from_args

QUEUE_VARIABLE = "SAGEDOCK_EVENTS_QUEUE_URL"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "events", help="print sagedock's run events (Run State Change) as they come"
    )
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing events until interrupted")
    parser.add_argument("--project", help="only this project's events")
    parser.add_argument(
        "--queue-url",
        help=f"the SQS queue a rule sends run events to (default: ${QUEUE_VARIABLE}, or the local cloud's)",
    )
    parser.add_argument("--output", choices=("text", "json"), default="text", help="json: one event per line")
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def queue_url(args: argparse.Namespace) -> str:
    """--queue-url, else $SAGEDOCK_EVENTS_QUEUE_URL, else the running local cloud's queue."""
    url = args.queue_url or os.environ.get(QUEUE_VARIABLE)
    if url:
        return str(url)
    from sagedock.local.cloud import PROJECT_DIR, running_contract

    state = Path(os.environ.get("SAGEDOCK_LOCAL_STATE") or PROJECT_DIR / ".sagedock" / "local")
    url = running_contract(state).get(QUEUE_VARIABLE)
    if not url:
        raise NoTarget(
            "no event queue to read: start the local cloud (`sagedock local up`), or subscribe a queue to "
            f"the bus (docs/events.md) and pass --queue-url or set {QUEUE_VARIABLE}"
        )
    return url


def describe(event: dict[str, Any]) -> str:
    """One line per event: time, run, previous -> status, stage, and the error of a FAILED run."""
    detail = event.get("detail") or {}
    line = (
        f"{event.get('time', ''):<21} {detail.get('run_id', ''):<26} "
        f"{detail.get('previous_status') or '-':>9} -> {detail.get('status', ''):<10} "
        f"{detail.get('stage') or ''}"
    )
    error = detail.get("error")
    if error:
        line += f"  {error.get('code')}: {error.get('message')}"
    return line


def sqs_client(target: Target) -> Any:
    """An SQS client for the target (the local cloud's emulator and dummy credentials, or AWS)."""
    import boto3

    keys: dict[str, str] = {}
    if target.credentials:
        keys = {"aws_access_key_id": target.credentials[0], "aws_secret_access_key": target.credentials[1]}
    session = boto3.session.Session(**keys)  # type: ignore[arg-type]
    return session.client("sqs", endpoint_url=target.endpoint_url, region_name=target.region)


def run(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from sagedock.eventqueue import receive

    try:
        url = queue_url(args)
        sqs = sqs_client(target_from_args(args))
        while True:
            for event in receive(sqs, url, wait_seconds=10 if args.follow else 1):
                if args.project and (event.get("detail") or {}).get("project") != args.project:
                    continue
                print(json.dumps(event) if args.output == "json" else describe(event), flush=True)
            if not args.follow:
                return 0
    except NoTarget as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (BotoCoreError, ClientError) as exc:
        print(f"error: cannot read the event queue: {exc}", file=sys.stderr)
        return 3
