"""`sagedock logs RUN_ID [--stage S] [--follow]`: a run's failed (or current) stage log, tailed live."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from sagedock.client import ApiClient, add_target_arguments, target_from_args
from sagedock.exitcodes import EXIT_FAILED
from sagedock.output import STAGES, TERMINAL, add_output_argument, int_between, print_json

# --follow polls quickly while lines arrive and backs off to MAX_INTERVAL while the log is quiet.
MIN_INTERVAL = 1.0
MAX_INTERVAL = 5.0
MAX_EVENTS = 1000  # the API's largest page of log events
DRAIN_PAGES = 100  # pages read at most at the end of a stage, so a chatty log cannot keep us forever


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="show a run's stage log (by default the failed stage, else the current one)",
        description="Print the log events of one stage of a run: the build's CodeBuild log, the training "
        "job's log or the endpoint's log (in the local cloud, the executors' logs). Without --stage, the "
        "failed stage of a FAILED run, else the stage the run is in.",
    )
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument("--stage", choices=STAGES, help="this stage's log instead of the default one")
    parser.add_argument(
        "--limit",
        type=int_between(1, MAX_EVENTS),
        help=f"at most this many events per request (1-{MAX_EVENTS})",
    )
    parser.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing new events, stage after stage, until the run ends (exit 1 if it FAILED)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600, help="with --follow, stop after this many seconds"
    )
    add_output_argument(parser)
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    client = ApiClient(target_from_args(args))
    page = client.get_logs(args.run_id, stage=args.stage, limit=args.limit)
    if not args.follow:
        if args.output == "json":
            print_json(page)
        else:
            show(page, header=True)
        return 0
    return tail(client, args, page)


def show(page: dict[str, Any], *, header: bool, json_lines: bool = False) -> None:
    """One page of events: `TIMESTAMP MESSAGE` lines (JSON Lines of the bodies with --output json)."""
    if json_lines:
        print(json.dumps(page, ensure_ascii=False), flush=True)
        return
    if header:
        source = page.get("source") or {}
        where = f"{source.get('log_group')} {source.get('log_stream')}" if source else "no log stream yet"
        print(f"==> {page.get('stage')} ({where})", file=sys.stderr, flush=True)
    for event in page.get("events") or []:
        message = str(event.get("message", "")).rstrip("\n")
        print(f"{event.get('timestamp', '')} {message}")
    sys.stdout.flush()


def tail(client: ApiClient, args: argparse.Namespace, page: dict[str, Any]) -> int:
    """Print new events until the run is SUCCEEDED or FAILED, moving on with the run from stage to stage
    (unless --stage pins one); the last events of each stage are read before leaving it."""
    json_lines = args.output == "json"
    deadline = time.monotonic() + args.timeout
    stage, token = page.get("stage"), page.get("next_token")
    show(page, header=True, json_lines=json_lines)
    announced = bool(page.get("source"))
    interval = MIN_INTERVAL
    while True:
        record = client.get_run(args.run_id)
        status = record.get("status")
        stages = record.get("stages") or []
        current = stages[-1].get("stage") if stages else stage
        moved_on = args.stage is None and current != stage
        if status in TERMINAL or moved_on:
            drain(client, args.run_id, stage, token, json_lines)
            if moved_on:  # the next stage (or, at the end, the one that failed) from its start
                page = client.get_logs(args.run_id, stage=current, limit=args.limit)
                stage, token = page.get("stage") or current, page.get("next_token")
                show(page, header=True, json_lines=json_lines)
                announced = bool(page.get("source"))
            if status in TERMINAL:
                if moved_on:
                    drain(client, args.run_id, stage, token, json_lines)
                return EXIT_FAILED if status == "FAILED" else 0
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {args.run_id} is still {status} after {args.timeout:.0f}s")
        time.sleep(interval)
        page = client.get_logs(args.run_id, stage=stage, limit=args.limit, next_token=token)
        token = page.get("next_token") or token
        if page.get("events"):
            # a stage announced before its stream existed is announced again with the stream's name
            show(page, header=not announced, json_lines=json_lines)
            announced = True
            interval = MIN_INTERVAL
        else:
            interval = min(MAX_INTERVAL, interval * 2)


def drain(client: ApiClient, run_id: str, stage: Any, token: Any, json_lines: bool) -> None:
    """The events a stage logged since the last page, until a page comes back empty."""
    for _ in range(DRAIN_PAGES):
        page = client.get_logs(run_id, stage=stage, next_token=token)
        if not page.get("events"):
            return
        show(page, header=False, json_lines=json_lines)
        token = page.get("next_token") or token
