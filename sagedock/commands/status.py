"""`sagedock status RUN_ID`: one run, its provenance, its timeline and, when it failed, what to fix."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from sagedock.client import ApiClient, ApiError, NoTarget, add_target_arguments, target_from_args


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("status", help="show one run: status, timeline, provenance, error")
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument("--json", action="store_true", help="print the run record as JSON")
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        record = ApiClient(target_from_args(args)).get_run(args.run_id)
    except (ApiError, NoTarget) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(record, indent=2))
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
        detail = entry.get("detail") or ""
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
    return text
