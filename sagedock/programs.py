"""Runs an image's `train` and `serve` the way SageMaker would, without a container engine.

The image is built into a directory by sagedock.image; its programs run as local processes, each in a
sandbox of its own where the OS allows it (sagedock.sandbox: /opt/ml and the image's files at their real
paths, its own /tmp, /var/log and loopback). Without one, image-absolute paths in PATH and argv are mapped
below the root and SAGEDOCK_OPT_ML points at the job's /opt/ml tree. Either way the interpreter running
sagedock stays on PATH so that `#!/usr/bin/env python3` finds it, and RUN steps are not run: their effects
come from the local environment. Every program runs in its own session, and its whole process group is
killed when it is done with.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sagedock import sandbox
from sagedock.image import ContractError, LocalImage, make_writable, missing_module_hint
from sagedock.optml import unpack_model

Log = Callable[[str], None]

FAILURE_REASON_LIMIT = 1024
PING_LIMIT = 2.0  # SageMaker: /ping must answer within 2 s
INVOCATION_LIMIT = 60.0  # SageMaker: /invocations must answer within 60 s
# Variables a program may need from this machine; the image's own environment replaces the rest.
PASSED_THROUGH = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "USER", "LOGNAME")


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


def _inside(image: LocalImage, opt_ml: Path, text: str) -> str:
    """A host path of the image's root or of the job's /opt/ml as the sandbox shows it (its real path)."""
    root = str(image.root)
    text = text.replace(str(opt_ml), "/opt/ml")
    return "/" if text == root else text.replace(root + "/", "/")


def _start(
    image: LocalImage,
    program: str,
    opt_ml: Path,
    extra_env: Mapping[str, str] | None,
    log: Log | None,
    *,
    serving: bool = False,
) -> _Running:
    """Start `program`: in a sandbox of its own (in opt_ml's parent's `sandbox/`) where the OS allows it."""
    env = _program_env(image, opt_ml, extra_env)
    argv = program_argv(image, program, opt_ml, env)
    if not sandbox.support().available:
        cwd = image.host_path(image.spec.workdir)
        cwd.mkdir(parents=True, exist_ok=True)
        return _Running(argv, env, cwd, log)
    inside = {key: _inside(image, opt_ml, value) for key, value in env.items() if key != "TMPDIR"}
    directory = opt_ml.parent / "sandbox"
    command = sandbox.prepare(
        directory,
        mounts=sandbox.program_mounts(image, opt_ml, serving=serving),
        argv=[_inside(image, opt_ml, arg) for arg in argv],
        env=inside,
        cwd=image.spec.workdir or "/",
        bridge=serving,
    )
    return _Running(command, {"PATH": os.environ.get("PATH", "")}, directory, log)


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


def describe_exit(code: int) -> str:
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
            reason = f"train {describe_exit(code)} without writing /opt/ml/output/failure"
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

    def __init__(
        self,
        running: _Running,
        port: int,
        model_dir: Path,
        stop_signal: int,
        bridge: sandbox.Bridge | None = None,
    ) -> None:
        self._running = running
        self._bridge = bridge  # sandboxed: `port` is the host's end of the bridge to the sandbox's 8080
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
        """Unpack the model under workdir/opt_ml/model and start `serve`, reached on loopback `port`.

        In a sandbox, `serve` listens on its own 8080, as in SageMaker, and `port` is the bridge to it.
        """
        opt_ml = workdir / "opt_ml"
        model_dir = opt_ml / "model"
        unpack_model(model_tar, model_dir)
        sandboxed = sandbox.support().available
        inner = sandbox.SERVE_PORT if sandboxed else port
        env = {
            "SAGEMAKER_BIND_TO_PORT": str(inner),
            "SAGEMAKER_SAFE_PORT_RANGE": f"{inner}-{inner}",
            "SAGEDOCK_BIND_HOST": "127.0.0.1",
            **(extra_env or {}),
        }
        running = _start(image, "serve", opt_ml, env, log, serving=True)
        try:
            bridge = sandbox.Bridge(opt_ml.parent / "sandbox", port) if sandboxed else None
        except OSError:
            running.finish()
            raise
        return cls(running, port, model_dir, _signal_number(image.spec.stop_signal), bridge)

    @property
    def pid(self) -> int:
        """The process id (on this machine) of the program `serve` started as: in a sandbox, the child of
        its init, itself the child of the keeper that started the namespaces (its pid until then)."""
        pid = self._running.proc.pid
        if self._bridge is None:
            return pid
        for _ in range(2):
            children = Path(f"/proc/{pid}/task/{pid}/children")
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int(children.read_text().split()[0])
        return pid

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
            self.say_how_it_ended("serve")
        self._running.finish()
        if self._bridge is not None:
            self._bridge.close()
        make_writable(self._model_dir)
        return None if self.killed else self.exit_code

    def say_how_it_ended(self, what: str) -> None:
        """It exited on its own: say how in its log, after its last lines (what a deploy error quotes)."""
        self._running.pump.join(timeout=5)
        if self._running.log is not None and self.exit_code is not None:
            self._running.log(f"sagedock: {what} {describe_exit(self.exit_code)}")

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
