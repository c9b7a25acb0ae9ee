"""What a process-mode sandbox binds back of this host's Python environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sagedock import sandbox


def _prefixes(monkeypatch: pytest.MonkeyPatch, prefix: str, base: str) -> None:
    monkeypatch.setattr(sys, "prefix", prefix)
    monkeypatch.setattr(sys, "exec_prefix", prefix)
    monkeypatch.setattr(sys, "base_prefix", base)
    monkeypatch.setattr(sys, "base_exec_prefix", base)


def test_a_virtualenv_under_tmp_is_bound_back_read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a checkout and its virtualenv under /tmp, which every sandbox replaces with an empty tmpfs
    _prefixes(monkeypatch, "/tmp/checkout/.venv", "/usr")
    # Then the sandbox shows it at the same path, read-only, and nothing of /usr (never emptied)
    venv = os.path.realpath("/tmp/checkout/.venv")
    assert sandbox.environment_binds(["/tmp", "/var/log"]) == [sandbox.bind(venv, Path(venv), readonly=True)]


def test_an_environment_outside_the_emptied_directories_needs_no_bind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _prefixes(monkeypatch, "/opt/venv", "/usr/local")
    assert sandbox.environment_binds(["/tmp", "/var/log"]) == []
