"""Runs a bundle's `train` and `serve` the way SageMaker would, without a container engine.

The image is built into a directory by sagedock.image; its programs run as local processes:
image-absolute paths in PATH and argv are mapped below the root, SAGEDOCK_OPT_ML points at the job's
/opt/ml tree, and the interpreter running sagedock stays on PATH so that
`#!/usr/bin/env python3` finds it. RUN steps are not run: their effects come from the local environment.
Every program runs in its own session, and its whole process group is killed when it is done with.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import http.client
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.domain.manifest import as_string
from sagedock.image import (
    ContractError,
    LocalImage,
    build_local_image,
    make_writable,
    missing_module_hint,
    remove_tree,
)

Log = Callable[[str], None]

FAILURE_REASON_LIMIT = 1024
PING_LIMIT = 2.0  # SageMaker: /ping must answer within 2 s
INVOCATION_LIMIT = 60.0  # SageMaker: /invocations must answer within 60 s
CHANNEL_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Variables a program may need from this machine; the image's own environment replaces the rest.
PASSED_THROUGH = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "USER", "LOGNAME")


# ---------------------------------------------------------------- the SageMaker /opt/ml tree


def layout_opt_ml(
    opt_ml: Path,
    *,
    hyperparameters: Mapping[str, str],
    channels: Mapping[str, Path],
    instance_type: str = "ml.m5.large",
    instance_count: int = 1,
) -> None:
    """Lay out /opt/ml for a training job as SageMaker does: config files, channel data, empty outputs."""
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    for name in ("model", "output/data", "input/data"):
        (opt_ml / name).mkdir(parents=True, exist_ok=True)
    strings = {str(key): str(value) for key, value in hyperparameters.items()}
    hosts = [f"algo-{i}" for i in range(1, instance_count + 1)]
    resources = {
        "current_host": hosts[0],
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": hosts,
        "instance_groups": [
            {"instance_group_name": "homogeneousCluster", "instance_type": instance_type, "hosts": hosts}
        ],
        "network_interface_name": "eth0",
    }
    data_config: dict[str, dict[str, str]] = {}
    for name, source in channels.items():
        if not CHANNEL_NAME.fullmatch(name):
            raise ContractError(f"invalid channel name {name!r} (letters, digits, '.', '-', '_'; up to 64)")
        if not source.exists():
            raise ContractError(f"channel {name!r}: {source} does not exist")
        target = opt_ml / "input" / "data" / name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / source.name)
        data_config[name] = {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
    for filename, content in (
        ("hyperparameters.json", strings),
        ("resourceconfig.json", resources),
        ("inputdataconfig.json", data_config),
    ):
        (config / filename).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def pack_model(opt_ml: Path, dest: Path) -> Path:
    """Write `dest` (model.tar.gz) from opt_ml/model, entries relative to it, reproducibly."""
    model_dir = opt_ml / "model"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(dest, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for path in sorted(model_dir.rglob("*"), key=lambda p: p.relative_to(model_dir).as_posix()):
            info = archive.gettarinfo(str(path), arcname=path.relative_to(model_dir).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isfile():
                with open(path, "rb") as handle:
                    archive.addfile(info, handle)
            else:
                archive.addfile(info)
    return dest


def unpack_model(model_tar: Path, model_dir: Path) -> None:
    """Unpack model.tar.gz into `model_dir` and make it read-only, as SageMaker hosting mounts it."""
    remove_tree(model_dir)
    model_dir.mkdir(parents=True)
    with tarfile.open(model_tar) as archive:
        archive.extractall(model_dir, filter="data")
    for directory, _, filenames in os.walk(model_dir, topdown=False):
        for name in filenames:
            path = Path(directory) / name
            if not path.is_symlink():
                os.chmod(path, stat.S_IMODE(path.stat().st_mode) & ~0o222)
        os.chmod(directory, 0o555)  # noqa: S103 - read-only, as SageMaker mounts the model


# ---------------------------------------------------------------- running the image's programs


def _program_env(image: LocalImage, opt_ml: Path, extra_env: Mapping[str, str] | None) -> dict[str, str]:
    """The image's environment, with PATH mapped below the root and this interpreter on it."""
    env = {key: os.environ[key] for key in PASSED_THROUGH if key in os.environ}
    env.update(image.spec.env)
    mapped: list[str] = []
    unmapped: list[str] = []
    for entry in image.spec.env.get("PATH", "").split(os.pathsep):
        if entry.startswith("/") and image.host_path(entry).is_dir():
            mapped.append(str(image.host_path(entry)))
        elif entry:
            unmapped.append(entry)
    interpreter_bin = os.path.dirname(sys.executable)
    host = os.environ.get("PATH", "").split(os.pathsep)
    path: list[str] = []
    for entry in [*mapped, interpreter_bin, *unmapped, *host]:
        if entry and entry not in path:
            path.append(entry)
    env["PATH"] = os.pathsep.join(path)
    env["SAGEDOCK_OPT_ML"] = str(opt_ml)
    env.update(extra_env or {})
    return env


_ABSOLUTE_IN_SHELL = re.compile(r"(?<![\w./-])(/[\w.+@-]+(?:/[\w.+@-]+)*)")


def _map_arg(image: LocalImage, opt_ml: Path, arg: str) -> str:
    """An image-absolute path below the root (or below the job's /opt/ml); anything else unchanged."""
    if arg == "/opt/ml" or arg.startswith("/opt/ml/"):
        return str(opt_ml / arg[len("/opt/ml") :].lstrip("/"))
    if arg.startswith("/") and os.path.lexists(image.host_path(arg)):
        return str(image.host_path(arg))
    return arg


def program_argv(image: LocalImage, program: str, opt_ml: Path, env: Mapping[str, str]) -> list[str]:
    """The argv of `docker run IMAGE program`, mapped for a local process (raises if it cannot start)."""
    argv = image.spec.command(program)
    if not argv:
        raise ContractError("the image has neither ENTRYPOINT nor CMD")
    shell = len(argv) >= 3 and argv[1] == "-c" and argv[0].endswith("sh")
    mapped = [_map_arg(image, opt_ml, arg) for arg in argv]
    if shell:  # shell form: map the absolute paths inside the command string too
        mapped[2] = _ABSOLUTE_IN_SHELL.sub(lambda m: _map_arg(image, opt_ml, m.group(1)), argv[2])
    executable = mapped[0]
    if "/" not in executable:
        found = shutil.which(executable, path=env.get("PATH", ""))
        if found is None:
            for directory in env.get("PATH", "").split(os.pathsep):
                candidate = Path(directory) / executable
                if candidate.is_file():
                    raise ContractError(
                        f"{executable} ({candidate}) is not executable: `chmod +x` it (COPY keeps the mode)"
                    )
            raise ContractError(
                f"{executable}: not found on the image's PATH ({image.spec.env.get('PATH', '')}); "
                f"COPY it into a directory on PATH"
            )
        mapped[0] = found
    elif not os.access(executable, os.X_OK):
        raise ContractError(f"{argv[0]} is not an executable file in the image")
    return mapped


class _Running:
    """A program in its own session whose output is pumped, line by line, to a log callback."""

    def __init__(self, argv: list[str], env: Mapping[str, str], cwd: Path, log: Log | None) -> None:
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self.log = log
        self.proc = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pump = threading.Thread(target=self._pump, name=f"log-{self.proc.pid}", daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.tail.append(line)
            if self.log is not None:
                with contextlib.suppress(Exception):
                    self.log(line)

    def signal_group(self, signum: int) -> None:
        """Send a signal to the whole process group (the program and anything it started)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def finish(self) -> None:
        """Kill whatever is left of the group and collect the output."""
        self.signal_group(signal.SIGKILL)
        self.proc.wait()
        self.pump.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _start(
    image: LocalImage, program: str, opt_ml: Path, extra_env: Mapping[str, str] | None, log: Log | None
) -> _Running:
    env = _program_env(image, opt_ml, extra_env)
    argv = program_argv(image, program, opt_ml, env)
    cwd = image.host_path(image.spec.workdir)
    cwd.mkdir(parents=True, exist_ok=True)
    return _Running(argv, env, cwd, log)


@dataclass(frozen=True)
class TrainOutcome:
    """How a training job ended; `failure_reason` is what SageMaker would show as FailureReason."""

    ok: bool
    exit_code: int | None
    failure_reason: str | None


def _read_failure(opt_ml: Path) -> str | None:
    path = opt_ml / "output" / "failure"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text if text.strip() else None  # whole: a module named at its end is found; run_train cuts it


# What shells and env(1) mean by these exit codes.
_EXIT_HINTS = {
    126: " (a program could not be executed: is it executable? `chmod +x` it, COPY keeps the mode)",
    127: " (a program was not found: is it on the image's PATH?)",
}


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}{_EXIT_HINTS.get(code, '')}"


def _with_hint(reason: str, hint: str | None) -> str:
    """The reason within FAILURE_REASON_LIMIT, the hint (if any) kept whole at its end."""
    if hint is None:
        return reason[:FAILURE_REASON_LIMIT]
    room = FAILURE_REASON_LIMIT - len(hint) - 2
    return f"{reason[: max(room, 0)]}; {hint}"[:FAILURE_REASON_LIMIT]


def run_train(
    image: LocalImage,
    opt_ml: Path,
    *,
    timeout: float = 3600,
    log: Log | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> TrainOutcome:
    """Run `train` on a laid-out /opt/ml tree (see `layout_opt_ml`) and judge it as SageMaker would."""
    try:
        running = _start(image, "train", opt_ml, extra_env, log)
    except (ContractError, OSError) as exc:
        return TrainOutcome(False, None, f"train could not start: {exc}")
    try:
        code = running.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        running.signal_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            running.proc.wait(2)
        return TrainOutcome(False, None, f"train did not finish within {timeout:g} s and was stopped")
    finally:
        running.finish()
    hint = (
        missing_module_hint(image, "\n".join([_read_failure(opt_ml) or "", *running.tail])) if code else None
    )
    return judge_train(code, opt_ml, list(running.tail), hint)


def judge_train(code: int, opt_ml: Path, tail: list[str], hint: str | None = None) -> TrainOutcome:
    """How SageMaker judges a `train` that exited with `code`: its failure file, else its exit and output."""
    if code != 0:
        reason = _read_failure(opt_ml)
        if reason is None:
            last = " | ".join(line for line in tail[-5:] if line.strip())
            reason = f"train {_describe_exit(code)} without writing /opt/ml/output/failure"
            reason = f"{reason}; last output: {last}" if last else reason
        return TrainOutcome(False, code, _with_hint(reason, hint))
    if not any(path.is_file() for path in (opt_ml / "model").rglob("*")):
        return TrainOutcome(False, 0, "train exited 0 but wrote no model: /opt/ml/model is empty")
    return TrainOutcome(True, 0, None)


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServeProcess:
    """The image's `serve` running on a loopback port with a model unpacked read-only."""

    def __init__(self, running: _Running, port: int, model_dir: Path, stop_signal: int) -> None:
        self._running = running
        self._model_dir = model_dir
        self._stop_signal = stop_signal
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.exit_code: int | None = None
        self.killed = False

    @classmethod
    def start(
        cls,
        image: LocalImage,
        model_tar: Path,
        *,
        port: int,
        workdir: Path,
        extra_env: Mapping[str, str] | None = None,
        log: Log | None = None,
    ) -> ServeProcess:
        """Unpack the model under workdir/opt_ml/model and start `serve` on `port`."""
        opt_ml = workdir / "opt_ml"
        model_dir = opt_ml / "model"
        unpack_model(model_tar, model_dir)
        env = {
            "SAGEMAKER_BIND_TO_PORT": str(port),
            "SAGEMAKER_SAFE_PORT_RANGE": f"{port}-{port}",
            "SAGEDOCK_BIND_HOST": "127.0.0.1",
            **(extra_env or {}),
        }
        running = _start(image, "serve", opt_ml, env, log)
        return cls(running, port, model_dir, _signal_number(image.spec.stop_signal))

    @property
    def pid(self) -> int:
        """The process id of the program `serve` started as."""
        return self._running.proc.pid

    def running(self) -> bool:
        """Whether the main process is still alive."""
        return self._running.proc.poll() is None

    def output_tail(self) -> list[str]:
        """The last lines the program printed."""
        return list(self._running.tail)

    def _request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=dict(headers))
            reply = connection.getresponse()
            return reply.status, reply.getheader("Content-Type", ""), reply.read()
        finally:
            connection.close()

    def ping(self, timeout: float = PING_LIMIT) -> int:
        """The status of one GET /ping."""
        return self._request("GET", "/ping", None, {}, timeout)[0]

    def wait_healthy(self, timeout: float) -> bool:
        """Poll GET /ping until it answers 200 (True), the deadline passes or the process exits (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self.ping(timeout=min(PING_LIMIT, max(remaining, 0.05))) == 200:
                    return True
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def invoke(
        self, body: bytes, content_type: str, accept: str | None = None, timeout: float = INVOCATION_LIMIT
    ) -> tuple[int, str, bytes]:
        """POST /invocations: (status, content type, body)."""
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        return self._request("POST", "/invocations", body, headers, timeout)

    def stop(self, grace: float = 30) -> int | None:
        """Signal the program (SIGTERM, or the image's STOPSIGNAL) as `docker stop` does; SIGKILL the
        group after `grace` s. The exit code if it exited in time, None if it had to be killed."""
        proc = self._running.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self._stop_signal)
            try:
                self.exit_code = proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.killed = True
        else:
            self.exit_code = proc.returncode
        self._running.finish()
        make_writable(self._model_dir)
        return None if self.killed else self.exit_code

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.exit_code is None and not self.killed:
            self.stop(grace=5)


def _signal_number(name: str | None) -> int:
    if not name:
        return int(signal.SIGTERM)
    text = name.strip().upper()
    if text.isdigit():
        return int(text)
    with contextlib.suppress(AttributeError):
        return int(getattr(signal, text if text.startswith("SIG") else f"SIG{text}"))
    return int(signal.SIGTERM)


# ---------------------------------------------------------------- the whole check


@dataclass(frozen=True)
class Check:
    """One requirement of the contract and how the bundle fared."""

    name: str
    passed: bool
    reason: str
    skipped: bool = False


@dataclass
class ContractReport:
    """Every check, in order; `ok` only when all passed."""

    checks: list[Check] = field(default_factory=list)
    image: LocalImage | None = None

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return bool(self.checks) and all(check.passed for check in self.checks)

    def add(self, name: str, passed: bool, reason: str) -> bool:
        """Record a check; returns `passed`."""
        self.checks.append(Check(name, passed, reason))
        return passed

    def skip(self, *names: str, because: str) -> None:
        """Record checks that could not run."""
        self.checks.extend(Check(name, False, f"not run: {because}", skipped=True) for name in names)

    def render(self) -> str:
        """One line a check, then the verdict."""
        lines = []
        for check in self.checks:
            status = "SKIP" if check.skipped else ("PASS" if check.passed else "FAIL")
            lines.append(f"{status}  {check.name:<12} {check.reason}")
        passed = sum(check.passed for check in self.checks)
        verdict = (
            "the container meets the contract" if self.ok else "the container does not meet the contract"
        )
        lines.append(f"{passed}/{len(self.checks)} checks passed: {verdict}")
        return "\n".join(lines)


CHECKS = ("build", "train", "model", "ping", "ping-2s", "invocation", "sigterm")


def manifest_hyperparameters(directory: Path) -> dict[str, str]:
    """[train.hyperparameters] of the bundle's sagedock.toml as SageMaker receives them (strings)."""
    path = directory / "sagedock.toml"
    if not path.is_file():
        return {}
    try:
        manifest = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ContractError(f"sagedock.toml: {exc}") from exc
    raw = manifest.get("train", {}).get("hyperparameters", {})
    return {str(key): as_string(value) for key, value in raw.items()}


def sample_request(channels: Mapping[str, Path], content_type: str) -> bytes:
    """An invocation body from the first training row, label (the first column) dropped."""
    for source in channels.values():
        files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
        for path in files:
            with open(path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if line.strip():
                        features = line.strip().split(",")[1:]
                        if content_type == "application/json":
                            with contextlib.suppress(ValueError):
                                return json.dumps([[float(value) for value in features]]).encode()
                        return ",".join(features).encode()
    return b""


def _timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


def check_container(
    directory: Path,
    *,
    hyperparameters: Mapping[str, str] | None = None,
    channels: Mapping[str, Path] | None = None,
    sample_body: bytes | None = None,
    content_type: str = "text/csv",
    ready_timeout: float = 480,
    grace: float = 30,
    train_timeout: float = 3600,
    dockerfile: str = "Dockerfile",
    build_args: Mapping[str, str] | None = None,
    log: Log | None = None,
    workdir: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> ContractReport:
    """Build the bundle in `directory`, train it, serve the model and judge each step by SageMaker's rules.

    Defaults: hyperparameters from sagedock.toml, the `data/` folder as the `train` channel, and the first
    training row without its label (first column) as the invocation body.
    """
    report = ContractReport()
    with _scratch(workdir) as scratch:
        try:
            image = build_local_image(directory, scratch / "image", dockerfile, build_args)
            params = dict(manifest_hyperparameters(directory) if hyperparameters is None else hyperparameters)
        except (ContractError, ValueError, OSError) as exc:
            report.add("build", False, str(exc))
            report.skip(*CHECKS[1:], because="the image could not be built")
            return report
        report.image = image
        notes = f" ({'; '.join(image.notes)})" if image.notes else ""
        report.add("build", True, f"{image.digest[:19]}... from {directory / dockerfile}{notes}")

        if channels is None:
            channels = {"train": directory / "data"} if (directory / "data").is_dir() else {}
        opt_ml = scratch / "train" / "opt_ml"
        try:
            layout_opt_ml(opt_ml, hyperparameters=params, channels=channels)
        except ContractError as exc:
            report.add("train", False, str(exc))
            report.skip(*CHECKS[2:], because="no training job could be laid out")
            return report
        outcome, seconds = _timed(
            lambda: run_train(image, opt_ml, timeout=train_timeout, log=log, extra_env=extra_env)
        )
        if not outcome.ok:
            report.add("train", False, outcome.failure_reason or "train failed")
            report.skip(*CHECKS[2:], because="train failed")
            return report
        report.add("train", True, f"exited 0 in {seconds:.1f} s")

        model_tar = pack_model(opt_ml, scratch / "model.tar.gz")
        with tarfile.open(model_tar) as archive:
            members = archive.getnames()
        report.add(
            "model", True, f"model.tar.gz with {len(members)} entries, {model_tar.stat().st_size} bytes"
        )

        body = sample_request(channels, content_type) if sample_body is None else sample_body
        limits = _ServeLimits(ready_timeout, grace, log, extra_env)
        _check_serving(report, image, model_tar, scratch / "serve", body, content_type, limits)
    return report


@dataclass(frozen=True)
class _ServeLimits:
    ready_timeout: float
    grace: float
    log: Log | None
    extra_env: Mapping[str, str] | None


def _check_serving(
    report: ContractReport,
    image: LocalImage,
    model_tar: Path,
    workdir: Path,
    body: bytes,
    content_type: str,
    limits: _ServeLimits,
) -> None:
    ready_timeout, grace = limits.ready_timeout, limits.grace
    try:
        server = ServeProcess.start(
            image, model_tar, port=free_port(), workdir=workdir, extra_env=limits.extra_env, log=limits.log
        )
    except (ContractError, OSError) as exc:
        report.add("ping", False, f"serve could not start: {exc}")
        report.skip(*CHECKS[4:], because="serve did not start")
        return
    try:
        healthy, seconds = _timed(lambda: server.wait_healthy(ready_timeout))
        if not healthy:
            why = (
                "exited"
                if not server.running()
                else f"did not answer GET /ping with 200 in {ready_timeout:g} s"
            )
            last = " | ".join(line for line in server.output_tail()[-5:] if line.strip())
            report.add("ping", False, f"serve {why}" + (f"; last output: {last}" if last else ""))
            report.skip("ping-2s", "invocation", because="serve never became healthy")
        else:
            report.add("ping", True, f"GET /ping answered 200 after {seconds:.1f} s")
            _check_ping_latency(report, server)
            _check_invocation(report, server, body, content_type)
    finally:
        started = time.monotonic()
        code = server.stop(grace)
        elapsed = time.monotonic() - started
    if code is None:
        report.add(
            "sigterm", False, f"still running {grace:g} s after SIGTERM: killed (SageMaker waits 30 s)"
        )
    elif code == 0:
        report.add("sigterm", True, f"exited 0 {elapsed:.2f} s after SIGTERM")
    elif code == -signal.SIGTERM:
        report.add(
            "sigterm",
            False,
            "died of SIGTERM's default action: as PID 1 in a container that signal is ignored, so the "
            "container would hang until SIGKILL; handle SIGTERM and exit 0",
        )
    else:
        report.add("sigterm", False, f"serve {_describe_exit(code)} after SIGTERM (expected 0)")


def _check_ping_latency(report: ContractReport, server: ServeProcess) -> None:
    slowest = 0.0
    for _ in range(3):
        try:
            status, seconds = _timed(lambda: server.ping(timeout=PING_LIMIT))
        except (OSError, http.client.HTTPException) as exc:
            report.add("ping-2s", False, f"GET /ping failed once healthy: {exc}")
            return
        if status != 200:
            report.add("ping-2s", False, f"GET /ping answered {status} once healthy")
            return
        slowest = max(slowest, seconds)
    report.add("ping-2s", slowest < PING_LIMIT, f"slowest of 3 pings: {slowest * 1000:.1f} ms")


def _check_invocation(report: ContractReport, server: ServeProcess, body: bytes, content_type: str) -> None:
    try:
        (status, answer_type, answer), seconds = _timed(lambda: server.invoke(body, content_type))
    except (OSError, http.client.HTTPException) as exc:
        report.add("invocation", False, f"POST /invocations failed: {exc}")
        return
    shown = answer[:120].decode("utf-8", "replace").strip().replace("\n", " | ")
    summary = f"{status} {answer_type or '(no content type)'} in {seconds * 1000:.0f} ms: {shown!r}"
    report.add("invocation", status == 200 and seconds < INVOCATION_LIMIT, summary)


@contextlib.contextmanager
def _scratch(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    path = Path(tempfile.mkdtemp(prefix="sagedock-check-"))
    try:
        yield path
    finally:
        remove_tree(path)
