"""docs/deploy.md's permissions table names, for each function of the config, exactly its policy's actions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from infra import package

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploy.md"
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
# Granted to every function alike, and said once in the paragraph under the table.
COMMON = {"events:PutEvents", "logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage"}
# `service:Action`, then any `/`-joined `OtherAction` of the same service: `s3:GetObject`/`GetObjectVersion`
ACTIONS = re.compile(r"`([a-z0-9-]+):([A-Za-z]+)`((?:/`[A-Za-z]+`)*)")


def table() -> dict[str, tuple[str, str]]:
    """Each function's row: (policy files cell, allowed cell)."""
    section = DOC.read_text().split("## Permissions", 1)[1].split("\n## ", 1)[0]
    header = section.index("| Function | Policy file | Allowed |")
    rows: dict[str, tuple[str, str]] = {}
    for line in section[header:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        functions, files, allowed = (cell.strip() for cell in line.strip("|").split(" | ", 2))
        for name in re.findall(r"`([a-z_]+)`", functions):
            rows[name] = (files, allowed)
    return rows


def documented(allowed: str) -> set[str]:
    """The actions a row's text names, with the grouped `/`-form expanded."""
    found: set[str] = set()
    for service, first, rest in ACTIONS.findall(allowed):
        found.add(f"{service}:{first}")
        found.update(f"{service}:{name}" for name in re.findall(r"`([A-Za-z]+)`", rest))
    return found


def granted(document: dict[str, Any]) -> set[str]:
    statements = document["Statement"]
    actions: set[str] = set()
    for statement in statements if isinstance(statements, list) else [statements]:
        action = statement["Action"]
        actions.update(action if isinstance(action, list) else [action])
    return actions - COMMON


def test_every_function_of_the_config_has_a_row_naming_its_policy_file() -> None:
    rows = table()
    functions = package.handler_names(CONFIG, "dev")
    assert sorted(rows) == sorted(functions)
    for name in functions:
        assert f"`{package.lookup(CONFIG, 'dev', name, 'iam_policy_file')}`" in rows[name][0], name


def test_each_row_names_exactly_the_actions_its_policy_grants() -> None:
    rows = table()
    for name in package.handler_names(CONFIG, "dev"):
        want = granted(package.policy_document(CONFIG, "dev", name))
        have = documented(rows[name][1])
        assert have == want, f"{name}: the table lacks {sorted(want - have)}, or names {sorted(have - want)}"


def test_the_actions_every_function_has_are_said_under_the_table() -> None:
    text = DOC.read_text().split("## Permissions", 1)[1].split("\n## ", 1)[0]
    for action in COMMON:
        assert action.split(":")[1] in text, action


def test_the_grouped_form_expands_to_one_service() -> None:
    row = "`s3:GetObject`/`GetObjectVersion` on x; `iam:PassRole` as above; `*`"
    assert documented(row) == {"s3:GetObject", "s3:GetObjectVersion", "iam:PassRole"}
