"""The `sagedock` command: finds every subcommand module in sagedock.commands and dispatches to it.

Exit codes: 0 success, 1 the run failed (or the endpoint answered an error), 2 usage error (argparse, or a
request the API refused as invalid), 3 cannot reach the API. Every error is one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from sagedock import commands
from sagedock.client import ApiError, NoTarget
from sagedock.exitcodes import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, CliError


def build_parser() -> argparse.ArgumentParser:
    """One parser with a subparser per module of sagedock.commands (each module's `register`)."""
    parser = argparse.ArgumentParser(
        prog="sagedock",
        description="From a source bundle to a live SageMaker endpoint, in AWS or on this machine.",
        epilog="exit codes: 0 success, 1 the run failed (or the endpoint answered an error), "
        "2 usage error, 3 cannot reach the API",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def api_error_line(exc: ApiError) -> tuple[str, int]:
    """One actionable line and the exit code for an error the API answered (or could not answer)."""
    if exc.status == 0:
        if exc.code == "BadUrl":
            return f"error: {exc.message}: fix --api-url or SAGEDOCK_API_URL", EXIT_USAGE
        hint = ""
        if exc.code == "Unreachable":
            hint = (
                " (is the API up? check SAGEDOCK_API_URL / --api-url, or start the local cloud with "
                "`sagedock local up`)"
            )
        return f"error: {exc.message}{hint}", EXIT_UNREACHABLE
    if exc.status == 403:
        return (
            f"error: {exc} (403: your AWS identity may not be allowed execute-api:Invoke on this API, "
            "or the API has no such route: is it older than this CLI?)",
            EXIT_USAGE,
        )
    if exc.status >= 500:
        return f"error: the API failed ({exc.status} {exc}); try again, then check its logs", EXIT_UNREACHABLE
    return f"error: {exc}", EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the chosen subcommand; its return value is the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except NoTarget as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ApiError as exc:
        line, code = api_error_line(exc)
        print(line, file=sys.stderr)
        return code
    except TimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        if os.environ.get("SAGEDOCK_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (SAGEDOCK_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
