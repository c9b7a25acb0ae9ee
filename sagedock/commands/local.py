"""`sagedock local up`: the whole pipeline on this machine until interrupted (no AWS account, no Docker)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from sagedock.local.engine import add_argument as add_engine_argument


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("local", help="the local cloud: the pipeline on this machine")
    actions = parser.add_subparsers(dest="local_command", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start the local cloud; print its KEY=VALUE settings; run until ^C")
    up.add_argument("--state-dir", type=Path, help="images, logs and work trees (default: .sagedock/local)")
    add_engine_argument(up)
    up.add_argument("-v", "--verbose", action="store_true", help="log every event and handler invocation")
    up.set_defaults(func=up_command)


def configure_logging(verbose: bool) -> None:
    """The local cloud's own log on stderr; stdout carries the KEY=VALUE lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("local_cloud")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def up_command(args: argparse.Namespace) -> int:
    from sagedock.local.cloud import AlreadyRunning, LocalCloud
    from sagedock.local.engine import EngineUnavailable

    configure_logging(args.verbose)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    cloud = LocalCloud(state_dir=args.state_dir, engine=args.engine)
    try:
        try:
            contract = cloud.start()
        except (AlreadyRunning, EngineUnavailable) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for line in cloud.describe():
            print(line, file=sys.stderr, flush=True)
        for key, value in contract.items():
            print(f"{key}={value}", flush=True)
        print(f"local cloud up; app logs in {cloud.state / 'logs'}; ^C to stop", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        print("stopping the local cloud", file=sys.stderr, flush=True)
        cloud.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
