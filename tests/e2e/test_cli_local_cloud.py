"""The `sagedock` command through its real entry point against a running local cloud: the live display in a
pseudo-terminal, one line per change in a pipe, the API's JSON, and the exit codes a script relies on."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from typing import Any

import pytest
from localcloud import BUNDLES, ROOT, LocalCloudProcess

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 300.0


def run_in_terminal(
    args: list[str], env: dict[str, str], timeout: float, columns: int = 140
) -> tuple[int, str]:
    """`sagedock ARGS` with a pseudo-terminal as stdin, stdout and stderr: (exit code, all it wrote)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    terminal_env = {k: v for k, v in env.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS")}
    process = subprocess.Popen(
        [sys.executable, "-m", "sagedock.cli", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env={**terminal_env, "TERM": "xterm-256color"},
        close_fds=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every copy of the terminal's other end is closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        else:
            process.kill()
            pytest.fail(f"sagedock {' '.join(args)} did not end within {timeout:.0f}s")
    finally:
        os.close(master)
    return process.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def run_id_in(text: str) -> str:
    found = re.search(r"^run (\S+)\s*$", text, re.M)
    assert found, text
    return found.group(1)


@pytest.fixture(scope="module")
def failed_build(local_cloud: LocalCloudProcess) -> dict[str, Any]:
    """A bundle whose build fails, submitted and followed with stdout a pipe (not a terminal)."""
    done = local_cloud.cli("submit", str(BUNDLES / "broken-build"), "--project", "broken", "--follow")
    return {"done": done, "run_id": run_id_in(done.stdout)}


@pytest.fixture(scope="module")
def live_run(local_cloud: LocalCloudProcess) -> dict[str, Any]:
    """The sample submitted and followed in a terminal: its exit code, everything drawn, its run id."""
    code, screen = run_in_terminal(
        ["submit", str(ROOT / "container"), "--project", "live", "--follow"], local_cloud.env, RUN_TIMEOUT
    )
    return {"code": code, "screen": screen, "run_id": run_id_in(screen.replace("\r", ""))}


def test_submit_follow_in_a_terminal_shows_a_live_table_until_the_run_succeeds(
    local_cloud: LocalCloudProcess, live_run: dict[str, Any]
) -> None:
    code, screen, run_id = live_run["code"], live_run["screen"], live_run["run_id"]
    # Then it ends with the run SUCCEEDED and exit 0
    assert code == 0, screen
    assert re.search(rf"run {re.escape(run_id)} SUCCEEDED", screen), screen
    # And the display was a table redrawn in place (cursor moved up and lines erased), not a scroll of lines
    assert "\x1b[2K" in screen and screen.count("\x1b[1A") > 4, screen
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert re.search(r"stage\s+[┃│]\s+status\s+[┃│]\s+elapsed\s+[┃│]\s+progress", plain), plain
    assert "pending" in plain and "IN_PROGRESS" in plain
    last_table = plain[plain.rindex("stage") :]
    for stage in ("validate", "build", "train", "deploy"):
        assert re.search(rf"{stage}\s+│\s+SUCCEEDED\s+│\s+\d+\.\ds", last_table), last_table
    assert re.search(r"deploy .* endpoint iris", last_table), last_table
    # And the train row showed the training job's secondary status, recorded from SageMaker's events
    assert re.search(r"train\s+│.*│\s+(Starting|Downloading|Training|Uploading): ", plain), plain
    assert local_cloud.api.get_run(run_id)["status"] == "SUCCEEDED"


def test_submit_follow_in_a_pipe_prints_one_line_per_change_and_exit_1_when_the_run_fails(
    local_cloud: LocalCloudProcess, failed_build: dict[str, Any]
) -> None:
    done = failed_build["done"]
    assert done.returncode == 1, done.stdout + done.stderr
    assert "\x1b[" not in done.stdout
    changes = [line.split("] ", 1)[1] for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(changes) == len(set(changes)), done.stdout  # each change said once
    assert changes[0].startswith("validate  IN_PROGRESS") or changes[0].startswith("validate  SUCCEEDED")
    assert any(c.startswith("build     FAILED") for c in changes), changes
    assert changes[-1] == "run FAILED"
    # And the error is one actionable line on stderr, no traceback
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"run {failed_build['run_id']} FAILED: build/") and "missing.py" in line
    assert f"sagedock logs {failed_build['run_id']}" in line


def test_runs_and_status_print_the_apis_body_with_output_json(
    local_cloud: LocalCloudProcess, failed_build: dict[str, Any]
) -> None:
    listed = local_cloud.cli("runs", "--project", "broken", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == local_cloud.api.list_runs(project="broken", limit=20)
    status = local_cloud.cli("status", failed_build["run_id"], "-o", "json")
    assert status.returncode == 1  # the run FAILED
    assert json.loads(status.stdout) == local_cloud.api.get_run(failed_build["run_id"])
    table = local_cloud.cli("runs", "--project", "broken")
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["RUN", "PROJECT", "STATUS"]
    assert any(row.split()[:4] == [failed_build["run_id"], "broken", "FAILED", "build"] for row in rows)


def test_logs_show_the_failed_builds_log_and_follow_ends_with_the_run(
    local_cloud: LocalCloudProcess, failed_build: dict[str, Any]
) -> None:
    run_id = failed_build["run_id"]
    shown = local_cloud.cli("logs", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "missing.py" in shown.stdout
    assert shown.stderr.startswith("==> build (")
    as_json = local_cloud.cli("logs", run_id, "--output", "json")
    assert json.loads(as_json.stdout) == local_cloud.api.get_logs(run_id)
    # --follow on a run that already FAILED prints the log and ends at once, exit 1
    followed = local_cloud.cli("logs", run_id, "--follow", timeout=60)
    assert followed.returncode == 1, followed.stderr
    assert "missing.py" in followed.stdout


def test_retry_follow_runs_the_failed_stage_again_and_exits_1_when_it_fails_again(
    local_cloud: LocalCloudProcess, failed_build: dict[str, Any], live_run: dict[str, Any]
) -> None:
    run_id = failed_build["run_id"]
    retried = local_cloud.cli("retry", run_id, "--follow", timeout=RUN_TIMEOUT)
    assert retried.returncode == 1, retried.stdout + retried.stderr
    assert retried.stdout.startswith(f"run {run_id} restarted: ")
    assert "run FAILED" in retried.stdout
    assert local_cloud.api.get_run(run_id)["attempt"] >= 2
    # A run that is not FAILED cannot be retried: the API's 409 is a usage error, one line
    refused = local_cloud.cli("retry", live_run["run_id"])
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "409" in refused.stderr or "Conflict" in refused.stderr, refused.stderr


def test_projects_and_project_show_each_project_and_its_json_is_the_apis(
    local_cloud: LocalCloudProcess, failed_build: dict[str, Any]
) -> None:
    listed = local_cloud.cli("projects")
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^broken\s+FAILED\s+{re.escape(failed_build['run_id'])}", listed.stdout, re.M)
    as_json = local_cloud.cli("projects", "--output", "json")
    assert json.loads(as_json.stdout) == local_cloud.api.list_projects(limit=50)
    one = local_cloud.cli("project", "broken")
    assert one.returncode == 0, one.stderr
    assert f"latest run:      {failed_build['run_id']} FAILED" in one.stdout
    assert "error:           build/" in one.stdout
    one_json = local_cloud.cli("project", "broken", "-o", "json")
    assert json.loads(one_json.stdout) == local_cloud.api.get_project("broken")
    unknown = local_cloud.cli("project", "no-such-project")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1, unknown.stderr


def test_invoking_an_endpoint_that_does_not_exist_is_exit_1(local_cloud: LocalCloudProcess) -> None:
    done = local_cloud.cli("invoke", "no-such-endpoint", "--data", "1,2,3,4")
    assert done.returncode == 1
    assert done.stderr.startswith("error: endpoint no-such-endpoint answered 404"), done.stderr
    assert done.stderr.count("\n") == 1


def test_a_stopped_api_is_exit_3(local_cloud: LocalCloudProcess) -> None:
    closed = {**local_cloud.env, "SAGEDOCK_API_URL": "http://127.0.0.1:9"}
    done = local_cloud.cli("projects", env=closed)
    assert done.returncode == 3 and "cannot reach" in done.stderr and done.stderr.count("\n") == 1
