"""`sagedock invoke --async [--wait]` and `sagedock captures` against the scripted API of test_cli."""

from __future__ import annotations

import pytest

from sagedock.cli import main
from sagedock.commands import invoke
from tests.unit import test_cli
from tests.unit.test_cli import FakeApi

api = test_cli.api  # the scripted API fixture

QUEUED = {
    "inference_id": "abc123",
    "output_location": "s3://artifacts/iris/async/output/abc123.out",
    "failure_location": "s3://artifacts/iris/async/failure/abc123-error.out",
}
ANSWER_PATH = "/endpoints/iris/async-invocations/abc123"
PENDING = (202, {"inference_id": "abc123", "status": "pending", "location": QUEUED["output_location"]})


def test_async_prints_the_inference_id_and_where_the_answer_will_be(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.on("POST", "/endpoints/iris/async-invocations", (202, QUEUED))
    assert main(["invoke", "iris", "--async", "--data", "5.1,3.5"]) == 0
    assert capsys.readouterr().out == (
        "inference abc123\n"
        "output s3://artifacts/iris/async/output/abc123.out\n"
        "failure s3://artifacts/iris/async/failure/abc123-error.out\n"
    )
    assert [r[:2] for r in api.requests] == [("POST", "/endpoints/iris/async-invocations")]


def test_wait_polls_until_the_answer_and_prints_it(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(invoke, "POLL_SECONDS", 0)
    api.on("POST", "/endpoints/iris/async-invocations", (202, QUEUED))
    done = {"inference_id": "abc123", "status": "completed", "location": "x", "body": "setosa\n"}
    api.on("GET", ANSWER_PATH, PENDING, PENDING, (200, done))

    assert main(["invoke", "iris", "--async", "--wait", "--data", "5.1,3.5"]) == 0

    assert capsys.readouterr().out.endswith("setosa\n")
    assert [r[1] for r in api.requests].count(ANSWER_PATH) == 3


def test_wait_shows_a_failure_and_exits_1(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("POST", "/endpoints/iris/async-invocations", (202, QUEUED))
    failed = {"inference_id": "abc123", "status": "failed", "location": "x", "body": "bad row"}
    api.on("GET", ANSWER_PATH, (200, failed))

    assert main(["invoke", "iris", "--async", "--wait", "--data", "x"]) == 1
    assert capsys.readouterr().err == "error: inference abc123 failed: bad row\n"


def test_wait_gives_up_after_the_timeout_saying_where_to_look(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.on("POST", "/endpoints/iris/async-invocations", (202, QUEUED))
    api.on("GET", ANSWER_PATH, PENDING)

    assert main(["invoke", "iris", "--async", "--wait", "--timeout", "0", "--data", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no answer for inference abc123 after 0s; it may still complete")
    assert QUEUED["output_location"] in err


def test_wait_without_async_is_a_usage_error(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke", "iris", "--wait", "--data", "x"]) == 2
    assert "give --async too" in capsys.readouterr().err
    assert api.requests == []


def test_an_endpoint_that_is_not_asynchronous_is_exit_1(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.on(
        "POST",
        "/endpoints/iris/async-invocations",
        (400, {"code": "NotAsynchronous", "message": "endpoint iris is not asynchronous"}),
    )
    assert main(["invoke", "iris", "--async", "--data", "x"]) == 1
    assert "NotAsynchronous" in capsys.readouterr().err


RECORD = {
    "captureData": {
        "endpointInput": {
            "observedContentType": "text/csv",
            "mode": "INPUT",
            "data": "5.1,3.5",
            "encoding": "CSV",
        },
        "endpointOutput": {
            "observedContentType": "application/json",
            "mode": "OUTPUT",
            "data": "eyJwIjogMX0=",
            "encoding": "BASE64",
        },
    },
    "eventMetadata": {"eventId": "e1", "inferenceTime": "2026-12-05T10:00:00Z"},
    "eventVersion": "0",
}


def test_captures_prints_each_record_decoded(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on(
        "GET",
        "/endpoints/iris/captures",
        (200, {"endpoint": "iris", "destination": "s3://d/", "records": [RECORD]}),
    )

    assert main(["captures", "iris", "--limit", "3"]) == 0

    assert capsys.readouterr().out == (
        '2026-12-05T10:00:00Z  e1\n  request  [text/csv] 5.1,3.5\n  response [application/json] {"p": 1}\n'
    )
    assert api.requests[-1] == ("GET", "/endpoints/iris/captures", {"limit": "3"})


def test_captures_says_when_there_are_none(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on(
        "GET",
        "/endpoints/iris/captures",
        (200, {"endpoint": "iris", "destination": "s3://d/x/", "records": []}),
    )
    assert main(["captures", "iris"]) == 0
    assert capsys.readouterr().out == "no captured records under s3://d/x/\n"
