"""Inside a process-mode sandbox: namespaces, a file system view, a loopback, the program, the 8080 bridge.

Run as `python -m sagedock.sandbox_init SPEC.json` (sagedock.sandbox writes the spec and starts it). Python
3.11 has no os.unshare, so the kernel calls go through libc with ctypes. The keeper (this process) enters
new mount, network and PID namespaces (and a user namespace when not root, mapping the caller to root),
then forks the sandbox's init, PID 1 of the new PID namespace. The init makes its mounts private, brings up
its own loopback, builds a root on a tmpfs (every top-level entry of the host's / bound in, then the spec's
mounts: /opt/ml, the image's files, tmpfs for /tmp, /var/log and /run, copy-on-write views of /var/lib
and /var/cache), chroots into it and runs the program.
When the program exits the init exits, and the kernel kills whatever else runs in the namespace: no
process outlives its sandbox. The keeper forwards stop signals to the init, which forwards them to the
program, and exits as the program did. Only the standard library: this starts once per program.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
MS_UNBINDABLE, MS_PRIVATE = 1 << 17, 1 << 18
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP, IFF_RUNNING = 0x1, 0x40
SETUP_FAILED = 125  # as `docker run` exits when the container cannot be started
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    """The sandbox could not be set up; the message says which step and why."""


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(code)} (errno {errno.errorcode.get(code, code)})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def encode(value: str | None) -> bytes | None:
        return value.encode() if value is not None else None

    _check(
        _libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)),
        f"mount {source or fstype or ''} on {target}",
    )


def enter_namespaces(user: bool) -> None:
    """Enter new mount, network and PID namespaces (the PID one holds this process's next child)."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | (CLONE_NEWUSER if user else 0)
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")
    if user:  # the caller is root inside, and only itself: no other id is mapped
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


def loopback_up() -> None:
    """A new network namespace has only `lo`, and it is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP | IFF_RUNNING))


# ---------------------------------------------------------------- the file system view


class RootBuilder:
    """A new root on a tmpfs: the host's / bound entry by entry, then mounts placed at their paths.

    A mount point that does not exist is never created on the host: the directory that should hold it is
    replaced (in this mount namespace only) by a tmpfs holding bindings of its host entries, and the mount
    point is made there.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self._owned = {"/"}  # sandbox directories on our own tmpfs, where new entries may be made
        self._sources: dict[str, str] = {}  # sandbox path of a bind mount -> its host source
        self._overlays: list[str] = []  # sandbox paths of copy-on-write views of the host's directories

    def start(self) -> None:
        """Mount the root tmpfs (unbindable: recursive bindings of the host's / leave it out) and fill it."""
        _mount("tmpfs", self.root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
        _mount(None, self.root, None, MS_UNBINDABLE)
        self._mirror("/", self.root, skip={"proc"})
        os.mkdir(self._at("/proc"), 0o555)
        try:
            _mount("proc", self._at("/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except SetupError:  # where a fresh proc is refused, the host's (its PIDs are the host's)
            _mount("/proc", self._at("/proc"), None, MS_BIND | MS_REC)

    def _at(self, path: str) -> str:
        return self.root + path if path != "/" else self.root

    def _host(self, path: str) -> str:
        """The host path the sandbox path `path` shows."""
        for target in sorted(self._sources, key=len, reverse=True):
            if path == target or path.startswith(target.rstrip("/") + "/"):
                return self._sources[target] + path[len(target) :]
        return path

    def _mirror(self, host_dir: str, into: str, skip: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        try:
            entries = list(os.scandir(host_dir))
        except OSError:
            return
        for entry in entries:
            if entry.name in skip:
                continue
            target = os.path.join(into, entry.name)
            with contextlib.suppress(FileNotFoundError):
                if entry.is_symlink():
                    os.symlink(os.readlink(entry.path), target)
                elif entry.is_dir(follow_symlinks=False):
                    os.mkdir(target)
                    _mount(entry.path, target, None, MS_BIND | MS_REC)
                else:
                    Path(target).touch()
                    _mount(entry.path, target, None, MS_BIND)

    def _own(self, path: str) -> None:
        """Make the sandbox directory `path` one of ours (new entries may be made in it)."""
        if path in self._owned:
            return
        if any(path.startswith(overlay + "/") for overlay in self._overlays):  # writes stay in its upper
            os.makedirs(self._at(path), exist_ok=True)
        elif not os.path.lexists(self._at(path)):
            self._own(os.path.dirname(path))
            os.mkdir(self._at(path))
        else:
            host = self._host(path)
            mode = os.stat(self._at(path)).st_mode & 0o7777
            _mount("tmpfs", self._at(path), "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode:o}")
            self._mirror(host, self._at(path))
        self._owned.add(path)

    def place(self, mount: dict[str, Any]) -> None:
        """Put one mount of the spec at its path: a bind of a host path (read-only if asked), a tmpfs, or an
        overlay (copy-on-write) of a host directory."""
        target: str = mount["target"]
        is_dir = mount["kind"] in ("tmpfs", "overlay") or os.path.isdir(mount["source"])
        at = self._at(target)
        exists = os.path.isdir(at) if is_dir else os.path.isfile(at) and not os.path.islink(at)
        if not exists:
            self._own(os.path.dirname(target))
            if os.path.lexists(at):  # something else of the host's is there: our tmpfs entry replaces it
                self._drop(at)
            os.mkdir(at) if is_dir else Path(at).touch()
        if mount["kind"] == "overlay" and self._overlay(mount["lower"], at):
            self._overlays.append(target)
            self._owned.add(target)
            return
        if mount["kind"] in ("tmpfs", "overlay"):  # an overlay the kernel refuses: its directories, empty
            _mount("tmpfs", at, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mount.get('mode', '1777')}")
            for skeleton in mount.get("skeleton", []):
                _copy_directories(skeleton, at, mount.get("depth"))
            self._owned.add(target)
            return
        _mount(mount["source"], at, None, MS_BIND | MS_REC)
        self._sources[target] = mount["source"]
        self._owned.discard(target)
        if mount.get("readonly"):
            locked = os.statvfs(at).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)  # ST_* equal MS_* here
            _mount(None, at, None, MS_REMOUNT | MS_BIND | MS_RDONLY | locked)

    def _overlay(self, lower: str, at: str) -> bool:
        """The host's `lower` at `at`, copy-on-write: reads see the host's files, writes stay in a tmpfs of
        the sandbox's. False where the kernel refuses (no overlayfs, or none in this user namespace)."""
        if not os.path.isdir(lower):
            return False
        scratch = os.path.join(os.path.dirname(self.root), f"overlay-{len(self._overlays)}")
        os.makedirs(scratch, exist_ok=True)
        _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
        upper, info = os.path.join(scratch, "upper"), os.stat(lower)
        os.mkdir(upper)
        os.chmod(upper, info.st_mode & 0o7777)  # the view's own directory as the host's
        with contextlib.suppress(OSError):
            os.chown(upper, info.st_uid, info.st_gid)
        os.mkdir(os.path.join(scratch, "work"))
        options = f"lowerdir={lower},upperdir={scratch}/upper,workdir={scratch}/work"
        for extra in ("", ",userxattr"):  # userxattr: as a user namespace may mount it
            with contextlib.suppress(SetupError):
                _mount("overlay", at, "overlay", MS_NOSUID | MS_NODEV, options + extra)
                return True
        return False

    @staticmethod
    def _drop(path: str) -> None:
        with contextlib.suppress(OSError):
            _libc.umount2(path.encode(), ctypes.c_int(2))  # MNT_DETACH: a file bound there
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        else:
            os.unlink(path)


def _copy_directories(source: str, into: str, depth: int | None = None) -> None:
    """The directory tree of `source` (directories only, with their modes and owners; `depth` levels of
    it, or all) inside `into`."""
    if not os.path.isdir(source):
        return
    for directory, children, _ in os.walk(source):
        relative = os.path.relpath(directory, source)
        if depth is not None and (relative.count(os.sep) + 1 if relative != "." else 0) >= depth:
            children.clear()
        target = os.path.normpath(os.path.join(into, relative))
        info = os.stat(directory)
        os.makedirs(target, exist_ok=True)
        os.chmod(target, info.st_mode & 0o7777)
        with contextlib.suppress(OSError):
            os.chown(target, info.st_uid, info.st_gid)


# ---------------------------------------------------------------- the 8080 bridge


def relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways between two connected sockets until both directions end; then close both."""

    def pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=pump, args=(b, a), daemon=True)
    other.start()
    pump(a, b)
    other.join()
    a.close()
    b.close()


def _serve_bridge(listener: socket.socket, port: int) -> None:
    """Each connection to the unix socket becomes one to 127.0.0.1:<port> on the sandbox's loopback."""
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            inner = socket.create_connection(("127.0.0.1", port))
        except OSError:
            client.close()  # nothing listens yet: the caller sees the connection end, as a refused one
            continue
        inner.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=relay, args=(client, inner), daemon=True).start()


# ---------------------------------------------------------------- keeper and init


def _init(spec: dict[str, Any], status: int) -> None:
    """PID 1 of the sandbox: set it up, run the program, report how it ended on `status`, exit."""
    code = SETUP_FAILED
    try:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        loopback_up()
        listener = None
        if spec.get("bridge"):  # bound before the root changes: the socket lives in the host's state dir
            os.chdir(os.path.dirname(spec["bridge"]))  # a relative name: a socket path is at most 107 bytes
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(os.path.basename(spec["bridge"]))
            listener.listen(64)
        builder = RootBuilder(spec["root"])
        builder.start()
        for mount in spec["mounts"]:
            builder.place(mount)
        os.chroot(spec["root"])
        os.chdir(spec.get("cwd") or "/")
        program = subprocess.Popen(spec["argv"], env=spec["env"], stdin=subprocess.DEVNULL)
    except (SetupError, OSError, subprocess.SubprocessError) as exc:
        print(f"sagedock sandbox: {exc}", file=sys.stderr, flush=True)
        os.write(status, str(code).encode())
        os._exit(code)
    for signum in FORWARDED:
        signal.signal(signum, lambda number, _: program.send_signal(number))
    if listener is not None:
        # The bridge's threads (and the relays they start, which inherit their mask) block the stop signals:
        # one delivered to them would wake no one, as Python runs handlers in the main thread only, and
        # that one sits in waitpid until a child ends.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        try:
            threading.Thread(target=_serve_bridge, args=(listener, int(spec["port"])), daemon=True).start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    while True:  # PID 1 reaps every orphan of the namespace until the program itself ends
        with contextlib.suppress(InterruptedError):
            pid, raw = os.waitpid(-1, 0)
            if pid == program.pid:
                code = -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)
                break
    os.write(status, str(code).encode())
    os._exit(0)  # the kernel now kills what is left in the namespace


def main(argv: list[str]) -> int:
    """The keeper: enter the namespaces, fork the init, forward signals, exit as the program did."""
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        enter_namespaces(bool(spec.get("user")))
    except (SetupError, OSError) as exc:
        print(f"sagedock sandbox: {exc}", file=sys.stderr, flush=True)
        return SETUP_FAILED
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        _libc.prctl(
            PR_SET_PDEATHSIG, int(signal.SIGKILL)
        )  # the keeper killed: the whole sandbox goes with it
        _init(spec, write)
    os.close(write)
    for signum in FORWARDED:
        signal.signal(signum, lambda number, _: os.kill(pid, number))
    while True:
        with contextlib.suppress(InterruptedError):
            os.waitpid(pid, 0)
            break
    with os.fdopen(read, "rb") as pipe:
        reported = pipe.read().decode() or str(SETUP_FAILED)
    code = int(reported)
    if code < 0:  # the program died of a signal: so does the keeper, and the caller sees it
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
