"""`sagedock retrain PROJECT`: a new run on the latest successful image, with overrides, no build."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sagedock.client import ApiClient, ApiError, NoTarget, add_target_arguments, target_from_args
from sagedock.commands.submit import PROJECT_HELP, follow_to_the_end, project_name


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "retrain", help="train the project's latest successful image again (new hyperparameters, fresh data)"
    )
    parser.add_argument("project", metavar="PROJECT", type=project_name, help=PROJECT_HELP)
    parser.add_argument(
        "--hyperparameter",
        "-p",
        action="append",
        default=[],
        type=name_value,
        metavar="NAME=VALUE",
        help="override one hyperparameter (repeatable); the others keep the last successful run's values",
    )
    parser.add_argument(
        "--channel",
        action="append",
        default=[],
        type=name_value,
        metavar="NAME=PREFIX",
        help="override one input channel: a key prefix in the data bucket or an s3:// URI (repeatable)",
    )
    parser.add_argument("--no-deploy", action="store_true", help="train only; leave the endpoint as it is")
    parser.add_argument("--follow", action="store_true", help="show the run stage by stage until it ends")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="give up following after this many seconds"
    )
    parser.add_argument(
        "--output", choices=("text", "json"), default="text", help="json: print the API's body"
    )
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def name_value(text: str) -> tuple[str, str]:
    """NAME=VALUE, with a non-empty name."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name.strip(), value


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The request body: only what was given (the API keeps the rest from the last successful run)."""
    body: dict[str, Any] = {}
    if args.hyperparameter:
        body["hyperparameters"] = dict(args.hyperparameter)
    if args.channel:
        body["channels"] = dict(args.channel)
    if args.no_deploy:
        body["deploy"] = False
    return body


def run(args: argparse.Namespace) -> int:
    try:
        client = ApiClient(target_from_args(args))
        record = client.retrain(args.project, overrides(args))
    except NoTarget as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3 if exc.status == 0 else 2 if exc.status in (400, 404) else 1
    if args.output == "json":
        print(json.dumps(record, indent=2))
    else:
        print(f"run {record['run_id']} {record['status']}: retrain of {record.get('retrained_from')}")
    if not args.follow:
        return 0
    return follow_to_the_end(client, record["run_id"], timeout=args.timeout)
