"""What `train` does: read /opt/ml as SageMaker lays it out, fit the model, write it, or explain the failure.

On any failure /opt/ml/output/failure gets the human message first (SageMaker keeps its first 1024
characters as the training job's FailureReason) and the traceback after it; the exit code is non-zero.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import model

DEFAULT_CHANNEL = "train"


class TrainingError(Exception):
    """A problem with the job's input that the user can fix; its message is the failure reason."""


def opt_ml() -> Path:
    """The root of the SageMaker tree: /opt/ml in a container, elsewhere wherever SAGEDOCK_OPT_ML says."""
    return Path(os.environ.get("SAGEDOCK_OPT_ML", "/opt/ml"))


def read_json(path: Path, default: Any) -> Any:
    """A JSON config file of the job, or `default` when SageMaker did not write it."""
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TrainingError(f"{path.name} is not valid JSON: {exc}") from exc


def channel_files(root: Path, channel: str, input_config: dict[str, Any]) -> list[Path]:
    """Every CSV file of the channel (recursively, in a stable order)."""
    content_type = (input_config.get(channel) or {}).get("ContentType")
    if content_type and content_type.split(";")[0].strip().lower() not in ("text/csv", "csv"):
        raise TrainingError(
            f"channel {channel!r} has content type {content_type!r}; this model reads text/csv"
        )
    directory = root / "input" / "data" / channel
    if not directory.is_dir():
        present = sorted(p.name for p in directory.parent.iterdir()) if directory.parent.is_dir() else []
        raise TrainingError(
            f"no channel {channel!r} (channels present: {', '.join(present) or 'none'}); "
            f"name your training channel {channel!r} or set SAGEDOCK_TRAIN_CHANNEL"
        )
    files = sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))
    csv_files = [p for p in files if p.suffix.lower() == ".csv"]
    if not csv_files:
        found = ", ".join(p.name for p in files[:5]) or "nothing"
        raise TrainingError(f"channel {channel!r} has no .csv files (found: {found})")
    return csv_files


def read_rows(files: list[Path], base: Path) -> tuple[list[list[float]], list[str]]:
    """Features and labels from headerless CSV files whose first column is the label."""
    features: list[list[float]] = []
    labels: list[str] = []
    width: int | None = None
    for path in files:
        name = path.relative_to(base)
        with path.open(newline="", encoding="utf-8") as handle:
            for lineno, row in enumerate(csv.reader(handle), start=1):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) < 2:
                    raise TrainingError(f"{name} line {lineno}: expected a label and at least one feature")
                if width is None:
                    width = len(row)
                elif len(row) != width:
                    raise TrainingError(
                        f"{name} line {lineno}: {len(row)} columns, earlier rows have {width}"
                    )
                values: list[float] = []
                for column, cell in enumerate(row[1:], start=2):
                    try:
                        values.append(float(cell))
                    except ValueError:
                        raise TrainingError(
                            f"{name} line {lineno} column {column}: {cell!r} is not a number "
                            "(the label goes in the first column, there is no header row)"
                        ) from None
                features.append(values)
                labels.append(row[0].strip())
    if not features:
        raise TrainingError("the training data has no rows")
    return features, labels


def typed_labels(labels: list[str]) -> list[Any]:
    """Integers when every label is one, otherwise the strings as written."""
    try:
        return [int(label) for label in labels]
    except ValueError:
        return list(labels)


def train(root: Path) -> None:
    """Run one training job in the tree at `root`."""
    import numpy as np

    raw_hyperparameters = read_json(root / "input" / "config" / "hyperparameters.json", {})
    params = model.parse_hyperparameters(raw_hyperparameters)
    input_config = read_json(root / "input" / "config" / "inputdataconfig.json", {})
    channel = os.environ.get("SAGEDOCK_TRAIN_CHANNEL", DEFAULT_CHANNEL)
    files = channel_files(root, channel, input_config)
    rows, labels = read_rows(files, root / "input" / "data")
    print(f"train: {len(rows)} rows from {len(files)} file(s), hyperparameters {params}", flush=True)

    started = time.monotonic()
    features = np.array(rows, dtype=np.float64)
    targets = np.array(typed_labels(labels))
    estimator = model.fit(features, targets, params)
    accuracy = float((estimator.predict(features) == targets).mean())
    # One metric a line, so a SageMaker metric definition (regex) can pick it up.
    print(f"train:accuracy={accuracy:.4f}", flush=True)
    print(f"train:seconds={time.monotonic() - started:.3f}", flush=True)
    model.save(estimator, root / "model", params)
    print(f"train: model written to {root / 'model'}", flush=True)


def failure_message(exc: BaseException) -> str:
    """The one-line reason a person can act on: our own errors as they are, others with their type."""
    if isinstance(exc, (TrainingError, model.HyperparameterError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def write_failure(root: Path, exc: BaseException) -> str:
    """Write output/failure (message first, traceback after) and return the message."""
    message = failure_message(exc)
    details = "".join(traceback.format_exception(exc))
    output = root / "output"
    try:
        output.mkdir(parents=True, exist_ok=True)
        (output / "failure").write_text(f"{message}\n\n{details}", encoding="utf-8")
    except OSError as write_error:
        print(f"train: could not write {output / 'failure'}: {write_error}", file=sys.stderr)
    return message


def main() -> int:
    """Entry point of the `train` program; the exit code tells SageMaker whether the job succeeded."""
    root = opt_ml()
    try:
        train(root)
    except Exception as exc:
        message = write_failure(root, exc)
        traceback.print_exc()
        print(f"train: FAILED: {message}", file=sys.stderr, flush=True)
        return 1
    return 0
