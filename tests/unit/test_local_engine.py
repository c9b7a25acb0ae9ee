"""Engine detection: docker via DOCKER_HOST or an answering socket, then podman, else process mode."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagedock.local.engine import Engine, EngineUnavailable, detect, with_registry
from sagedock.local.hostpip import CA_BUNDLE_IN_BUILD, build_context


def _tool(bin_dir: Path, name: str, code: int, stderr: str = "") -> None:
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit {code}\n")
    script.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    return path


def _which(bin_dir: Path):  # type: ignore[no-untyped-def]
    return lambda name: shutil.which(name, path=str(bin_dir))


@pytest.fixture
def docker_socket(tmp_path: Path) -> Iterator[Path]:
    """A unix socket that answers GET /_ping as the Docker API does."""
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    server.close()


def test_nothing_installed_is_process_mode_saying_why(bin_dir: Path, tmp_path: Path) -> None:
    engine = detect(env={}, which=_which(bin_dir), socket_path=tmp_path / "none.sock")
    assert engine == Engine("process", None, "no docker daemon; podman is not installed")
    assert not engine.containers


def test_podman_that_answers_is_chosen_when_no_docker_daemon(bin_dir: Path, tmp_path: Path) -> None:
    _tool(bin_dir, "podman", 0)
    engine = detect(env={}, which=_which(bin_dir), socket_path=tmp_path / "none.sock")
    assert engine.name == "podman" and engine.command == str(bin_dir / "podman")
    assert engine.describe() == "engine: podman (podman info answered; no docker daemon)"


def test_podman_that_fails_leaves_process_mode_with_its_error(bin_dir: Path, tmp_path: Path) -> None:
    _tool(bin_dir, "podman", 125, "cannot set up namespace")
    engine = detect(env={}, which=_which(bin_dir), socket_path=tmp_path / "none.sock")
    assert engine.name == "process"
    assert engine.reason == "no docker daemon; podman info failed (cannot set up namespace)"


def test_docker_host_that_answers_wins_over_podman(bin_dir: Path, tmp_path: Path) -> None:
    _tool(bin_dir, "docker", 0)
    _tool(bin_dir, "podman", 0)
    env = {"DOCKER_HOST": "tcp://127.0.0.1:2375"}
    engine = detect(env=env, which=_which(bin_dir), socket_path=tmp_path / "none.sock")
    assert engine.name == "docker" and engine.env == env
    assert engine.reason == "the daemon at DOCKER_HOST=tcp://127.0.0.1:2375 answered"


def test_docker_host_that_does_not_answer_falls_back_to_podman(bin_dir: Path, tmp_path: Path) -> None:
    _tool(bin_dir, "docker", 1, "Cannot connect to the Docker daemon")
    _tool(bin_dir, "podman", 0)
    engine = detect(
        env={"DOCKER_HOST": "unix:///nowhere"}, which=_which(bin_dir), socket_path=tmp_path / "none.sock"
    )
    assert engine.name == "podman"
    assert (
        "DOCKER_HOST=unix:///nowhere does not answer (Cannot connect to the Docker daemon)" in engine.reason
    )


def test_docker_socket_that_answers_ping_is_docker(bin_dir: Path, docker_socket: Path) -> None:
    _tool(bin_dir, "docker", 0)
    engine = detect(env={}, which=_which(bin_dir), socket_path=docker_socket)
    assert engine.name == "docker" and engine.reason == f"the docker daemon answered on {docker_socket}"


def test_a_socket_file_nobody_listens_on_is_no_daemon(bin_dir: Path, tmp_path: Path) -> None:
    dead = tmp_path / "dead.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(dead))
    listener.close()  # the file stays, nothing answers
    _tool(bin_dir, "docker", 0)
    assert detect(env={}, which=_which(bin_dir), socket_path=dead).name == "process"


def test_explicit_choices(bin_dir: Path, tmp_path: Path) -> None:
    none = tmp_path / "none.sock"
    _tool(bin_dir, "podman", 0)
    assert detect("process", env={}, which=_which(bin_dir)).name == "process"
    assert detect("podman", env={}, which=_which(bin_dir), socket_path=none).name == "podman"
    with pytest.raises(EngineUnavailable, match="--engine docker: no docker daemon"):
        detect("docker", env={}, which=_which(bin_dir), socket_path=none)
    with pytest.raises(EngineUnavailable, match="unknown engine 'kubernetes'"):
        detect("kubernetes", env={})
    (bin_dir / "podman").unlink()
    with pytest.raises(EngineUnavailable, match="--engine podman: podman is not installed"):
        detect("podman", env={}, which=_which(bin_dir), socket_path=none)


def test_build_gets_the_host_pip_config_with_its_paths_read_only(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    index = tmp_path / "pypi" / "simple"
    index.mkdir(parents=True)
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    site = tmp_path / "pip.conf"
    site.write_text(f"[global]\ncert = {ca}\nextra-index-url = file://{index} file:///gone/simple\n")
    env = {"PIP_FIND_LINKS": str(wheels), "PIP_DEFAULT_TIMEOUT": "180", "PIP_CONSTRAINT": "/gone/c.txt"}
    mounts = build_context(tmp_path / "ctx", files=(site,), env=env)
    written = (tmp_path / "ctx" / "pip.conf").read_text()
    assert f"cert = {CA_BUNDLE_IN_BUILD}" in written
    assert f"extra-index-url = file://{index}\n" in written  # the missing index is dropped
    assert f"find-links = {wheels}" in written and "default-timeout = 180" in written
    assert "constraint" not in written  # names a file that does not exist
    pairs = [mounts[i + 1] for i in range(0, len(mounts), 2)]
    assert f"{ca}:{CA_BUNDLE_IN_BUILD}:ro" in pairs
    assert f"{wheels}:{wheels}:ro" in pairs and f"{index.parent}:{index.parent}:ro" in pairs
    assert f"{tmp_path / 'ctx' / 'pip.conf'}:/etc/pip.conf:ro" in pairs


def test_container_mode_without_a_registry_program_falls_back_or_refuses() -> None:
    podman = Engine("podman", "/usr/bin/podman", "podman info answered")
    assert with_registry(podman, "auto", "/usr/bin/docker-registry") is podman
    fallback = with_registry(podman, "auto", None)
    assert fallback.name == "process" and not fallback.containers
    assert (
        fallback.reason
        == "podman answered but docker-registry is not installed (Debian: apt-get install docker-registry)"
    )
    with pytest.raises(EngineUnavailable, match="--engine podman: docker-registry is not installed"):
        with_registry(podman, "podman", None)
    process = Engine("process", None, "asked for with --engine process")
    assert with_registry(process, "process", None) is process
