"""What a process-mode sandbox mounts (this host's Python environment bound back, copy-on-write views of
the packages' state directories) and what `local up` says of it."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from sagedock import sandbox
from sagedock.local.cloud import LocalCloud
from sagedock.local.engine import Engine
from sagedock.sandbox_init import _copy_directories


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


def test_an_overlay_falls_back_to_the_first_level_of_the_hosts_directories(tmp_path: Path) -> None:
    # Given a host directory two levels deep (as /var/lib/nginx/body, /var/lib/containers/storage/...)
    host = tmp_path / "host"
    (host / "nginx" / "body").mkdir(parents=True)
    (host / "containers" / "storage").mkdir(parents=True)
    (host / "dpkg.status").write_text("files are not copied")
    # When the kernel allows no overlay: the tmpfs in its place holds the first level only
    assert sandbox.overlay("/var/lib") == {
        "target": "/var/lib",
        "kind": "overlay",
        "lower": "/var/lib",
        "mode": "755",
        "skeleton": ["/var/lib"],
        "depth": 1,
    }
    into = tmp_path / "into"
    into.mkdir()
    _copy_directories(str(host), str(into), depth=1)
    assert sorted(str(p.relative_to(into)) for p in into.rglob("*")) == ["containers", "nginx"]
    # (without a depth, the whole tree, as /var/log's)
    everything = tmp_path / "everything"
    everything.mkdir()
    _copy_directories(str(host), str(everything))
    assert sorted(str(p.relative_to(everything)) for p in everything.rglob("*")) == [
        "containers",
        "containers/storage",
        "nginx",
        "nginx/body",
    ]


def test_local_up_says_once_whether_programs_are_sandboxed_and_what_is_not_isolated() -> None:
    engine = Engine("process", None, "asked for with --engine process")
    on = LocalCloud(chosen=engine, sandbox=sandbox.Support(True)).describe()
    assert on[0] == "engine: process (asked for with --engine process)"
    assert on[1].startswith("sandbox: on (mount, network and PID namespaces, as root): ")
    as_user = sandbox.Support(True, user_namespace=True).describe()
    assert "a user namespace mapping this user to root" in as_user
    off = LocalCloud(chosen=engine, sandbox=sandbox.Support(False, reason="SAGEDOCK_SANDBOX=off")).describe()
    assert off[1] == f"sandbox: off (SAGEDOCK_SANDBOX=off): {sandbox.NOT_ISOLATED}"
    # Container mode: containers isolate, there is no sandbox to speak of
    podman = Engine("podman", "/usr/bin/podman", "podman info answered")
    assert LocalCloud(chosen=podman).describe() == ["engine: podman (podman info answered)"]


def test_no_sandbox_is_said_once_by_whoever_asks_first(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sandbox, "_probe", lambda: sandbox.Support(False, reason="not Linux"))
    caplog.set_level(logging.WARNING, logger="sagedock.sandbox")
    # `local up` asks first and prints it itself: the first program's start says nothing more
    monkeypatch.setattr(sandbox, "_support", None)
    assert not sandbox.support(said=True).available
    assert not sandbox.support().available
    assert caplog.records == []
    # Anyone else asking first (the contract check) gets the warning, once
    monkeypatch.setattr(sandbox, "_support", None)
    sandbox.support()
    sandbox.support()
    assert [r.getMessage() for r in caplog.records] == [
        f"process mode without a sandbox (not Linux): {sandbox.NOT_ISOLATED}"
    ]
