"""`sagedock status RUN_ID`: one run, its provenance, its timeline and, when it failed, what to fix."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from sagedock.client import ApiClient, add_target_arguments, target_from_args
from sagedock.output import add_output_argument, print_json, stage_note


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("status", help="show one run: status, timeline, provenance, error")
    parser.add_argument("run_id", metavar="RUN_ID")
    add_output_argument(parser)
    parser.add_argument(
        "--json", dest="output", action="store_const", const="json", help="the same as --output json"
    )
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Exit 1 when the run FAILED, so scripts can branch on the outcome."""
    record = ApiClient(target_from_args(args)).get_run(args.run_id)
    if args.output == "json":
        print_json(record)
    else:
        print(describe(record))
    return 0 if record.get("status") != "FAILED" else 1


def _seconds(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    try:
        delta = datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(
            start.replace("Z", "+00:00")
        )
    except ValueError:
        return ""
    return f"{delta.total_seconds():.1f}s"


def timeline(record: dict[str, Any]) -> str:
    """The run's stages, one line each: stage, status, duration, detail."""
    lines = []
    for entry in record.get("stages") or []:
        duration = _seconds(entry.get("started_at"), entry.get("ended_at"))
        detail = stage_note(entry)
        lines.append(
            f"  {entry.get('stage', ''):<9} {entry.get('status', ''):<12} {duration:>7}  {detail}".rstrip()
        )
    return "\n".join(lines)


def error_text(record: dict[str, Any]) -> str:
    """`stage/code: message` of a FAILED run."""
    error = record.get("error") or {}
    return f"{error.get('stage', '?')}/{error.get('code', '?')}: {error.get('message', '')}"


def describe(record: dict[str, Any]) -> str:
    """A run for people: what it is, where it got to, and what to fix if it failed."""
    image = record.get("image") or {}
    source = record.get("source") or {}
    rows = [
        ("run", record.get("run_id")),
        ("project", record.get("project")),
        ("status", record.get("status")),
        ("bundle", f"s3://{source.get('bucket')}/{source.get('key')}" if source else None),
        ("build", record.get("build_id")),
        ("image", image.get("uri") or image.get("repository")),
        ("training job", record.get("training_job_name")),
        ("model artifact", record.get("model_artifact")),
        ("model", record.get("model_name")),
        ("endpoint config", record.get("endpoint_config_name")),
        ("endpoint", record.get("endpoint_name")),
        ("created", record.get("created_at")),
        ("updated", record.get("updated_at")),
    ]
    text = "\n".join(f"{name + ':':<17}{value}" for name, value in rows if value)
    if record.get("stages"):
        text += "\ntimeline:\n" + timeline(record)
    if record.get("status") == "FAILED":
        text += "\nerror: " + error_text(record)
        run_id = record.get("run_id")
        text += (
            f"\nnext: `sagedock logs {run_id}` shows the stage's log; `sagedock retry {run_id}` runs it again"
        )
    return text
