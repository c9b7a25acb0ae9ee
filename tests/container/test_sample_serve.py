"""The sample's `serve`: formats, errors, keep-alive, workers, ports and shutdown."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sample_bundle import IRIS

from sagedock import sandbox
from sagedock.image import LocalImage
from sagedock.programs import ServeProcess, free_port

FEATURES = [line.split(",", 1)[1] for line in IRIS.read_text().splitlines()]


class LogLines(list[str]):
    """A program's log lines as the pump delivers them, and a way to wait for one (it may lag the program)."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition()

    def __call__(self, line: str) -> None:
        with self._changed:
            self.append(line)
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: any(text in line for line in self), timeout)


def test_one_csv_row_gets_one_label(served: ServeProcess) -> None:
    # Given a healthy server
    # When one CSV row is posted
    status, content_type, body = served.invoke(b"5.1,3.5,1.4,0.2", "text/csv")

    # Then the label comes back as CSV
    assert (status, content_type, body) == (200, "text/csv", b"setosa\n")


@pytest.fixture(scope="module")
def estimator(sample_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The served model, loaded here to compare with sklearn's own predict."""
    target = tmp_path_factory.mktemp("estimator")
    with tarfile.open(sample_model) as archive:
        archive.extractall(target, filter="data")
    return joblib.load(target / "model.joblib")


def test_every_answer_matches_sklearn_predict(served: ServeProcess, estimator: Any) -> None:
    # Given the iris rows plus random rows around the tree's thresholds
    random_rows = np.random.default_rng(7).uniform(0, 8, size=(2000, 4)).round(3)
    rows = [[float(v) for v in line.split(",")] for line in FEATURES] + random_rows.tolist()
    body = "\n".join(",".join(repr(v) for v in row) for row in rows).encode()

    # When they are posted as one CSV body
    status, _, answer = served.invoke(body, "text/csv")

    # Then every prediction is what sklearn's own predict says
    assert status == 200
    expected = estimator.predict(np.array(rows)).tolist()
    assert answer.decode().splitlines() == expected


@pytest.mark.parametrize(
    "document",
    [
        {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]},
        [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]],
    ],
)
def test_json_rows_get_json_predictions(served: ServeProcess, document: object) -> None:
    # Given rows as JSON
    # When they are posted
    status, content_type, body = served.invoke(json.dumps(document).encode(), "application/json")

    # Then the predictions come back as JSON
    assert status == 200 and content_type == "application/json"
    assert json.loads(body) == {"predictions": ["setosa", "virginica"]}


def test_accept_chooses_the_answer_format(served: ServeProcess) -> None:
    # Given a CSV request that accepts JSON
    # When it is posted
    status, content_type, body = served.invoke(b"5.1,3.5,1.4,0.2\n", "text/csv", accept="application/json")

    # Then the answer is JSON
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"predictions": ["setosa"]}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-npy", "image/png"])
def test_other_content_types_get_415(served: ServeProcess, content_type: str) -> None:
    # Given a body of an unsupported type
    # When it is posted
    status, _, body = served.invoke(b"5.1,3.5,1.4,0.2", content_type)

    # Then the server says 415 and what it accepts
    assert status == 415
    assert b"text/csv or application/json" in body


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"5.1,3.5,1.4", "text/csv", b"line 1: expected 4 values, got 3"),
        (b"5.1,3.5,1.4,0.2\n6.0,x,1.0,1.0", "text/csv", b"line 2, column 2: 'x' is not a number"),
        (b"setosa,5.1,3.5,1.4,0.2", "text/csv", b"without the label"),
        (b"", "text/csv", b"empty request"),
        (b"[[5.1, 3.5]]", "application/json", b"row 1: expected a list of 4 numbers, got 2 values"),
        (b'{"rows": []}', "application/json", b'"instances"'),
        (b"[[5.1, 3.5, true, 1]]", "application/json", b"row 1, column 3: True is not a number"),
        (b"{not json", "application/json", b"not valid JSON"),
    ],
)
def test_malformed_rows_get_400_saying_what_is_wrong(
    served: ServeProcess, body: bytes, content_type: str, message: bytes
) -> None:
    # Given a malformed request
    # When it is posted
    status, _, answer = served.invoke(body, content_type)

    # Then the server says 400 and what is wrong
    assert status == 400
    assert message in answer


def test_missing_values_get_sklearn_s_own_answer(served: ServeProcess, estimator: Any) -> None:
    # Given rows with missing values (null in JSON), which the shortcut leaves to sklearn
    rows = [[5.1, None, 1.4, 0.2], [None, None, 5.2, 2.3], [6.0, 2.9, None, None]]

    # When they are posted
    status, _, answer = served.invoke(json.dumps(rows).encode(), "application/json")

    # Then the answers are what sklearn's predict says for them
    assert status == 200
    expected = estimator.predict(np.array(rows, dtype=float)).tolist()
    assert json.loads(answer) == {"predictions": expected}


def test_many_requests_share_one_keep_alive_connection(served: ServeProcess) -> None:
    # Given one HTTP/1.1 connection
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        # When 50 requests are sent over it
        for _ in range(50):
            connection.request(
                "POST", "/invocations", body=b"6.7,3.0,5.2,2.3", headers={"Content-Type": "text/csv"}
            )
            reply = connection.getresponse()
            # Then each is answered and the connection stays open
            assert (reply.status, reply.read()) == (200, b"virginica\n")
            assert reply.getheader("Connection") != "close"
    finally:
        connection.close()


def test_pipelined_and_chunked_requests_are_answered_in_order(served: ServeProcess) -> None:
    # Given two requests written at once, the second with a chunked body
    first = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 15\r\n\r\n"
        b"5.1,3.5,1.4,0.2"
    )
    second = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n7\r\n6.7,3.0\r\n8\r\n,5.2,2.3\r\n0\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        # When they are sent
        sock.sendall(first + second)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk

    # Then both answers come back, in order, and the server closes as asked
    assert received.count(b"HTTP/1.1 200 OK") == 2
    assert received.index(b"setosa") < received.index(b"virginica")


def test_unknown_paths_and_methods(served: ServeProcess) -> None:
    # Given a healthy server
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        # When other paths or methods are used
        connection.request("GET", "/nope")
        missing = connection.getresponse()
        missing.read()
        connection.request("GET", "/invocations")
        wrong = connection.getresponse()
        wrong.read()
    finally:
        connection.close()

    # Then they get 404 and 405
    assert (missing.status, wrong.status) == (404, 405)


def test_a_killed_worker_is_replaced(served: ServeProcess) -> None:
    # Given the server's workers
    workers = children_of(served.pid)
    assert workers

    # When one is killed
    os.kill(workers[0], signal.SIGKILL)

    # Then the server keeps answering and has as many workers again
    def replaced() -> bool:
        now = children_of(served.pid)
        return workers[0] not in now and len(now) == len(workers)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not replaced():
        time.sleep(0.05)
    assert replaced()
    for _ in range(10):
        assert served.invoke(b"5.1,3.5,1.4,0.2", "text/csv")[0] == 200


def children_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(part) for part in children.read_text().split()] if children.exists() else []


def test_port_workers_and_clean_sigterm(sample_image: LocalImage, sample_model: Path, tmp_path: Path) -> None:
    # Given SAGEMAKER_BIND_TO_PORT set to a free port and SAGEDOCK_WORKERS=3
    port = free_port()
    lines = LogLines()
    server = ServeProcess.start(
        sample_image,
        sample_model,
        port=port,
        workdir=tmp_path,
        extra_env={"SAGEDOCK_WORKERS": "3"},
        log=lines,
    )
    try:
        # When it starts
        assert server.wait_healthy(30), lines
        # Then it listens on that port (in a sandbox, its own 8080 bridged to it) with three workers
        inner = sandbox.SERVE_PORT if sandbox.support().available else port
        assert lines.wait_for(f"listening on 127.0.0.1:{inner} with 3 worker(s)", 5), lines
        assert len(children_of(server.pid)) == 3
        # And an idle keep-alive connection does not hold up shutdown
        idle = socket.create_connection(("127.0.0.1", port))
    finally:
        started = time.monotonic()
        code = server.stop(grace=10)
        elapsed = time.monotonic() - started
    idle.close()

    # Then SIGTERM ends it quickly with exit code 0
    assert code == 0
    assert elapsed < 3


def test_a_bad_worker_count_is_refused(sample_image: LocalImage, sample_model: Path, tmp_path: Path) -> None:
    # Given SAGEDOCK_WORKERS=0
    lines: list[str] = []
    server = ServeProcess.start(
        sample_image,
        sample_model,
        port=free_port(),
        workdir=tmp_path,
        extra_env={"SAGEDOCK_WORKERS": "0"},
        log=lines.append,
    )

    # When it starts, Then it exits with a message naming the variable
    assert not server.wait_healthy(10)
    assert server.stop(grace=5) == 2
    assert any("SAGEDOCK_WORKERS must be an integer >= 1" in line for line in lines)
