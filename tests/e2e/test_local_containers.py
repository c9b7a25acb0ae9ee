"""train and serve as real containers: /opt/ml as SageMaker lays it out, its environment, the model read-only,
port 8080 reached on loopback, each endpoint its own /tmp, failures with their exit status and last lines,
memory limited, SIGTERM stops serve at once, and no container left behind."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from engines import build_image
from localcloud import BUNDLES

from sagedock.local.containers import LABEL, ServeContainer, memory_limit, remove_owned, run_train
from sagedock.local.engine import Engine
from sagedock.optml import layout_opt_ml, pack_model
from sagedock.programs import free_port

pytestmark = pytest.mark.slow
OWNER = f"test-{time.time_ns()}"


@pytest.fixture(scope="module")
def probe_image(container_engine: Engine) -> str:
    return build_image(container_engine, BUNDLES / "contract-probe", "localhost/sagedock-test-probe:1")


def _containers(engine: Engine) -> list[str]:
    assert engine.command is not None
    listed = subprocess.run(
        [engine.command, "ps", "-a", "--filter", f"label={LABEL}={OWNER}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def _opt_ml(tmp_path: Path, mode: str) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "iris.csv").write_text("setosa,5.1,3.5,1.4,0.2\n")
    opt_ml = tmp_path / "opt_ml"
    layout_opt_ml(opt_ml, hyperparameters={"mode": mode}, channels={"train": data})
    return opt_ml


def _train(engine: Engine, image: str, opt_ml: Path, job: str = "job-1"):  # type: ignore[no-untyped-def]
    lines: list[str] = []
    outcome = run_train(
        engine,
        image,
        opt_ml,
        job_name=job,
        job_arn=f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{job}",
        owner=OWNER,
        timeout=120,
        log=lines.append,
    )
    return outcome, lines


def test_train_sees_opt_ml_and_the_job_environment(
    container_engine: Engine, probe_image: str, tmp_path: Path
) -> None:
    opt_ml = _opt_ml(tmp_path, "ok")
    outcome, lines = _train(container_engine, probe_image, opt_ml)
    assert outcome.ok, outcome.failure_reason
    model = json.loads((opt_ml / "model" / "model.json").read_text())
    assert model == {
        "job": "job-1",
        "arn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/job-1",
        "data": ["iris.csv"],
    }
    assert "training job-1 in mode ok" in lines
    assert _containers(container_engine) == []


def test_train_failure_reason_comes_from_output_failure(
    container_engine: Engine, probe_image: str, tmp_path: Path
) -> None:
    outcome, _ = _train(container_engine, probe_image, _opt_ml(tmp_path, "fail"))
    assert (outcome.ok, outcome.exit_code) == (False, 2)
    assert outcome.failure_reason == "ValueError: the data has no label column"


def test_train_that_dies_without_failure_file_says_its_status_and_last_lines(
    container_engine: Engine, probe_image: str, tmp_path: Path
) -> None:
    outcome, _ = _train(container_engine, probe_image, _opt_ml(tmp_path, "crash"))
    assert (outcome.ok, outcome.exit_code) == (False, 3)
    assert outcome.failure_reason is not None
    assert outcome.failure_reason.startswith(
        "train exited with code 3 without writing /opt/ml/output/failure; last output:"
    )
    assert "the last words of the job" in outcome.failure_reason
    assert _containers(container_engine) == []


def _model(engine: Engine, image: str, tmp_path: Path) -> Path:
    opt_ml = _opt_ml(tmp_path, "ok")
    outcome, _ = _train(engine, image, opt_ml, job="job-serve")
    assert outcome.ok, outcome.failure_reason
    return pack_model(opt_ml, tmp_path / "model.tar.gz")


def _serve(
    engine: Engine, image: str, model: Path, workdir: Path, log: list[str] | None = None, **env: str
) -> ServeContainer:
    return ServeContainer.launch(
        engine,
        image,
        model,
        port=free_port(),
        workdir=workdir,
        endpoint="probe",
        owner=OWNER,
        instance_type="ml.t2.medium",
        extra_env=env,
        log=None if log is None else log.append,
    )


def test_two_endpoints_each_their_own_tmp_port_and_read_only_model(
    container_engine: Engine, probe_image: str, tmp_path: Path
) -> None:
    model = _model(container_engine, probe_image, tmp_path)
    first = _serve(container_engine, probe_image, model, tmp_path / "a", WHO="a")
    second = _serve(container_engine, probe_image, model, tmp_path / "b", WHO="b")
    try:
        assert first.wait_healthy(60) and second.wait_healthy(60), first.output_tail() + second.output_tail()
        answers = []
        for server in (first, second, first):
            status, content_type, body = server.invoke(b"5.1,3.5,1.4,0.2", "text/csv")
            assert (status, content_type) == (200, "application/json")
            answers.append(json.loads(body))
        assert [a["tmp_before"] for a in answers] == [None, None, "a"]  # /tmp is not shared
        assert answers[0]["model"]["job"] == "job-serve"
        assert answers[0]["model_writable"] is False
        assert container_engine.command is not None
        memory = subprocess.run(
            [container_engine.command, "inspect", "--format", "{{.HostConfig.Memory}}", first.identity],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert memory == str(int(memory_limit("ml.t2.medium").rstrip("m")) * 1024 * 1024)  # type: ignore[union-attr]
    finally:
        began = time.monotonic()
        first.stop(grace=30)
        stopped_in = time.monotonic() - began
        second.stop(grace=30)
    assert stopped_in < 10, f"SIGTERM did not stop serve at once ({stopped_in:.1f}s)"
    assert not first.killed and not first.running()
    assert _containers(container_engine) == []


def test_serve_that_exits_before_its_first_ping(
    container_engine: Engine, probe_image: str, tmp_path: Path
) -> None:
    lines: list[str] = []
    server = _serve(
        container_engine, probe_image, tmp_path / "none.tar.gz", tmp_path / "w", lines, SERVE_MODE="exit"
    )
    try:
        assert server.wait_healthy(60) is False
    finally:
        server.stop(grace=5)
    assert server.exit_code == 4
    assert "serve: cannot start: no model loader for this format" in server.output_tail()
    assert lines[-1] == f"sagedock: container {server.identity} exited with code 4"
    assert _containers(container_engine) == []


def test_leftovers_of_a_local_cloud_are_found_by_label_and_removed(
    container_engine: Engine, probe_image: str, tmp_path: Path
) -> None:
    model = _model(container_engine, probe_image, tmp_path)
    server = _serve(container_engine, probe_image, model, tmp_path / "left")
    assert server.wait_healthy(60)
    assert remove_owned(container_engine, OWNER) == [server.identity]
    assert _containers(container_engine) == []
    server.stop(grace=1)
