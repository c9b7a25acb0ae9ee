"""docs/cli.md against the parser: every command and option documented, nothing documented that is not."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from sagedock.cli import build_parser
from sagedock.client import add_target_arguments

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
READ_COMMANDS = ("runs", "status", "logs", "projects", "project")
TARGET_LINK = "[target options](#target-options)"


def commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every leaf command ("runs", "local up", ...) and its parser."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(commands(sub, f"{prefix} {name}".strip()))
    return found or {prefix: parser}


def arguments(parser: argparse.ArgumentParser) -> set[str]:
    """Its option strings and positional names, as the doc's tables spell them."""
    names: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            names.update(action.option_strings)
        else:
            names.add(str(action.metavar or action.dest).upper())
    return names


def sections() -> dict[str, str]:
    """`## heading` -> the text under it."""
    parts = re.split(r"^## (.+)$", DOC.read_text(), flags=re.M)
    return {heading.strip(): body for heading, body in zip(parts[1::2], parts[2::2], strict=True)}


def documented(body: str) -> set[str]:
    """The names in the first cell of each table row (the header and rule rows excluded)."""
    names: set[str] = set()
    for line in body.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = re.split(r"(?<!\\) \| ", line[2:], maxsplit=1)[0]
        for token in re.findall(r"`([^`]+)`", first_cell):
            names.add(
                token.replace("\\|", "|") if token.startswith("-") else token.replace("\\|", "|").upper()
            )
    if TARGET_LINK in body:
        names |= target_options()
    return names


def target_options() -> set[str]:
    probe = argparse.ArgumentParser()
    add_target_arguments(probe)
    return arguments(probe)


def test_every_command_has_a_section_and_every_section_a_command() -> None:
    in_doc = {m.group(1) for h in sections() if (m := re.fullmatch(r"`sagedock (.+)`", h))}
    in_parser = set(commands(build_parser()))
    assert not in_parser - in_doc, (
        f"add a section headed `sagedock COMMAND` to docs/cli.md for {in_parser - in_doc}"
    )
    assert not in_doc - in_parser, f"docs/cli.md documents commands that do not exist: {in_doc - in_parser}"


@pytest.mark.parametrize("command", sorted(commands(build_parser())))
def test_a_commands_section_lists_exactly_its_options(command: str) -> None:
    body = sections()[f"`sagedock {command}`"]
    in_doc, in_parser = documented(body), arguments(commands(build_parser())[command])
    assert not in_parser - in_doc, (
        f"document {sorted(in_parser - in_doc)} in docs/cli.md's `sagedock {command}`"
    )
    assert not in_doc - in_parser, (
        f"docs/cli.md's `sagedock {command}` names {sorted(in_doc - in_parser)}: gone?"
    )


def test_the_target_options_section_lists_exactly_the_target_options() -> None:
    assert documented(sections()["Target options"]) == target_options()


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_every_read_command_takes_output_json(command: str) -> None:
    parser = commands(build_parser())[command]
    output = next(a for a in parser._actions if "--output" in a.option_strings)
    assert output.choices is not None and "json" in output.choices
    assert command in sections()["Output"]
