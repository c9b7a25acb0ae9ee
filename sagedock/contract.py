"""Runs a bundle's `train` and `serve` the way SageMaker would, without a container engine.

An image is "built" into a directory (its root) from the Dockerfile's COPY/ADD steps; its programs then
run as local processes: image-absolute paths in PATH and argv are mapped below the root, SAGEDOCK_OPT_ML
points at the job's /opt/ml tree, and the interpreter running sagedock stays on PATH so that
`#!/usr/bin/env python3` finds it. RUN steps are not run: their effects come from the local environment.
Every program runs in its own session, and its whole process group is killed when it is done with.
"""

from __future__ import annotations

import collections
import contextlib
import fnmatch
import gzip
import hashlib
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

from sagedock.dockerfile import CopyStep, ImageSpec, parse_dockerfile

Log = Callable[[str], None]

IMAGE_FILE = "image.json"
FAILURE_REASON_LIMIT = 1024
PING_LIMIT = 2.0  # SageMaker: /ping must answer within 2 s
INVOCATION_LIMIT = 60.0  # SageMaker: /invocations must answer within 60 s
CHANNEL_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Variables a program may need from this machine; the image's own environment replaces the rest.
PASSED_THROUGH = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "USER", "LOGNAME")


class ContractError(Exception):
    """The image cannot be built or its program cannot be started; the message says why."""


# ---------------------------------------------------------------- building an image into a directory


@dataclass(frozen=True)
class LocalImage:
    """An image built into a directory: its files below `root`, what the Dockerfile said, its digest."""

    root: Path
    spec: ImageSpec
    digest: str
    notes: list[str] = field(default_factory=list)

    def host_path(self, image_path: str) -> Path:
        """Where an image-absolute path lives on this machine."""
        return self.root / image_path.lstrip("/")


class _DockerIgnore:
    """The .dockerignore rules of a build context (last matching rule wins; `!` re-includes)."""

    def __init__(self, rules: list[tuple[bool, str]]) -> None:
        self.rules = rules

    @classmethod
    def load(cls, context: Path) -> _DockerIgnore:
        path = context / ".dockerignore"
        rules: list[tuple[bool, str]] = []
        if path.is_file():
            for raw in path.read_text(encoding="utf-8").splitlines():
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                negate = line.startswith("!")
                pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
                rules.append((negate, pattern))
        return cls(rules)

    def ignored(self, relative: str) -> bool:
        """Whether a context-relative posix path (or a directory above it) is excluded."""
        result = False
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for negate, pattern in self.rules:
            regex = _glob_regex(pattern)
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                result = not negate
        return result


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: `*` within a segment, `**` across segments."""
    parts = [".*" if part == "**" else fnmatch.translate(part)[4:-3] for part in pattern.split("/")]
    return re.compile("/".join(parts).replace(".*/", "(?:.*/)?"))


def _make_writable(path: Path) -> None:
    for directory, _, _ in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(directory, 0o755)  # noqa: S103 - the owner's own scratch tree


def _rmtree(path: Path) -> None:
    """Remove a tree, read-only parts included."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        _make_writable(path)
        shutil.rmtree(path)


class _Builder:
    """Lays out the files of every stage, then keeps the last stage's tree as the image root."""

    def __init__(self, context: Path, spec: ImageSpec, work: Path) -> None:
        self.context = context
        self.spec = spec
        self.work = work
        self.ignore = _DockerIgnore.load(context)
        self.notes: list[str] = []

    def build(self) -> Path:
        for stage in self.spec.stages:
            tree = self.work / str(stage.index)
            if stage.base_stage is not None:
                shutil.copytree(self.work / str(stage.base_stage), tree, symlinks=True)
            else:
                tree.mkdir(parents=True)
            for step in stage.copies:
                self.copy(step, tree)
            (tree / stage.workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        last = self.spec.stages[-1]
        if last.run_steps:
            self.notes.append(
                f"{last.run_steps} RUN step(s) of the final stage not run: their effects come from "
                "the local environment"
            )
        if last.user:
            self.notes.append(f"USER {last.user} ignored: the programs run as the current user")
        return self.work / str(last.index)

    def _ran_anything(self, stage_index: int) -> bool:
        stage = self.spec.stages[stage_index]
        if stage.run_steps:
            return True
        return stage.base_stage is not None and self._ran_anything(stage.base_stage)

    def copy(self, step: CopyStep, tree: Path) -> None:
        if step.chown:
            self.notes.append(
                f"line {step.line}: --chown={step.chown} ignored (files keep the current owner)"
            )
        for source in step.sources:
            if step.from_stage is not None:
                stage_index = int(step.from_stage)
                matches = self._stage_matches(stage_index, source, step)
                if not matches:
                    stage = self.spec.stages[stage_index]
                    label = stage.name or str(stage_index)
                    if self._ran_anything(stage_index):
                        self.notes.append(
                            f"line {step.line}: {source} from stage {label} comes from its RUN steps; "
                            "taken from the local environment"
                        )
                        continue
                    raise ContractError(
                        f"line {step.line}: COPY --from={label} {source}: no such path in that stage"
                    )
            else:
                matches = self._context_matches(source, step)
                if not matches:
                    raise ContractError(
                        f"line {step.line}: {step.instruction} {source}: no such file in the build context"
                    )
            for match in matches:
                self._place(match, step, tree, several=len(step.sources) > 1 or len(matches) > 1)

    def _stage_matches(self, stage_index: int, source: str, step: CopyStep) -> list[tuple[Path, str | None]]:
        base = self.work / str(stage_index)
        relative = os.path.normpath(source.lstrip("/"))
        if relative.startswith(".."):
            raise ContractError(f"line {step.line}: {source} leaves the stage's root")
        return [(path, None) for path in _glob(base, relative)]

    def _context_matches(self, source: str, step: CopyStep) -> list[tuple[Path, str | None]]:
        relative = os.path.normpath(source.lstrip("/"))
        if relative == ".." or relative.startswith("../"):
            raise ContractError(f"line {step.line}: {step.instruction} {source}: outside the build context")
        matches: list[tuple[Path, str | None]] = []
        for path in _glob(self.context, relative):
            rel = path.relative_to(self.context).as_posix()
            if rel == "." or not self.ignore.ignored(rel):
                matches.append((path, "" if rel == "." else rel))
        return matches

    def _place(self, match: tuple[Path, str | None], step: CopyStep, tree: Path, *, several: bool) -> None:
        source, context_rel = match
        target = tree / step.dest.lstrip("/")
        mode = int(step.chmod, 8) if step.chmod else None
        if source.is_dir():
            self._copy_dir(source, target, context_rel, mode)
            return
        if step.instruction == "ADD" and tarfile.is_tarfile(source):
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(source) as archive:
                archive.extractall(target, filter="data")
            return
        if step.dest.endswith("/") or several or target.is_dir():
            target = target / source.name
        _copy_file(source, target, mode)

    def _copy_dir(self, source: Path, target: Path, context_rel: str | None, mode: int | None) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for directory, dirnames, filenames in os.walk(source):
            here = Path(directory)
            relative_dir = here.relative_to(source)
            for name in sorted(dirnames):
                if self._skipped(context_rel, relative_dir / name):
                    dirnames.remove(name)
                    continue
                (target / relative_dir / name).mkdir(parents=True, exist_ok=True)
                if mode is not None:
                    os.chmod(target / relative_dir / name, mode)
            for name in sorted(filenames):
                if not self._skipped(context_rel, relative_dir / name):
                    _copy_file(here / name, target / relative_dir / name, mode)

    def _skipped(self, context_rel: str | None, inner: Path) -> bool:
        if context_rel is None:
            return False
        relative = (Path(context_rel) / inner).as_posix() if context_rel else inner.as_posix()
        return self.ignore.ignored(relative)


def _glob(base: Path, relative: str) -> list[Path]:
    if relative == ".":
        return [base]
    if any(char in relative for char in "*?["):
        return sorted(base.glob(relative))
    path = base / relative
    return [path] if path.exists() or path.is_symlink() else []


def _copy_file(source: Path, target: Path, mode: int | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.is_file():
        target.unlink()
    if source.is_symlink() and not source.exists():
        os.symlink(os.readlink(source), target)
    else:
        shutil.copy2(source, target)
    if mode is not None:
        os.chmod(target, mode)


def _digest(root: Path, spec: ImageSpec) -> str:
    """sha256 over the spec and every path, mode and content below the root."""
    digest = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode())
    entries = sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix())
    for path in entries:
        info = path.lstat()
        relative = path.relative_to(root).as_posix()
        if stat.S_ISLNK(info.st_mode):
            content = "link:" + os.readlink(path)
        elif stat.S_ISDIR(info.st_mode):
            content = "dir"
        else:
            content = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
        digest.update(f"{relative}\0{stat.S_IMODE(info.st_mode):o}\0{content}\n".encode())
    return "sha256:" + digest.hexdigest()


def build_local_image(
    context: Path,
    dest: Path,
    dockerfile: str = "Dockerfile",
    build_args: Mapping[str, str] | None = None,
) -> LocalImage:
    """Build the image of `context` into `dest` (its files in dest/root, its spec in dest/image.json)."""
    context = context.resolve()
    dockerfile_path = context / dockerfile
    if not dockerfile_path.is_file():
        raise ContractError(f"no {dockerfile} in {context}")
    spec = parse_dockerfile(dockerfile_path.read_text(encoding="utf-8"), build_args)
    dest.mkdir(parents=True, exist_ok=True)
    work = dest / ".stages"
    root = dest / "root"
    for stale in (work, root):
        _rmtree(stale)
    builder = _Builder(context, spec, work)
    built = builder.build()
    built.rename(root)
    _rmtree(work)
    image = LocalImage(root=root.resolve(), spec=spec, digest=_digest(root, spec), notes=builder.notes)
    record = {"digest": image.digest, "spec": spec.to_dict(), "notes": image.notes}
    (dest / IMAGE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return image


def load_local_image(dest: Path) -> LocalImage:
    """Re-open an image that `build_local_image` built into `dest`."""
    try:
        record = json.loads((dest / IMAGE_FILE).read_text(encoding="utf-8"))
        spec = ImageSpec.from_dict(record["spec"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ContractError(f"no image built in {dest}: {exc}") from exc
    return LocalImage(
        root=(dest / "root").resolve(), spec=spec, digest=record["digest"], notes=record["notes"]
    )


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
    _rmtree(model_dir)
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
    return text[:FAILURE_REASON_LIMIT] if text.strip() else None


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
    if code != 0:
        reason = _read_failure(opt_ml)
        if reason is None:
            last = " | ".join(line for line in list(running.tail)[-5:] if line.strip())
            reason = f"train {_describe_exit(code)} without writing /opt/ml/output/failure"
            reason = f"{reason}; last output: {last}"[:FAILURE_REASON_LIMIT] if last else reason
        return TrainOutcome(False, code, reason)
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
        _make_writable(self._model_dir)
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
    return {str(key): _hyperparameter_string(value) for key, value in raw.items()}


def _hyperparameter_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
        _rmtree(path)
