"""The local cloud as a user runs it: `sagedock local up` in its own process, driven only from outside."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from sagedock.client import ApiClient, ApiError, Target
from sagedock.commands.submit import zip_directory

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = Path(__file__).resolve().parent / "bundles"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
TERMINAL = ("SUCCEEDED", "FAILED")


def wait_until(check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll `check` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def zip_bytes(files: dict[str, bytes | str]) -> bytes:
    """A bundle made in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def classic_bundle(manifest: str | None = None) -> bytes:
    """tests/e2e/bundles/classic-byoc zipped unchanged (AWS's classic bring-your-own-container shape), or
    with a `sagedock.toml` added."""
    data = zip_directory(BUNDLES / "classic-byoc")
    if manifest is None:
        return data
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            target.writestr(item, source.read(item))
        target.writestr("sagedock.toml", manifest)
    return out.getvalue()


@dataclass
class LocalCloudProcess:
    """A running `sagedock local up` and the ways in: its contract, S3, the HTTP API and the CLI."""

    process: subprocess.Popen[str]
    contract: dict[str, str]
    state_dir: Path

    @property
    def env(self) -> dict[str, str]:
        """The environment a user would export after reading the contract."""
        return {**os.environ, **self.contract}

    @property
    def target(self) -> Target:
        return Target(
            api_url=self.contract["SAGEDOCK_API_URL"],
            source_bucket=self.contract["SAGEDOCK_SOURCE_BUCKET"],
            endpoint_url=self.contract["AWS_ENDPOINT_URL"],
            region=self.contract["AWS_REGION"],
            local=True,
        )

    @property
    def api(self) -> ApiClient:
        return ApiClient(self.target)

    def aws(self, service: str) -> Any:
        """A boto3 client for the local cloud, configured only from the contract's lines."""
        return boto3.session.Session(
            aws_access_key_id=self.contract["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.contract["AWS_SECRET_ACCESS_KEY"],
            region_name=self.contract["AWS_REGION"],
        ).client(service, endpoint_url=self.contract["AWS_ENDPOINT_URL"])

    def cli(
        self, *args: str, timeout: float = 120, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `sagedock ARGS` as a user would, with the contract exported (or in `env`)."""
        return subprocess.run(
            [sys.executable, "-m", "sagedock.cli", *args],
            env=self.env if env is None else env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            check=False,
        )

    def upload(self, project: str, data: bytes, name: str) -> str:
        """Put a bundle into the source bucket directly (as `aws s3 cp` would); returns its key."""
        key = f"bundles/{project}/{name}.zip"
        self.aws("s3").put_object(Bucket=self.contract["SAGEDOCK_SOURCE_BUCKET"], Key=key, Body=data)
        return key

    def run_for_key(self, project: str, key: str, timeout: float = 30) -> str:
        """The run id the API lists for a bundle object."""

        def find() -> str | None:
            for record in self.api.iter_runs(project=project):
                if record.get("source", {}).get("key") == key:
                    return str(record["run_id"])
            return None

        return str(wait_until(find, timeout=timeout, what=f"a run for {key}"))

    def wait_run(self, run_id: str, timeout: float) -> dict[str, Any]:
        """The run once it is SUCCEEDED or FAILED."""

        def done() -> dict[str, Any] | None:
            try:
                record = self.api.get_run(run_id)
            except ApiError as exc:
                if exc.status == 404:
                    return None
                raise
            return record if record.get("status") in TERMINAL else None

        return dict(wait_until(done, timeout=timeout, what=f"run {run_id} to end", interval=0.5))

    def app_log_records(self) -> list[dict[str, Any]]:
        """The app's JSON log lines (what CloudWatch Logs would hold)."""
        path = self.state_dir / "logs" / "app.log"
        if not path.exists():
            return []
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def wait_handled(self, event_id: str, timeout: float = 30) -> list[dict[str, Any]]:
        """The app's log records of the invocations that handled one event (by its EventBridge id)."""

        def handled() -> list[dict[str, Any]]:
            return [
                r
                for r in self.app_log_records()
                if r.get("event_id") == event_id and r.get("message") == "event handled"
            ]

        return list(wait_until(handled, timeout=timeout, what=f"event {event_id} to be handled"))


def start_local_cloud(state_dir: Path, engine: str = "process") -> LocalCloudProcess:
    """`sagedock local up --engine ENGINE`, read until its KEY=VALUE lines say it is ready."""
    stderr = (state_dir / "local-up.stderr").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sagedock.cli",
            "local",
            "up",
            "--state-dir",
            str(state_dir),
            "--engine",
            engine,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    contract: dict[str, str] = {}
    deadline = time.monotonic() + START_TIMEOUT
    while contract.get("SAGEDOCK_LOCAL_READY") != "1":
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            process.kill()
            process.wait()
            raise RuntimeError(
                f"local up did not start: {(state_dir / 'local-up.stderr').read_text()[-3000:]}"
            )
        key, sep, value = line.strip().partition("=")
        if sep:
            contract[key] = value
    return LocalCloudProcess(process, contract, state_dir)


def stop_local_cloud(cloud: LocalCloudProcess) -> None:
    """^C, as a user would; the process must stop everything it started and exit 0."""
    cloud.process.send_signal(signal.SIGINT)
    try:
        code = cloud.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        cloud.process.kill()
        cloud.process.wait()
        pytest.fail("sagedock local up did not stop within a minute of ^C")
    assert code == 0, (cloud.state_dir / "local-up.stderr").read_text()[-3000:]
    assert processes_under(cloud.state_dir) == [], "processes left behind by sagedock local up"


def processes_under(directory: Path) -> list[str]:
    """Processes whose command line names a path below `directory` (the jobs and serves of a local cloud)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if any(str(directory) in word for word in words):
            found.append(f"{cmdline.parent.name}: {' '.join(words).strip()}")
    return found
