"""`sagedock invoke ENDPOINT`: send a body to a deployed endpoint through the API and print its answer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sagedock.client import ApiClient, ApiError, add_target_arguments, target_from_args
from sagedock.exitcodes import EXIT_FAILED, EXIT_USAGE, CliError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("invoke", help="send a request to an endpoint and print the answer")
    parser.add_argument("endpoint", metavar="ENDPOINT")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", help="the request body (default: read standard input)")
    source.add_argument("--file", type=Path, help="read the request body from this file")
    parser.add_argument(
        "--content-type", default="text/csv", help="the body's content type (default text/csv)"
    )
    parser.add_argument("--accept", help="the content type to ask for")
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Exit 1 when the endpoint (or the API on its behalf) answers an error; 3 when the API is unreachable."""
    if args.data is not None:
        body = args.data.replace("\\n", "\n").encode()
    elif args.file is not None:
        try:
            body = args.file.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read --file {args.file}: {exc.strerror}", EXIT_USAGE) from exc
    else:
        body = sys.stdin.buffer.read()
    try:
        _, answer = ApiClient(target_from_args(args)).invoke(
            args.endpoint, body, content_type=args.content_type, accept=args.accept
        )
    except ApiError as exc:
        if exc.status == 0:
            raise
        print(f"error: endpoint {args.endpoint} answered {exc.status} {exc}", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write(answer.decode("utf-8", "replace"))
    if not answer.endswith(b"\n"):
        sys.stdout.write("\n")
    return 0
