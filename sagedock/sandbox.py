"""Process mode's sandbox, host side: whether one is possible here, what it mounts, the bridge to its 8080.

Each program (a training job's `train`, an endpoint's `serve`, the contract check's runs) gets Linux mount,
network and PID namespaces of its own (sagedock/sandbox_init.py sets them up), plus a user namespace when
not run as root: /opt/ml (the job's or endpoint's own directory) and the image's COPY/WORKDIR destinations
at their real paths, its own /tmp, /var/tmp, /dev/shm, /var/log and /run (tmpfs; /var/log and /run keep the
host's and the image's directories, empty), copy-on-write views of the host's /var/lib and /var/cache (its
writes there stay in the sandbox), and its own loopback where port 8080 is its own. The local cloud reaches a
serve's 8080 through a bridge: a host loopback TCP port relayed to a unix socket in the sandbox's directory,
relayed inside to 127.0.0.1:8080. Where no sandbox is possible, programs run as before, and that is said
once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagedock.image import LocalImage
from sagedock.sandbox_init import relay

log = logging.getLogger("sagedock.sandbox")

INIT = Path(__file__).with_name("sandbox_init.py")
SERVE_PORT = 8080
SOCKET_NAME = "8080.sock"
NOT_ISOLATED = (
    "programs share this machine's /tmp, /var/log, network and ports (8080 is not theirs), /opt/ml is not "
    "at its real path (SAGEDOCK_OPT_ML says where it is) and image paths are mapped below the image's root"
)
# Paths SageMaker's container gives the program anew: never bound from the image or the host.
_FRESH = ("/opt/ml", "/proc", "/dev", "/sys")


@dataclass(frozen=True)
class Support:
    """Whether programs can be sandboxed here, with a user namespace or as root, and why not."""

    available: bool
    user_namespace: bool = False
    reason: str = ""

    def describe(self) -> str:
        """The one line `local up` prints in process mode: the sandbox is on, or what is not isolated."""
        if not self.available:
            return f"sandbox: off ({self.reason}): {NOT_ISOLATED}"
        who = "a user namespace mapping this user to root" if self.user_namespace else "as root"
        return (
            f"sandbox: on (mount, network and PID namespaces, {who}): each program has /opt/ml and the "
            f"image's files at their real paths, its own /tmp, /var/log and /run, copy-on-write /var/lib "
            f"and /var/cache, and a loopback of its own with port 8080"
        )


_support: Support | None = None
_support_lock = threading.Lock()


def support(*, said: bool = False) -> Support:
    """Whether this machine allows a sandbox (found once per process). When it does not, that is logged
    once, at the first call, unless that caller says so itself (`said`: `local up` prints `describe()`)."""
    global _support
    with _support_lock:
        if _support is None:
            _support = _probe()
            if not _support.available and not said:
                log.warning("process mode without a sandbox (%s): %s", _support.reason, NOT_ISOLATED)
        return _support


def _probe() -> Support:
    if sys.platform != "linux":
        return Support(False, reason=f"namespaces are Linux's, this is {sys.platform}")
    if os.environ.get("SAGEDOCK_SANDBOX", "").lower() in ("0", "off", "no"):
        return Support(False, reason="SAGEDOCK_SANDBOX=off")
    user = os.geteuid() != 0
    directory = Path(tempfile.mkdtemp(prefix="sagedock-sandbox-probe-"))
    try:
        command = prepare(directory, mounts=[tmpfs("/tmp")], argv=["/bin/true"], env={}, cwd="/", user=user)
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return Support(False, reason=f"a sandbox could not be started: {exc}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return Support(
            False, reason=said.removeprefix("sagedock sandbox: ") + (" (as a user)" if user else "")
        )
    return Support(True, user_namespace=user)


# ---------------------------------------------------------------- what the sandbox mounts


def bind(target: str, source: Path, *, readonly: bool = False) -> dict[str, Any]:
    """A host path shown at `target` inside."""
    return {"target": target, "kind": "bind", "source": str(source), "readonly": readonly}


def tmpfs(target: str, *, mode: str = "1777", skeleton: tuple[str, ...] = ()) -> dict[str, Any]:
    """A fresh tmpfs at `target`, holding the directory trees (directories only) of `skeleton`."""
    return {"target": target, "kind": "tmpfs", "mode": mode, "skeleton": list(skeleton)}


def overlay(target: str) -> dict[str, Any]:
    """The host's directory at `target`, copy-on-write: the program reads the host's files and its writes
    stay in the sandbox. Where the kernel allows no overlay, a tmpfs holding the host's directories of
    the first level, empty (so /var/lib/nginx exists and nginx makes its temporary directories there)."""
    return {
        "target": target,
        "kind": "overlay",
        "lower": target,
        "mode": "755",
        "skeleton": [target],
        "depth": 1,
    }


def image_binds(image: LocalImage) -> list[dict[str, Any]]:
    """The image's COPY and WORKDIR destinations at their real paths, merged with the host's directories
    as image layers are (a destination directory the host also has keeps the host's other entries)."""
    workdir = image.spec.workdir or "/"
    destinations = {posixpath.normpath(posixpath.join(workdir, copy.dest)) for copy in image.spec.copies} | {
        posixpath.normpath(workdir)
    }
    found: dict[str, Path] = {}
    for destination in sorted(destinations):
        _merge(image, destination, found)
    return [bind(path, source) for path, source in sorted(found.items())]


def _merge(image: LocalImage, path: str, found: dict[str, Path]) -> None:
    if any(path == fresh or path.startswith(fresh + "/") for fresh in _FRESH):
        return
    if any(path.startswith(done.rstrip("/") + "/") for done in found):
        return
    source = image.host_path(path)
    if not os.path.lexists(source):
        return
    host = Path(path)
    if path == "/" or (
        source.is_dir() and not source.is_symlink() and host.is_dir() and not host.is_symlink()
    ):
        for child in sorted(source.iterdir()):
            _merge(image, posixpath.join(path, child.name), found)
    else:
        found[path] = source


def environment_binds(emptied: Iterable[str]) -> list[dict[str, Any]]:
    """The Python environment programs run with (process mode runs them on this host's interpreter and
    packages), bound back read-only where it lies under one of the `emptied` directories (the sandbox's
    tmpfs mounts): a checkout and its virtualenv under /tmp, as CI jobs often have them."""
    directories = tuple(emptied)  # read once per prefix
    prefixes = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    hidden = sorted(
        {
            os.path.realpath(path)
            for path in prefixes
            if any(os.path.realpath(path).startswith(directory + "/") for directory in directories)
        }
    )
    outermost = [path for path in hidden if not any(path.startswith(other + "/") for other in hidden)]
    return [bind(path, Path(path), readonly=True) for path in outermost]


def program_mounts(image: LocalImage, opt_ml: Path, *, serving: bool) -> list[dict[str, Any]]:
    """Everything a program's sandbox mounts, in the order it is placed (a parent before its children)."""
    emptied = [
        tmpfs("/tmp"),
        tmpfs("/var/tmp"),
        tmpfs("/dev/shm"),
        tmpfs("/var/log", mode="755", skeleton=("/var/log", str(image.host_path("/var/log")))),
        tmpfs("/run", mode="755", skeleton=("/run", str(image.host_path("/run")))),  # pid files, locks
        overlay("/var/lib"),  # packages' state: nginx's temporary directories, ...
        overlay("/var/cache"),
    ]
    mounts = [
        *emptied,
        *environment_binds([mount["target"] for mount in emptied]),
        *image_binds(image),
        bind("/opt/ml", opt_ml),
    ]
    if serving:  # as SageMaker hosting mounts it
        mounts.append(bind("/opt/ml/model", opt_ml / "model", readonly=True))
    return mounts


def prepare(
    directory: Path,
    *,
    mounts: list[dict[str, Any]],
    argv: list[str],
    env: Mapping[str, str],
    cwd: str,
    user: bool | None = None,
    bridge: bool = False,
) -> list[str]:
    """Write the sandbox's spec into `directory` (its own, in the state dir); the command that runs it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "root").mkdir(exist_ok=True)
    spec = {
        "root": str((directory / "root").resolve()),
        "mounts": mounts,
        "argv": argv,
        "env": dict(env),
        "cwd": cwd,
        "user": os.geteuid() != 0 if user is None else user,
        "bridge": str((directory / SOCKET_NAME).resolve()) if bridge else None,
        "port": SERVE_PORT,
    }
    (directory / "sandbox.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return [sys.executable, str(INIT), str(directory / "sandbox.json")]


# ---------------------------------------------------------------- the bridge to a serve's 8080


class Bridge:
    """A loopback TCP port on the host; each connection is relayed to the sandbox's unix socket."""

    def __init__(self, directory: Path, port: int) -> None:
        # The socket by a short name: a unix socket path holds at most 107 bytes, a state dir's may be longer.
        self._directory = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        self._path = f"/proc/self/fd/{self._directory}/{SOCKET_NAME}"
        self._listener = socket.create_server(("127.0.0.1", port), backlog=64)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, name=f"bridge-{self.port}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            inner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                inner.connect(self._path)
            except OSError:
                inner.close()
                client.close()  # the sandbox is not listening (yet, or any more): the connection ends
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=relay, args=(client, inner), daemon=True).start()

    def close(self) -> None:
        """Stop listening (connections in flight end with the sandbox)."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)
        os.close(self._directory)
