"""The `sagedock` command: finds every subcommand module in sagedock.commands and dispatches to it."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from sagedock import commands


def build_parser() -> argparse.ArgumentParser:
    """One parser with a subparser per module of sagedock.commands (each module's `register`)."""
    parser = argparse.ArgumentParser(
        prog="sagedock",
        description="From a source bundle to a live SageMaker endpoint, in AWS or on this machine.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the chosen subcommand; its return value is the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
