"""`sagedock demo` (what `make demo` runs): the whole product on this machine, from bundle to prediction.

Starts the local cloud, submits the sample image in container/ as project `demo`, follows the run, invokes
the endpoint with sample rows, prints the predictions and the run's timeline, and shuts everything down.
Exits 0 only when predictions came back.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

from sagedock.client import ApiClient, ApiError, Target, resolve_target
from sagedock.commands.local import configure_logging
from sagedock.commands.status import error_text, timeline
from sagedock.commands.submit import SubmitError, submit
from sagedock.local.engine import EngineUnavailable
from sagedock.local.engine import add_argument as add_engine_argument

PROJECT = "demo"
SAMPLES_PER_LABEL = 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="run the whole pipeline locally on the sample image")
    parser.add_argument(
        "--bundle", type=Path, help="the bundle directory (default: the sample in container/)"
    )
    parser.add_argument(
        "--state-dir", type=Path, help="images, logs and work trees (default: .sagedock/local)"
    )
    add_engine_argument(parser)
    parser.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the local cloud's own log")
    parser.set_defaults(func=run)


def sample_rows(data_dir: Path, per_label: int = SAMPLES_PER_LABEL) -> list[tuple[str, list[str]]]:
    """(label, features) for a few rows of each label of the sample data (label in the first column)."""
    picked: dict[str, list[list[str]]] = {}
    for path in sorted(data_dir.glob("*.csv")):
        with path.open(newline="") as handle:
            for row in csv.reader(handle):
                if len(row) > 1 and len(picked.setdefault(row[0], [])) < per_label:
                    picked[row[0]].append(row[1:])
    return [(label, features) for label, rows in picked.items() for features in rows]


def run(args: argparse.Namespace) -> int:
    from sagedock.local.cloud import PROJECT_DIR, AlreadyRunning, LocalCloud

    began = time.monotonic()
    configure_logging(args.verbose)
    if not args.verbose:
        import logging

        logging.getLogger("local_cloud").setLevel(logging.WARNING)
    bundle = args.bundle or PROJECT_DIR / "container"
    say = _printer(began)
    say("starting the local cloud (AWS emulator, the app's API and handlers, build/train/host executors)")
    cloud = LocalCloud(state_dir=args.state_dir, engine=args.engine)
    try:
        contract = cloud.start()
        for line in cloud.describe():
            say(line)
        target = resolve_target(environ=contract)
        say(f"API {target.api_url}, emulator {target.endpoint_url}")
        return _demo(target, bundle, args.timeout, say)
    except (SubmitError, ApiError, TimeoutError, AlreadyRunning, EngineUnavailable) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        say("stopping the local cloud")
        cloud.stop()
        say(f"done in {time.monotonic() - began:.1f}s")


def parse_predictions(answer: bytes) -> list[str]:
    """One prediction per row: a JSON list, {"predictions": [...]}, or one line per row."""
    text = answer.decode("utf-8", "replace").strip()
    try:
        loaded = json.loads(text)
    except ValueError:
        return text.splitlines()
    if isinstance(loaded, dict) and isinstance(loaded.get("predictions"), list):
        loaded = loaded["predictions"]
    if isinstance(loaded, list):
        return [json.dumps(p) if isinstance(p, dict | list) else str(p) for p in loaded]
    return [text]


def _printer(began: float) -> Any:
    def say(message: str) -> None:
        print(f"[{time.monotonic() - began:5.1f}s] {message}", flush=True)

    return say


def _demo(target: Target, bundle: Path, timeout: float, say: Any) -> int:
    client = ApiClient(target)
    say(f"submitting {bundle} as project {PROJECT!r}")
    submission = submit(bundle, PROJECT, target, say=say)
    from sagedock.follow import follow_view, watch

    view = follow_view(submission.run_id, say=lambda line: say("  " + line))
    record = watch(client, submission.run_id, view, timeout=timeout)
    if record.get("status") != "SUCCEEDED":
        print(f"the run FAILED: {error_text(record)}", file=sys.stderr)
        print("timeline:\n" + timeline(record), file=sys.stderr)
        return 1
    endpoint = str(record.get("endpoint_name"))
    rows = sample_rows(bundle / "data")
    if not rows:
        print(f"no sample rows in {bundle / 'data'}", file=sys.stderr)
        return 1
    body = "".join(",".join(features) + "\n" for _, features in rows)
    say(f"invoking endpoint {endpoint!r} with {len(rows)} rows (text/csv)")
    content_type, answer = client.invoke(endpoint, body.encode(), content_type="text/csv")
    predictions = parse_predictions(answer)
    if not predictions:
        print("the endpoint answered with no predictions", file=sys.stderr)
        return 1
    print(f"\npredictions ({content_type}):")
    for (label, features), prediction in zip(rows, predictions + [""] * len(rows), strict=False):
        print(f"  {','.join(features):<22} -> {prediction:<14} (labelled {label})")
    print(f"\nrun {record['run_id']} timeline:\n{timeline(record)}\n")
    return 0
