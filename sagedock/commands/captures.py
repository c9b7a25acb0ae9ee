"""`sagedock captures ENDPOINT`: the newest records SageMaker's data capture wrote for an endpoint."""

from __future__ import annotations

import argparse
import base64
from typing import Any

from sagedock.client import ApiClient, add_target_arguments, target_from_args
from sagedock.output import add_output_argument, int_between, print_json

MAX_LIMIT = 100


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "captures", help="show an endpoint's newest captured requests and responses"
    )
    parser.add_argument("endpoint", metavar="ENDPOINT")
    parser.add_argument(
        "--limit",
        type=int_between(1, MAX_LIMIT),
        default=10,
        help="at most this many records, newest first, 1-100 (default 10)",
    )
    add_output_argument(parser)
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    body = ApiClient(target_from_args(args)).captures(args.endpoint, limit=args.limit)
    if args.output == "json":
        print_json(body)
        return 0
    records = body.get("records") or []
    if not records:
        print(f"no captured records under {body.get('destination')}")
        return 0
    for record in records:
        print(describe(record))
    return 0


def _data(part: dict[str, Any]) -> str:
    data = str(part.get("data", ""))
    if part.get("encoding") == "BASE64":
        data = base64.b64decode(data).decode("utf-8", "replace")
    return data.rstrip("\n").replace("\n", "\\n")


def describe(record: dict[str, Any]) -> str:
    """One record as lines: when, its id, then the request and the response as captured."""
    metadata = record.get("eventMetadata") or {}
    lines = [f"{metadata.get('inferenceTime', '?')}  {metadata.get('eventId', '')}"]
    for name, label in (("endpointInput", "request "), ("endpointOutput", "response")):
        part = (record.get("captureData") or {}).get(name)
        if part:
            lines.append(f"  {label} [{part.get('observedContentType', '?')}] {_data(part)}")
    return "\n".join(lines)
