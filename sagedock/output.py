"""How the CLI prints: aligned tables for people, the API's body as it is for `--output json`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

OUTPUTS = ("text", "json")
TERMINAL = ("SUCCEEDED", "FAILED")
STAGES = ("validate", "build", "train", "deploy")


def add_output_argument(parser: argparse.ArgumentParser) -> None:
    """`--output text|json` (and `-o`): json prints exactly the API's body, for scripts and jq."""
    parser.add_argument(
        "--output",
        "-o",
        choices=OUTPUTS,
        default="text",
        help="text for people (default), or json: the API's response body as it is",
    )


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type for a whole number in [low, high], e.g. a page size the API accepts."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, got {value!r}")
        return number

    return parse


def print_json(body: Any) -> None:
    """The API's body, unchanged: same keys, same order, same values."""
    print(json.dumps(body, indent=2, ensure_ascii=False))


def print_page(
    page: dict[str, Any],
    output: str,
    *,
    items: str,
    headers: Sequence[str],
    row: Callable[[dict[str, Any]], Sequence[Any]],
) -> None:
    """A page of a listing: the body as it is for json, else a table of page[items] and, on stderr, the
    option that fetches the next page."""
    if output == "json":
        print_json(page)
        return
    entries = page.get(items) or []
    print(table(headers, [row(entry) for entry in entries]) if entries else f"no {items}")
    if page.get("next_token"):
        print(f"more {items}: --next-token {page['next_token']}", file=sys.stderr)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell (the last one left ragged); None shows as an empty cell."""
    cells = [[str(h) for h in headers], *[["" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [value.ljust(widths[i]) for i, value in enumerate(row[:-1])] + row[-1:]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def one_line(text: Any, width: int = 80) -> str:
    """A message fitted onto one table cell: newlines folded, long text cut with an ellipsis."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def add_follow_arguments(parser: Any, *, timeout: float = 1800) -> None:
    """--follow and --timeout, as every command that can follow a run takes them."""
    parser.add_argument("--follow", action="store_true", help="show the run stage by stage until it ends")
    parser.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        help=f"give up following after this many seconds (default {timeout:.0f})",
    )


def stage_note(entry: dict[str, Any]) -> str:
    """What a stage is doing: its detail, and its live progress (build phase, training secondary status,
    endpoint status) when the run record carries one."""
    parts = [str(entry[key]) for key in ("progress", "detail") if entry.get(key)]
    return " - ".join(parts)
