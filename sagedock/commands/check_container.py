"""`sagedock check-container DIR`: does this bundle's image train and serve the way SageMaker needs?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sagedock.exitcodes import EXIT_USAGE, CliError


def _pairs(values: list[str], option: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise CliError(f"check-container: {option} expects NAME=VALUE, got {value!r}", EXIT_USAGE)
        result[key] = rest
    return result


def register(subparsers: Any) -> None:
    """Add the `check-container` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check-container",
        help="run a bundle's train and serve as SageMaker would, without Docker, and report",
        description=(
            "Build the bundle's image into a directory (COPY/ENV/WORKDIR/ENTRYPOINT honoured, RUN steps "
            "taken from this environment), run `train` on an /opt/ml tree laid out as SageMaker does, "
            "pack model.tar.gz, run `serve` on it and check /ping, one invocation and a clean SIGTERM "
            "exit; a serve-only bundle ([train] enabled = false) is not trained, only served, on "
            "--model-data or an empty /opt/ml/model. Exit code 0 only if every check passes."
        ),
    )
    parser.add_argument("directory", type=Path, help="the bundle: a folder with a Dockerfile")
    parser.add_argument(
        "--hyperparameter",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a training hyperparameter (default: [train.hyperparameters] of sagedock.toml)",
    )
    parser.add_argument(
        "--channel",
        "-c",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a training channel from a local folder or file (default: train=DIR/data if it exists)",
    )
    parser.add_argument(
        "--sample",
        type=Path,
        help="file holding the invocation's body (default: the first training row without its label)",
    )
    parser.add_argument(
        "--model-data",
        type=Path,
        help="a serve-only bundle's model.tar.gz, unpacked at /opt/ml/model (default: none, it is empty)",
    )
    parser.add_argument("--content-type", default="text/csv", help="of the invocation (default: text/csv)")
    parser.add_argument("--dockerfile", default="Dockerfile", help="path of the Dockerfile inside DIR")
    parser.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--ready-timeout", type=float, default=480.0, help="seconds serve has to answer /ping (default: 480)"
    )
    parser.add_argument(
        "--grace", type=float, default=30.0, help="seconds between SIGTERM and SIGKILL (default: 30)"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="do not show the programs' output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the check and print the report; 0 only if every check passed."""
    from sagedock.contract import check_container  # here, not at the top: every command builds the parser

    directory: Path = args.directory
    if not (directory / args.dockerfile).is_file():
        print(f"sagedock check-container: no {args.dockerfile} in {directory}", file=sys.stderr)
        return 2
    hyperparameters = _pairs(args.hyperparameter, "--hyperparameter") if args.hyperparameter else None
    named_channels = _pairs(args.channel, "--channel")
    channels = {name: Path(path) for name, path in named_channels.items()} if named_channels else None
    try:
        sample = args.sample.read_bytes() if args.sample else None
    except OSError as exc:
        raise CliError(
            f"check-container: cannot read --sample {args.sample}: {exc.strerror}", EXIT_USAGE
        ) from exc

    def log(line: str) -> None:
        print(f"  | {line}", file=sys.stderr, flush=True)

    report = check_container(
        directory,
        hyperparameters=hyperparameters,
        channels=channels,
        sample_body=sample,
        content_type=args.content_type,
        ready_timeout=args.ready_timeout,
        grace=args.grace,
        dockerfile=args.dockerfile,
        build_args=_pairs(args.build_arg, "--build-arg"),
        log=None if args.quiet else log,
        model_data=args.model_data,
    )
    print(report.render())
    return 0 if report.ok else 1
