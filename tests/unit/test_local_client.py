"""The CLI's API client: where it sends requests, how it signs them for a deployed API, how errors read."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials

from sagedock.client import ApiClient, ApiError, NoTarget, Target, resolve_target


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, "headers": dict(self.headers)})
        if self.path.startswith("/runs/missing"):
            body, status = json.dumps({"code": "NotFound", "message": "no run missing"}).encode(), 404
        else:
            body, status = json.dumps({"status": "ok"}).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def api_server() -> Iterator[str]:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_flags_win_over_the_environment_which_wins_over_the_running_local_cloud(tmp_path: Path) -> None:
    (tmp_path / "env").write_text(
        f"SAGEDOCK_API_URL=http://127.0.0.1:1\nSAGEDOCK_SOURCE_BUCKET=local-bucket\nSAGEDOCK_LOCAL_PID={os.getpid()}\n"
    )
    env = {"SAGEDOCK_SOURCE_BUCKET": "env-bucket"}
    local = resolve_target(environ=env, state_dir=tmp_path)
    assert (local.api_url, local.source_bucket, local.local) == ("http://127.0.0.1:1", "env-bucket", True)
    deployed = resolve_target(
        api_url="https://abc.execute-api.eu-west-1.amazonaws.com/api/",
        region="eu-west-1",
        environ={"SAGEDOCK_SOURCE_BUCKET": "prod-bucket"},
        state_dir=tmp_path,
    )
    assert deployed.api_url == "https://abc.execute-api.eu-west-1.amazonaws.com/api"
    assert (deployed.source_bucket, deployed.region, deployed.local) == ("prod-bucket", "eu-west-1", False)


def test_a_local_cloud_that_is_gone_is_no_target(tmp_path: Path) -> None:
    (tmp_path / "env").write_text("SAGEDOCK_API_URL=http://127.0.0.1:1\nSAGEDOCK_LOCAL_PID=999999999\n")
    with pytest.raises(NoTarget, match="sagedock local up"):
        resolve_target(environ={}, state_dir=tmp_path)


def test_requests_to_a_deployed_api_are_signed_with_sigv4_for_execute_api(api_server: str) -> None:
    target = Target(
        api_url=api_server, source_bucket=None, endpoint_url=None, region="eu-west-1", local=False
    )
    client = ApiClient(target, credentials=Credentials("AKIDEXAMPLE", "secret"))
    assert client.health() == {"status": "ok"}
    headers = _Recorder.seen[-1]["headers"]
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]
    assert "X-Amz-Date" in headers


def test_requests_to_the_local_cloud_are_not_signed(api_server: str) -> None:
    target = Target(api_url=api_server, source_bucket=None, endpoint_url=None, region="us-east-1", local=True)
    ApiClient(target).health()
    assert "Authorization" not in _Recorder.seen[-1]["headers"]


def test_an_api_error_carries_its_status_code_and_message(api_server: str) -> None:
    target = Target(api_url=api_server, source_bucket=None, endpoint_url=None, region="us-east-1", local=True)
    with pytest.raises(ApiError) as caught:
        ApiClient(target).get_run("missing")
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        404,
        "NotFound",
        "no run missing",
    )


def test_an_unreachable_api_is_an_api_error() -> None:
    target = Target(
        api_url="http://127.0.0.1:9", source_bucket=None, endpoint_url=None, region="r", local=True
    )
    with pytest.raises(ApiError, match="cannot reach"):
        ApiClient(target, timeout=2).health()


def test_submit_names_a_bad_project_before_looking_for_an_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sagedock.cli import main

    monkeypatch.delenv("SAGEDOCK_API_URL", raising=False)
    monkeypatch.setenv("SAGEDOCK_LOCAL_STATE", str(tmp_path))  # no local cloud running
    with pytest.raises(SystemExit) as exited:
        main(["submit", str(tmp_path), "--project", "Iris_Model"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid project 'Iris_Model'" in err and "lowercase" in err
    assert "local up" not in err
