"""The contract check on the sample container and on broken copies of it."""

from __future__ import annotations

import time
from pathlib import Path

from sample_bundle import IRIS, SAMPLE, BundleFactory

from sagedock.cli import main
from sagedock.contract import Check, ContractReport, check_container


def by_name(report: ContractReport) -> dict[str, Check]:
    return {check.name: check for check in report.checks}


def test_sample_container_meets_the_contract(tmp_path: Path) -> None:
    # Given the sample bundle and its shipped data as the train channel
    # When the contract check runs it
    report = check_container(SAMPLE, channels={"train": IRIS.parent}, workdir=tmp_path, grace=10)

    # Then every check passes
    assert report.ok, report.render()
    assert [check.name for check in report.checks] == [
        "build",
        "train",
        "model",
        "ping",
        "ping-2s",
        "invocation",
        "sigterm",
    ]
    assert "setosa" in by_name(report)["invocation"].reason
    assert report.image is not None and report.image.digest.startswith("sha256:")


def test_the_cli_exits_0_and_prints_every_check(capsys: object, tmp_path: Path) -> None:
    # Given the sample bundle (its data/ folder is the default train channel)
    # When `sagedock check-container` runs on it
    code = main(["check-container", str(SAMPLE), "--quiet", "--grace", "10"])

    # Then it exits 0 and reports each check as passed
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert code == 0, out
    assert out.count("PASS") == 7
    assert "7/7 checks passed" in out


def test_a_train_that_raises_fails_with_the_message_of_the_failure_file(
    broken_bundle: BundleFactory, tmp_path: Path
) -> None:
    # Given a bundle whose train writes a failure file and exits 1
    bundle = broken_bundle(
        train="""
        import os, sys
        root = os.environ.get("SAGEDOCK_OPT_ML", "/opt/ml")
        os.makedirs(root + "/output", exist_ok=True)
        with open(root + "/output/failure", "w") as f:
            f.write("the data has no label column\\n\\nTraceback: ...")
        sys.exit(1)
        """
    )

    # When the contract check runs
    report = check_container(bundle, workdir=tmp_path / "work")

    # Then the train check fails with the failure file's message and nothing is served
    checks = by_name(report)
    assert not report.ok
    assert not checks["train"].passed
    assert checks["train"].reason.startswith("the data has no label column")
    assert all(checks[name].skipped for name in ("model", "ping", "invocation", "sigterm"))


def test_a_train_that_crashes_without_a_failure_file_shows_its_exit_and_output(
    broken_bundle: BundleFactory, tmp_path: Path
) -> None:
    # Given a bundle whose train raises without writing a failure file
    bundle = broken_bundle(train="raise RuntimeError('out of coffee')\n")

    # When the contract check runs
    report = check_container(bundle, workdir=tmp_path / "work")

    # Then the reason names the exit code and the last output
    reason = by_name(report)["train"].reason
    assert "exited with code 1" in reason
    assert "out of coffee" in reason


def test_a_train_that_writes_no_model_fails(broken_bundle: BundleFactory, tmp_path: Path) -> None:
    # Given a bundle whose train exits 0 without writing anything
    bundle = broken_bundle(train="print('all done, honestly')\n")

    # When the contract check runs
    report = check_container(bundle, workdir=tmp_path / "work")

    # Then the train check fails: no model
    train = by_name(report)["train"]
    assert not train.passed
    assert "wrote no model" in train.reason


def test_a_serve_that_never_answers_ping_fails_within_the_ready_timeout(
    broken_bundle: BundleFactory, tmp_path: Path
) -> None:
    # Given a bundle whose serve never listens
    bundle = broken_bundle(serve="import time\nwhile True:\n    time.sleep(1)\n")

    # When the contract check runs with a short ready timeout
    started = time.monotonic()
    report = check_container(bundle, workdir=tmp_path / "work", ready_timeout=2, grace=2)
    elapsed = time.monotonic() - started

    # Then the ping check fails, the invocation is not attempted, and it all ends in bounded time
    checks = by_name(report)
    assert not checks["ping"].passed
    assert "did not answer GET /ping with 200 in 2 s" in checks["ping"].reason
    assert checks["invocation"].skipped
    assert elapsed < 20


def test_a_serve_that_ignores_sigterm_fails_the_sigterm_check(
    broken_bundle: BundleFactory, tmp_path: Path
) -> None:
    # Given a bundle whose serve answers the contract but ignores SIGTERM
    bundle = broken_bundle(
        serve="""
        import os, signal
        from http.server import BaseHTTPRequestHandler, HTTPServer

        signal.signal(signal.SIGTERM, signal.SIG_IGN)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.end_headers()
                self.wfile.write(b"setosa\\n")

        port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
        HTTPServer(("127.0.0.1", port), Handler).serve_forever()
        """
    )

    # When the contract check runs with a short grace
    report = check_container(bundle, workdir=tmp_path / "work", grace=1)

    # Then everything passes but the SIGTERM check, which says it had to be killed
    checks = by_name(report)
    assert checks["ping"].passed and checks["invocation"].passed
    assert not checks["sigterm"].passed
    assert "still running 1 s after SIGTERM" in checks["sigterm"].reason


def test_a_serve_without_a_sigterm_handler_is_told_it_would_hang_as_pid_1(
    broken_bundle: BundleFactory, tmp_path: Path
) -> None:
    # Given a serve that answers but dies of SIGTERM's default action
    bundle = broken_bundle(
        serve="""
        import os
        from http.server import BaseHTTPRequestHandler, HTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()

        port = int(os.environ["SAGEMAKER_BIND_TO_PORT"])
        HTTPServer(("127.0.0.1", port), Handler).serve_forever()
        """
    )

    # When the contract check runs
    report = check_container(bundle, workdir=tmp_path / "work", grace=5)

    # Then the invocation fails (no POST handler) and the SIGTERM check explains PID 1
    checks = by_name(report)
    assert not checks["invocation"].passed
    assert "PID 1" in checks["sigterm"].reason


def test_a_program_that_is_not_executable_is_reported(broken_bundle: BundleFactory, tmp_path: Path) -> None:
    # Given a bundle whose train lost its executable bit
    bundle = broken_bundle()
    (bundle / "program" / "train").chmod(0o644)

    # When the contract check runs
    report = check_container(bundle, workdir=tmp_path / "work")

    # Then the reason says how to fix it
    assert "chmod +x" in by_name(report)["train"].reason


def test_a_dockerfile_error_fails_the_build_check_with_its_line(tmp_path: Path) -> None:
    # Given a bundle whose Dockerfile copies a file that is not there
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY missing.py /opt/program/\n")

    # When the contract check runs
    report = check_container(tmp_path, workdir=tmp_path / "work")

    # Then the build check fails naming the line, and nothing else runs
    build = by_name(report)["build"]
    assert not build.passed
    assert "line 2" in build.reason and "missing.py" in build.reason
    assert all(check.skipped for check in report.checks[1:])


SERVE_ONLY = Path(__file__).resolve().parents[1] / "e2e" / "bundles" / "serve-only"


def test_a_serve_only_bundle_is_checked_for_serving_only_with_its_model_baked_in(tmp_path: Path) -> None:
    # Given a bundle whose sagedock.toml has enabled = false under [train] and whose image refuses `train`
    # When the contract check runs it without model data
    report = check_container(SERVE_ONLY, workdir=tmp_path, grace=10)

    # Then train is not run, serving passes, and /opt/ml/model was empty
    assert report.ok, report.render()
    assert [check.name for check in report.checks] == [
        "build",
        "model",
        "ping",
        "ping-2s",
        "invocation",
        "sigterm",
    ]
    assert "baked into the image" in by_name(report)["invocation"].reason
    assert '"model_files": []' in by_name(report)["invocation"].reason


def test_a_serve_only_bundle_serves_the_model_data_it_is_given(capsys: object, tmp_path: Path) -> None:
    import io
    import tarfile

    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b'{"source": "given", "label": "versicolor"}'
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    code = main(
        ["check-container", str(SERVE_ONLY), "--model-data", str(archive), "--quiet", "--grace", "10"]
    )
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert code == 0, out
    assert "6/6 checks passed" in out and "versicolor" in out and "train" not in out.split("checks passed")[0]


def test_a_serve_only_bundle_with_an_unreadable_model_data_fails_the_model_check(tmp_path: Path) -> None:
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"not a tar")
    report = check_container(SERVE_ONLY, workdir=tmp_path / "work", grace=10, model_data=bad)
    assert not report.ok
    assert (
        not by_name(report)["model"].passed
        and "not a readable model.tar.gz" in by_name(report)["model"].reason
    )
    assert by_name(report)["ping"].skipped
