"""The CLI against a scripted API on loopback: what each command prints, its JSON, and its exit code."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sagedock import follow
from sagedock.cli import main
from sagedock.commands import logs as logs_command
from sagedock.output import one_line, table

ROOT = Path(__file__).resolve().parents[2]
T0 = "2026-12-05T10:00:00.000Z"


def run_record(status: str, stages: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    entries = [
        {"stage": s, "status": st, "started_at": T0, "ended_at": None if st == "IN_PROGRESS" else T0}
        for s, st in stages
    ]
    return {"run_id": "demo-abc", "project": "demo", "status": status, "stages": entries, **extra}


FAILED_RUN = run_record(
    "FAILED",
    [("validate", "SUCCEEDED"), ("build", "FAILED")],
    error={"stage": "build", "code": "BuildFailed", "message": "COPY missing.py: no such file"},
    created_at=T0,
)


def log_page(stage: str, token: str | None, *messages: str, source: bool = True) -> tuple[int, Any]:
    """An answer of GET /runs/demo-abc/logs: these messages of the stage, then `token` to read on."""
    events = [{"timestamp": T0, "message": m} for m in messages]
    where = {"log_group": f"/{stage}", "log_stream": "s"} if source else None
    return 200, {"run_id": "demo-abc", "stage": stage, "source": where, "events": events, "next_token": token}


class FakeApi:
    """Answers by (method, path): each route a list of (status, body) played in turn, the last repeated."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def on(self, method: str, path: str, *answers: tuple[int, Any]) -> None:
        self.routes[(method, path)] = list(answers)

    def answer(self, method: str, raw_path: str) -> tuple[int, Any]:
        parsed = urllib.parse.urlparse(raw_path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        self.requests.append((method, parsed.path, query))
        answers = self.routes.get((method, parsed.path))
        if not answers:
            return 404, {"code": "NotFound", "message": f"no route {parsed.path}"}
        return answers.pop(0) if len(answers) > 1 else answers[0]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            """Quiet."""

        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            status, body = fake.answer(self.command, self.path)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _reply

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SAGEDOCK_API_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setattr(logs_command, "MIN_INTERVAL", 0.01)
    monkeypatch.setattr(logs_command, "MAX_INTERVAL", 0.02)
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_table_pads_every_column_but_the_last_and_shows_none_as_empty() -> None:
    assert table(("A", "BB", "C"), [("xxx", None, "tail"), ("y", "zz", "")]).splitlines() == [
        "A    BB  C",
        "xxx      tail",
        "y    zz",
    ]
    assert one_line("a\nb   c") == "a b c"
    assert one_line("x" * 100, 10) == "x" * 9 + "…"


def test_runs_is_a_table_with_the_failed_stage_and_its_error(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.on("GET", "/runs", (200, {"runs": [FAILED_RUN], "next_token": "tok2"}))
    assert main(["runs", "--project", "demo", "--limit", "5"]) == 0
    out, err = capsys.readouterr()
    header, row = out.splitlines()
    assert header.split() == ["RUN", "PROJECT", "STATUS", "STAGE", "CREATED", "DETAIL"]
    assert row.split()[:4] == ["demo-abc", "demo", "FAILED", "build"]
    assert "BuildFailed: COPY missing.py" in row
    assert "--next-token tok2" in err
    assert api.requests[-1][2] == {"project": "demo", "limit": "5"}


@pytest.mark.parametrize(
    ("argv", "path", "body"),
    [
        (["runs"], "/runs", {"runs": [FAILED_RUN], "next_token": None}),
        (["status", "demo-abc"], "/runs/demo-abc", FAILED_RUN),
        (
            ["logs", "demo-abc"],
            "/runs/demo-abc/logs",
            {"run_id": "demo-abc", "stage": "build", "source": None, "events": [], "next_token": None},
        ),
        (["projects"], "/projects", {"projects": [], "next_token": None}),
        (
            ["project", "demo"],
            "/projects/demo",
            {"project": "demo", "latest_run": None, "latest_successful_image": None, "endpoint": None},
        ),
    ],
)
def test_output_json_prints_exactly_the_apis_body(
    api: FakeApi, capsys: pytest.CaptureFixture[str], argv: list[str], path: str, body: Any
) -> None:
    api.on("GET", path, (200, body))
    code = main([*argv, "--output", "json"])
    assert json.loads(capsys.readouterr().out) == body
    assert code == (1 if body is FAILED_RUN else 0)  # status of a FAILED run exits 1


def test_status_says_what_to_run_next_for_a_failed_run(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.on("GET", "/runs/demo-abc", (200, FAILED_RUN))
    assert main(["status", "demo-abc"]) == 1
    out = capsys.readouterr().out
    assert "error: build/BuildFailed: COPY missing.py" in out
    assert "sagedock logs demo-abc" in out and "sagedock retry demo-abc" in out


def test_an_unknown_run_is_one_line_and_exit_2(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "nope"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: NotFound: no route /runs/nope\n")


def test_an_api_failing_with_5xx_is_exit_3(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/projects", (503, {"code": "Unavailable", "message": "table throttled"}))
    assert main(["projects"]) == 3
    assert capsys.readouterr().err.count("\n") == 1


def test_an_endpoint_error_on_invoke_is_exit_1(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on(
        "POST",
        "/endpoints/iris/invocations",
        (400, {"code": "ModelError", "message": "could not parse the CSV row"}),
    )
    assert main(["invoke", "iris", "--data", "x,y"]) == 1
    assert (
        capsys.readouterr().err
        == "error: endpoint iris answered 400 ModelError: could not parse the CSV row\n"
    )


def test_logs_follow_tails_each_stage_in_turn_until_the_run_fails(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a run building, then training, then FAILED, with a log page per request
    building = run_record("BUILDING", [("validate", "SUCCEEDED"), ("build", "IN_PROGRESS")])
    training = run_record(
        "TRAINING", [("validate", "SUCCEEDED"), ("build", "SUCCEEDED"), ("train", "IN_PROGRESS")]
    )
    failed = run_record("FAILED", [("validate", "SUCCEEDED"), ("build", "SUCCEEDED"), ("train", "FAILED")])
    api.on("GET", "/runs/demo-abc", (200, building), (200, building), (200, training), (200, failed))

    logs_pages = [
        log_page("build", "b1", "step 1"),  # first request
        log_page("build", "b2", "step 2"),  # polled while building
        log_page("build", "b3", "pushed"),  # the last poll while building
        log_page("build", "b3"),  # drained when the run moved on: nothing more
        log_page("train", "t1", "epoch 1"),
        log_page("train", "t2", "ValueError: bad label"),  # drained at the end
        log_page("train", "t2"),
    ]
    api.on("GET", "/runs/demo-abc/logs", *logs_pages)

    # When the user follows the logs
    code = main(["logs", "demo-abc", "--follow"])

    # Then every line came once, in order, each stage announced, and the exit code says the run FAILED
    out, err = capsys.readouterr()
    assert [line.split(" ", 1)[1] for line in out.splitlines()] == [
        "step 1",
        "step 2",
        "pushed",
        "epoch 1",
        "ValueError: bad label",
    ]
    assert err.splitlines() == ["==> build (/build s)", "==> train (/train s)"]
    assert code == 1
    # And each request after the first asked only for newer events of the stage it was reading
    log_queries = [q for m, p, q in api.requests if p.endswith("/logs")]
    assert log_queries[1] == {"stage": "build", "next_token": "b1"}
    assert {"stage": "train"} in log_queries


def test_submit_follow_off_a_terminal_prints_one_line_per_change(capsys: pytest.CaptureFixture[str]) -> None:
    view = follow.LineView()
    building = run_record("BUILDING", [("validate", "SUCCEEDED"), ("build", "IN_PROGRESS")])
    for record in ({}, building, building, {**building, "stages": [*building["stages"]]}):
        view.update(record)
    phase = {**building["stages"][1], "progress": "phase BUILD"}
    view.update({**building, "stages": [building["stages"][0], phase]})
    view.update(run_record("SUCCEEDED", [("validate", "SUCCEEDED"), ("build", "SUCCEEDED")]))
    lines = [line.split("] ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        "validate  SUCCEEDED",
        "build     IN_PROGRESS",
        "build     IN_PROGRESS - phase BUILD",
        "build     SUCCEEDED",
        "run SUCCEEDED",
    ]


def test_the_live_view_draws_every_stage_with_its_status_and_progress() -> None:
    from rich.console import Console

    view = follow.LiveView.__new__(follow.LiveView)
    view._run_id, view._began = "demo-abc", 0.0
    view._record = run_record(
        "TRAINING", [("validate", "SUCCEEDED"), ("build", "SUCCEEDED"), ("train", "IN_PROGRESS")]
    )
    view._record["stages"][2]["detail"] = "training job demo-abc [Downloading]"
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(view._render())
    text = out.getvalue()
    assert "run demo-abc  TRAINING" in text
    assert "training job demo-abc [Downloading]" in text  # brackets are text, not markup
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 3}
    assert "SUCCEEDED" in rows["build"] and "IN_PROGRESS" in rows["train"] and "pending" in rows["deploy"]


def test_stage_seconds_counts_an_open_stage_up_to_now() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 5, 10, 0, 7, tzinfo=UTC)
    assert follow.stage_seconds({"started_at": T0}, now) == 7.0
    assert follow.stage_seconds({"started_at": T0, "ended_at": "2026-12-05T10:00:02.500Z"}, now) == 2.5
    assert follow.stage_seconds({}, now) is None


def sagedock(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real entry point in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "sagedock.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_usage_error_is_exit_2_with_argparse_s_message() -> None:
    done = sagedock("logs")
    assert done.returncode == 2
    assert "the following arguments are required: RUN_ID" in done.stderr


def test_an_api_that_cannot_be_reached_is_exit_3_and_one_line(tmp_path: Path) -> None:
    import os
    import socket

    # A port held bound but never listening refuses every connection, and no other test can take it meanwhile
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        env = {**os.environ, "SAGEDOCK_API_URL": f"http://127.0.0.1:{port}"}
        done = sagedock("runs", env=env)
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"cannot reach http://127.0.0.1:{port}/runs" in done.stderr and "SAGEDOCK_API_URL" in done.stderr
    # And with no API configured and no local cloud running, the same code and a line saying what to do
    bare = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEDOCK_", "AWS_"))}
    done = sagedock("status", "x", env={**bare, "SAGEDOCK_LOCAL_STATE": str(tmp_path)})
    assert done.returncode == 3
    assert "sagedock local up" in done.stderr and done.stderr.count("\n") == 1


def test_following_a_deploy_shows_the_endpoints_own_status_when_the_api_has_it(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    from sagedock.client import ApiClient, resolve_target

    deploying = run_record(
        "DEPLOYING",
        [
            ("validate", "SUCCEEDED"),
            ("build", "SUCCEEDED"),
            ("train", "SUCCEEDED"),
            ("deploy", "IN_PROGRESS"),
        ],
        endpoint_name="iris",
    )
    done = run_record(
        "SUCCEEDED",
        [("validate", "SUCCEEDED"), ("build", "SUCCEEDED"), ("train", "SUCCEEDED"), ("deploy", "SUCCEEDED")],
    )
    api.on("GET", "/runs/demo-abc", (200, deploying), (200, deploying), (200, done))
    api.on(
        "GET",
        "/projects/demo",
        (200, {"project": "demo", "endpoint": {"name": "iris", "status": "Creating"}}),
    )
    client = ApiClient(resolve_target())
    record = follow.watch(client, "demo-abc", follow.LineView(), timeout=30, poll=0.01)
    assert record["status"] == "SUCCEEDED"
    lines = [line.split("] ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert "deploy    IN_PROGRESS - endpoint Creating" in lines
    # And an API without the projects route is asked once, and following goes on without it
    api.routes.pop(("GET", "/projects/demo"))
    api.on("GET", "/runs/demo-abc", (200, deploying), (200, deploying), (200, done))
    record = follow.watch(client, "demo-abc", follow.LineView(), timeout=30, poll=0.01)
    assert record["status"] == "SUCCEEDED"
    assert sum(1 for _, path, _ in api.requests if path == "/projects/demo") == 2


def test_logs_follow_with_output_json_prints_each_body_as_one_line(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    first = {
        "run_id": "demo-abc",
        "stage": "build",
        "source": {"log_group": "/aws/codebuild/x", "log_stream": "b"},
        "events": [{"timestamp": T0, "message": "COPY failed: missing.py"}],
        "next_token": "b1",
    }
    more = {**first, "events": [{"timestamp": T0, "message": "exit status 1"}], "next_token": "b2"}
    empty = {**first, "events": [], "next_token": "b2"}
    api.on("GET", "/runs/demo-abc", (200, FAILED_RUN))
    api.on("GET", "/runs/demo-abc/logs", (200, first), (200, more), (200, empty))
    assert main(["logs", "demo-abc", "--follow", "--output", "json"]) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [first, more]
    assert err == ""


def test_logs_follow_shows_the_failed_stage_even_when_the_run_failed_between_two_polls(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    building = run_record("BUILDING", [("validate", "SUCCEEDED"), ("build", "IN_PROGRESS")])
    failed = run_record("FAILED", [("validate", "SUCCEEDED"), ("build", "SUCCEEDED"), ("train", "FAILED")])
    api.on("GET", "/runs/demo-abc", (200, building), (200, failed))

    api.on(
        "GET",
        "/runs/demo-abc/logs",
        log_page("build", "b1", "step 1"),
        log_page("build", "b2", "step 2"),
        log_page("build", "b2"),  # drained: nothing more
        log_page("train", None, source=False),  # the failed stage, first asked before its stream was found
        log_page("train", "t1", "ValueError: boom"),
        log_page("train", "t1"),
    )
    assert main(["logs", "demo-abc", "-f"]) == 1
    out, err = capsys.readouterr()
    assert [line.split(" ", 1)[1] for line in out.splitlines()] == ["step 1", "step 2", "ValueError: boom"]
    assert err.splitlines() == ["==> build (/build s)", "==> train (no log stream yet)"]


def test_a_403_says_both_things_it_can_mean(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/projects", (403, {"message": "Missing Authentication Token"}))
    assert main(["projects"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "execute-api:Invoke" in err and "no such route" in err


def test_an_api_url_that_is_not_http_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAGEDOCK_API_URL", "ftp://example.com")
    assert main(["runs"]) == 2
    assert "fix --api-url or SAGEDOCK_API_URL" in capsys.readouterr().err


def test_following_a_run_that_is_never_recorded_gives_up_and_says_why(api: FakeApi) -> None:
    from sagedock.client import ApiClient, resolve_target

    view = follow.LineView()
    with pytest.raises(TimeoutError, match="no run ghost-1 was recorded within 0s of the upload"):
        follow.watch(ApiClient(resolve_target()), "ghost-1", view, timeout=60, poll=0.01, record_timeout=0.2)
    assert [p for _, p, _ in api.requests] == ["/runs/ghost-1"] * len(api.requests)
    assert len(api.requests) >= 2  # it did wait for the run before giving up


def test_following_a_build_shows_its_phase_per_change_and_its_latest_log_line_live(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    from rich.console import Console

    from sagedock.client import ApiClient, resolve_target
    from sagedock.progress import LiveProgress

    building = run_record("BUILDING", [("validate", "SUCCEEDED"), ("build", "IN_PROGRESS")])

    api.on(
        "GET",
        "/runs/demo-abc/logs",
        log_page(
            "build",
            "b1",
            "[Container] 2026/12/05 10:00:00.1 Entering phase INSTALL",
            "pip install -r req.txt",
        ),
        log_page(
            "build",
            "b2",
            "[Container] 2026/12/05 10:00:05.2 Entering phase BUILD",
            "Step 2/5 : COPY [model] .",
        ),
        log_page("build", "b2"),
    )
    progress = LiveProgress(ApiClient(resolve_target()), "demo-abc", every=0)
    view = follow.LineView()
    seen = [progress.annotate(building) for _ in range(3)]
    for record in seen:
        view.update(record)
    # The phase is a change, printed once per phase; the log line is not
    lines = [line.split("] ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        "validate  SUCCEEDED",
        "build     IN_PROGRESS - phase INSTALL",
        "build     IN_PROGRESS - phase BUILD",
    ]
    # And the live view shows the latest line under its table, brackets and all
    assert seen[-1]["stages"][-1]["last_log"] == "Step 2/5 : COPY [model] ."
    live = follow.LiveView.__new__(follow.LiveView)
    live._run_id, live._began, live._record = "demo-abc", 0.0, seen[-1]
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(live._render())
    assert "build log: Step 2/5 : COPY [model] ." in out.getvalue()
    # And the log was read on from where it stopped
    tokens = [q.get("next_token") for _, p, q in api.requests if p.endswith("/logs")]
    assert tokens == [None, "b1", "b2"]
