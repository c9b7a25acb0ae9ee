"""Which container engine the local cloud uses (docker, podman, or none: process mode), and why."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHOICES = ("auto", "docker", "podman", "process")
DOCKER_SOCKET = Path("/var/run/docker.sock")
PROBE_TIMEOUT = 20.0  # `podman info` on a cold store takes a few seconds


class EngineUnavailable(Exception):
    """The engine asked for with --engine does not answer; the message says what was tried."""


@dataclass(frozen=True)
class Engine:
    """The chosen engine: its name, the CLI that drives it (None in process mode) and the reason."""

    name: str
    command: str | None
    reason: str
    env: Mapping[str, str] | None = None  # what the CLI needs to reach it (DOCKER_HOST)

    @property
    def containers(self) -> bool:
        """Whether images run as real containers."""
        return self.command is not None

    def describe(self) -> str:
        """The one line `local up` prints: `engine: podman (podman info answered; no docker daemon)`."""
        return f"engine: {self.name} ({self.reason})"


Which = Callable[[str], str | None]
Run = Callable[..., subprocess.CompletedProcess[str]]


def _docker_socket_answers(path: Path) -> bool:
    """GET /_ping on a Docker API unix socket answers OK."""
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn,
    ):
        conn.settimeout(2.0)
        conn.connect(str(path))
        conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
        return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]
    return False


def _answers(argv: list[str], run: Run, env: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Whether a probe command exits 0, and the last line it wrote to stderr otherwise."""
    try:
        done = run(
            argv,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            check=False,
            env={**os.environ, **(env or {})},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    lines = (done.stderr or "").strip().splitlines()
    return done.returncode == 0, lines[-1] if lines else f"exit code {done.returncode}"


def _docker(env: Mapping[str, str], which: Which, run: Run, socket_path: Path) -> Engine | str:
    """The docker engine when a daemon answers, else why not."""
    cli = which("docker")
    host = env.get("DOCKER_HOST", "")
    if host:
        if cli is None:
            return f"DOCKER_HOST={host} is set but there is no docker command"
        ok, why = _answers([cli, "version", "--format", "{{.Server.Version}}"], run, {"DOCKER_HOST": host})
        if ok:
            return Engine("docker", cli, f"the daemon at DOCKER_HOST={host} answered", {"DOCKER_HOST": host})
        return f"the daemon at DOCKER_HOST={host} does not answer ({why})"
    if not _docker_socket_answers(socket_path):
        return "no docker daemon"
    if cli is None:
        return f"a docker daemon answers on {socket_path} but there is no docker command"
    return Engine("docker", cli, f"the docker daemon answered on {socket_path}")


def _podman(which: Which, run: Run) -> Engine | str:
    cli = which("podman")
    if cli is None:
        return "podman is not installed"
    ok, why = _answers([cli, "info", "--format", "{{.Host.OCIRuntime.Name}}"], run)
    return Engine("podman", cli, "podman info answered") if ok else f"podman info failed ({why})"


def add_argument(parser: Any) -> None:
    """The `--engine` flag of `local up` and `demo`."""
    parser.add_argument(
        "--engine",
        choices=CHOICES,
        default=os.environ.get("SAGEDOCK_ENGINE", "auto"),
        help="run images as containers (docker, podman) or as local processes; auto: a docker daemon, "
        "else podman, else processes (default: $SAGEDOCK_ENGINE or auto)",
    )


def with_registry(engine: Engine, choice: str, registry: str | None) -> Engine:
    """Container mode also needs a registry program (ECR's data plane): without one, auto falls back to
    process mode saying so, and an engine asked for by name is an error."""
    if not engine.containers or registry is not None:
        return engine
    missing = "docker-registry is not installed (Debian: apt-get install docker-registry)"
    if choice == "auto":
        return Engine("process", None, f"{engine.name} answered but {missing}")
    raise EngineUnavailable(f"--engine {choice}: {missing}")


def detect(
    choice: str = "auto",
    *,
    env: Mapping[str, str] | None = None,
    which: Which = shutil.which,
    run: Run = subprocess.run,
    socket_path: Path = DOCKER_SOCKET,
) -> Engine:
    """The engine for `--engine choice`: auto prefers a docker daemon, then podman, then process mode."""
    env = os.environ if env is None else env
    if choice not in CHOICES:
        raise EngineUnavailable(f"unknown engine {choice!r}: one of {', '.join(CHOICES)}")
    if choice == "process":
        return Engine("process", None, "asked for with --engine process")
    if choice == "docker":
        found = _docker(env, which, run, socket_path)
        if isinstance(found, str):
            raise EngineUnavailable(f"--engine docker: {found}")
        return found
    if choice == "podman":
        found = _podman(which, run)
        if isinstance(found, str):
            raise EngineUnavailable(f"--engine podman: {found}")
        return found
    docker = _docker(env, which, run, socket_path)
    if isinstance(docker, Engine):
        return docker
    podman = _podman(which, run)
    if isinstance(podman, Engine):
        return Engine(podman.name, podman.command, f"{podman.reason}; {docker}")
    return Engine("process", None, f"{docker}; {podman}")
