"""`sagedock invoke ENDPOINT`: send a body to a deployed endpoint through the API and print its answer;
with --async, queue it on an asynchronous endpoint (and with --wait, poll for its answer)."""

from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path
from typing import Any

from sagedock.client import ApiClient, ApiError, add_target_arguments, target_from_args
from sagedock.exitcodes import EXIT_FAILED, EXIT_USAGE, CliError

DEFAULT_WAIT_SECONDS = 300.0
POLL_SECONDS = 1.0


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
    parser.add_argument(
        "--async",
        dest="asynchronous",
        action="store_true",
        help="queue the body on an asynchronous endpoint; print the inference id and output location",
    )
    parser.add_argument(
        "--wait", action="store_true", help="with --async: poll until the answer or failure is written"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_WAIT_SECONDS,
        help=f"with --wait: give up after this many seconds (default {DEFAULT_WAIT_SECONDS:.0f})",
    )
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
    if args.wait and not args.asynchronous:
        raise CliError("--wait waits for an asynchronous invocation: give --async too", EXIT_USAGE)
    if args.asynchronous:
        return _run_async(args, body)
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


def _run_async(args: argparse.Namespace, body: bytes) -> int:
    client = ApiClient(target_from_args(args))
    try:
        queued = client.invoke_async(args.endpoint, body, content_type=args.content_type, accept=args.accept)
    except ApiError as exc:
        if exc.status == 0:
            raise
        print(f"error: endpoint {args.endpoint} answered {exc.status} {exc}", file=sys.stderr)
        return EXIT_FAILED
    inference_id = str(queued["inference_id"])
    print(f"inference {inference_id}")
    print(f"output {queued['output_location']}")
    if queued.get("failure_location"):
        print(f"failure {queued['failure_location']}")
    if not args.wait:
        return 0
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            answer = client.async_answer(args.endpoint, inference_id)
        except ApiError as exc:
            if exc.status == 0:
                raise
            print(f"error: reading the answer of {inference_id}: {exc.status} {exc}", file=sys.stderr)
            return EXIT_FAILED
        if answer["status"] != "pending":
            break
        if time.monotonic() >= deadline:
            print(
                f"error: no answer for inference {inference_id} after {args.timeout:.0f}s; it may still "
                f"complete: look at {queued['output_location']} or run `sagedock invoke --async --wait` "
                "again with a larger --timeout",
                file=sys.stderr,
            )
            return EXIT_FAILED
        time.sleep(POLL_SECONDS)
    text = answer.get("body")
    data = text.encode() if text is not None else base64.b64decode(answer.get("body_base64", ""))
    if answer["status"] == "failed":
        print(f"error: inference {inference_id} failed: {data.decode('utf-8', 'replace')}", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write(data.decode("utf-8", "replace"))
    if not data.endswith(b"\n"):
        sys.stdout.write("\n")
    return 0
