"""What `serve` does with a request, the part you change: body -> rows, rows -> model, predictions -> body.

The transport (`server.py`, `workers.py`, `http11.py`: HTTP, keep-alive, workers, /ping, limits, signals)
calls only what is here: `load` once at start, then per request the decoder of the request's content type,
the model's `predict`, and the encoder of the type the client accepts. The keys of `DECODERS` are the
content types accepted (others get 415), those of `ENCODERS` the ones answered in (others get 406). A
decoder or a model that raises `ValueError` (such as `InvalidRequest`) gets a 400 with its message.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import model

CSV = "text/csv"
JSON = "application/json"


class InvalidRequest(ValueError):
    """A request body that cannot be turned into rows: its message tells the client what to fix."""


def load(model_dir: Path) -> model.Predictor:
    """The model, loaded once before the workers start (`model_dir` is /opt/ml/model)."""
    return model.load(model_dir)


def decode_csv(body: bytes, width: int) -> list[list[float]]:
    """Rows of numbers from a headerless CSV body, one row a line."""
    if b'"' in body:
        lines: list[list[bytes]] = [
            [cell.encode() for cell in row] for row in csv.reader(io.StringIO(body.decode("utf-8")))
        ]
    else:
        lines = [line.split(b",") for line in body.splitlines()]
    rows: list[list[float]] = []
    for lineno, cells in enumerate(lines, start=1):
        if len(cells) != width:
            if len(cells) == 1 and not cells[0].strip():
                continue  # blank line
            hint = " (send the features only, without the label)" if len(cells) == width + 1 else ""
            raise InvalidRequest(f"line {lineno}: expected {width} values, got {len(cells)}{hint}")
        try:
            rows.append([float(cell) for cell in cells])
        except ValueError:
            for column, cell in enumerate(cells, start=1):
                try:
                    float(cell)
                except ValueError:
                    text = cell.decode("utf-8", "replace")
                    message = f"line {lineno}, column {column}: {text!r} is not a number"
                    raise InvalidRequest(message) from None
    if not rows:
        raise InvalidRequest(f"empty request: send one line of {width} comma-separated numbers per row")
    return rows


def decode_json(body: bytes, width: int) -> list[list[float]]:
    """Rows from `{"instances": [[...], ...]}`, `[[...], ...]` or a single row `[...]`; null is missing."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None
    if isinstance(document, dict):
        if "instances" not in document:
            raise InvalidRequest('a JSON object must have "instances": a list of rows')
        document = document["instances"]
    if not isinstance(document, list) or not document:
        raise InvalidRequest("expected a non-empty list of rows (or one row) of numbers")
    if not isinstance(document[0], list):
        document = [document]
    rows: list[list[float]] = []
    for index, row in enumerate(document, start=1):
        if not isinstance(row, list) or len(row) != width:
            size = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            raise InvalidRequest(f"row {index}: expected a list of {width} numbers, got {size}")
        values: list[float] = []
        for column, cell in enumerate(row, start=1):
            if cell is None:
                values.append(float("nan"))
            elif isinstance(cell, (int, float)) and not isinstance(cell, bool):
                values.append(float(cell))
            else:
                raise InvalidRequest(f"row {index}, column {column}: {cell!r} is not a number")
        rows.append(values)
    return rows


def encode_csv(predictions: list[Any]) -> bytes:
    """One prediction a line."""
    return "".join(f"{value}\n" for value in predictions).encode()


def encode_json(predictions: list[Any]) -> bytes:
    """`{"predictions": [...]}`."""
    return json.dumps({"predictions": predictions}).encode()


# Content type -> decoder(body, row width) -> rows; content type -> encoder(predictions) -> body.
DECODERS: dict[str, Callable[[bytes, int], list[list[float]]]] = {CSV: decode_csv, JSON: decode_json}
ENCODERS: dict[str, Callable[[list[Any]], bytes]] = {CSV: encode_csv, JSON: encode_json}
