"""Process mode end to end with the classic SageMaker bring-your-own-container bundle, unchanged (nginx in
front of gunicorn and Flask, /opt/ml hard-coded, `nginx -c /opt/program/nginx.conf` on 8080, logs under
/var/log/nginx, gunicorn on /tmp/gunicorn.sock, channel `training`): it trains, deploys, predicts and
survives a canary update with both versions up, each in a sandbox of its own, and the host is as it was
afterwards (files, listening sockets, processes). Skips, saying why, where no sandbox is possible or nginx
is not installed."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from localcloud import (
    ROOT,
    LocalCloudProcess,
    classic_bundle,
    start_local_cloud,
    stop_local_cloud,
    wait_until,
)

from sagedock import sandbox

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

RUN_TIMEOUT = 300.0
SETOSA = b"5.1,3.5,1.4,0.2\n"
VIRGINICA = b"6.3,3.3,6.0,2.5\n"  # a tree of two leaves cannot tell it from versicolor
# v2: a canary update whose model differs from v1's, so each version's answer says which one answered
CANARY = """
[train]
hyperparameters = { max_leaf_nodes = 2 }
[deploy]
instance_type = "ml.t2.medium"
initial_instance_count = 2
[deploy.update]
strategy = "canary"
canary_percent = 50
wait_interval_seconds = 10
"""
# What the bundle's programs would write on the host if they were not sandboxed
WATCHED = (
    "/var/log/nginx",
    "/var/lib/nginx",
    "/opt/ml",
    "/opt/program",
    "/tmp/gunicorn.sock",
    "/tmp/nginx.pid",
    "/run/nginx.pid",
)


def _skip_reason() -> str | None:
    found = sandbox.support()
    if not found.available:
        return f"no process-mode sandbox here: {found.reason}"
    if shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        return "the classic bundle's serve runs nginx: apt-get install nginx-light"
    return None


# ---------------------------------------------------------------- the host, as seen from outside


def _files(paths: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    """Every entry below `paths` (recursively): its kind, mode, size, mtime and link target."""
    seen: dict[str, tuple[Any, ...]] = {}

    def note(path: str) -> None:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        link = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
        seen[path] = (stat.S_IFMT(info.st_mode), info.st_mode, info.st_size, info.st_mtime_ns, link)
        if stat.S_ISDIR(info.st_mode):
            for entry in sorted(os.listdir(path)):
                note(os.path.join(path, entry))

    for path in paths:
        note(path)
    return seen


def _listening(net: str = "/proc/net") -> dict[int, str]:
    """The listening sockets of a network namespace, by inode: `tcp:<port>` or `unix:<path>`."""
    found: dict[int, str] = {}
    for name in ("tcp", "tcp6"):
        with open(f"{net}/{name}") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    found[int(fields[9])] = f"tcp:{int(fields[1].rsplit(':', 1)[1], 16)}"
    with open(f"{net}/unix") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[3], 16) & 0x10000 and len(fields) > 7:  # __SO_ACCEPTCON: listening
                found[int(fields[6])] = f"unix:{fields[7]}"
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _tree(pid: int) -> dict[int, str]:
    """`pid` and all its descendants, each by its name."""
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            found[current] = Path(f"/proc/{current}/comm").read_text().strip()
        except OSError:
            continue
        todo += _children(current)
    return found


def _socket_inodes(pids: list[int]) -> set[int]:
    inodes: set[int] = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _named(*names: str) -> set[int]:
    """The processes of this machine's PID namespace running one of `names` (not those of containers,
    nor those of a sandbox: they end with it)."""
    found = set()
    ours = os.readlink("/proc/self/ns/pid")
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in names and os.readlink(comm.parent / "ns" / "pid") == ours:
                found.add(int(comm.parent.name))
        except OSError:
            continue
    return found


# ---------------------------------------------------------------- one serve sandbox, from outside


class Sandboxed:
    """An endpoint version's serve sandbox: its keeper process, its nginx and gunicorn, its bridge socket."""

    def __init__(self, keeper: int, spec: Path) -> None:
        self.keeper = keeper
        self.workdir = spec.parent.parent  # <endpoint work dir>/sandbox/sandbox.json
        self.processes = _tree(keeper)

    def first(self, name: str) -> int:
        return min(pid for pid, comm in self.processes.items() if comm == name)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """One request to the sandbox's own 8080, through its bridge socket (not through the endpoint)."""
        connection = http.client.HTTPConnection("sandbox", timeout=10)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        directory = os.open(self.workdir / "sandbox", os.O_RDONLY | os.O_DIRECTORY)
        try:  # by a short name, as the bridge does: a unix socket path holds at most 107 bytes
            sock.connect(f"/proc/self/fd/{directory}/{sandbox.SOCKET_NAME}")
        finally:
            os.close(directory)
        connection.sock = sock
        try:
            connection.request(method, path, body=body, headers={"Content-Type": "text/csv"})
            reply = connection.getresponse()
            return reply.status, reply.read()
        finally:
            connection.close()


def _started(pid: int) -> int | None:
    """When a process started (clock ticks since boot; None once it is gone): orders processes, tells a
    reused pid apart."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except OSError:
        return None


def _serve_sandboxes(cloud: LocalCloudProcess, endpoint: str) -> list[Sandboxed]:
    """The serve sandboxes of `endpoint` running now, oldest first (their keepers are local up's children)."""
    found = []
    for pid in _children(cloud.process.pid):
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        started = _started(pid)
        if started is None:
            continue
        spec = next((Path(w) for w in words if w.endswith("sandbox.json")), None)
        if spec is not None and spec.is_relative_to(cloud.state_dir / "work" / "endpoints" / endpoint):
            found.append((started, Sandboxed(pid, spec)))
    return [served for _, served in sorted(found, key=lambda pair: pair[0])]


def _submit(cloud: LocalCloudProcess, bundle: bytes, name: str) -> dict[str, Any]:
    run = cloud.wait_run(cloud.run_for_key("classic", cloud.upload("classic", bundle, name)), RUN_TIMEOUT)
    assert run["status"] == "SUCCEEDED", run.get("error")
    return run


def _predict(cloud: LocalCloudProcess, row: bytes) -> str:
    return cloud.api.invoke("classic", row, content_type="text/csv")[1].decode().strip()


# ---------------------------------------------------------------- the test


@pytest.fixture
def host_before() -> dict[str, Any]:
    """What the host has before the local cloud starts (the test skips where it cannot run)."""
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    return {"files": _files(WATCHED), "listening": _listening(), "named": _named("nginx", "gunicorn")}


def _canary_update(cloud: LocalCloudProcess, host_before: dict[str, Any]) -> None:
    """v2 comes up next to v1, each in a sandbox of its own, and the endpoint splits the traffic."""
    key = cloud.upload("classic", classic_bundle(CANARY), "v2")
    run_id = cloud.run_for_key("classic", key)
    stderr = cloud.state_dir / "local-up.stderr"
    wait_until(
        lambda: "endpoint classic: 50% of the traffic on" in stderr.read_text(),
        timeout=RUN_TIMEOUT,
        what="the canary step of the update",
    )
    old, new = _serve_sandboxes(cloud, "classic")
    answers = {_predict(cloud, VIRGINICA) for _ in range(6)}  # every other one to each version
    # Each version answers on its own 8080, through its own nginx to its own gunicorn and model
    assert new.request("GET", "/ping")[0] == 200
    assert new.request("POST", "/invocations", VIRGINICA) == (200, b"versicolor\n")
    assert old.request("POST", "/invocations", VIRGINICA) == (200, b"virginica\n")
    wait_until(  # its own nginx logged the pings (its access log is its stdout, the serve's log)
        lambda: "GET /ping HTTP/1.1" in (new.workdir / "serve.log").read_text(),
        timeout=30,
        what="the new serve's nginx to log its pings",
    )
    both = [old, new]
    assert all({"nginx", "gunicorn"} <= set(s.processes.values()) for s in both), [s.processes for s in both]
    networks = {os.readlink(f"/proc/{s.first('nginx')}/ns/net") for s in both}
    assert len(networks) == 2 and os.readlink("/proc/self/ns/net") not in networks
    sockets = set()
    for served in both:
        info = (Path(f"/proc/{served.first('gunicorn')}/root") / "tmp" / "gunicorn.sock").stat()
        assert stat.S_ISSOCK(info.st_mode)
        sockets.add((info.st_dev, info.st_ino))
        inside = set(_listening(f"/proc/{served.first('nginx')}/net").values())
        assert {"tcp:8080", "unix:/tmp/gunicorn.sock"} <= inside, inside
    assert len(sockets) == 2  # two /tmp/gunicorn.sock, one in each sandbox's own /tmp
    # Meanwhile the host has no new 8080 and no gunicorn socket of its own
    now = set(_listening().values())
    assert "tcp:8080" not in now - set(host_before["listening"].values())
    assert "unix:/tmp/gunicorn.sock" not in now
    assert answers == {"virginica", "versicolor"}, answers

    second = cloud.wait_run(run_id, RUN_TIMEOUT)
    assert second["status"] == "SUCCEEDED", second.get("error")
    assert _predict(cloud, VIRGINICA) == "versicolor" and _predict(cloud, SETOSA) == "setosa"
    assert [s.workdir for s in _serve_sandboxes(cloud, "classic")] == [new.workdir]  # v1 retired


def test_the_classic_bundle_unchanged_survives_a_canary_update_and_leaves_the_host_as_it_was(
    host_before: dict[str, Any], tmp_path: Path
) -> None:
    cloud = start_local_cloud(tmp_path, engine="process")
    try:
        said = (tmp_path / "local-up.stderr").read_text()
        assert "engine: process (" in said and said.count("sandbox: on") == 1, said
        s3 = cloud.aws("s3")
        for path in sorted((ROOT / "container" / "data").glob("*.csv")):
            s3.upload_file(str(path), cloud.contract["SAGEDOCK_DATA_BUCKET"], f"classic/training/{path.name}")
        first = _submit(cloud, classic_bundle(), "v1")
        assert list(first["manifest"]["train"]["channels"]) == ["training"], first["manifest"]
        assert _predict(cloud, SETOSA) == "setosa"
        assert _predict(cloud, VIRGINICA) == "virginica"
        tree = _tree(cloud.process.pid)
        born = {pid: _started(pid) for pid in tree}
        _canary_update(cloud, host_before)
        tree |= _tree(cloud.process.pid)
        born |= {pid: _started(pid) for pid in tree if pid not in born}
        assert {"nginx", "gunicorn"} <= set(tree.values()), tree
        held = _socket_inodes(list(tree))
        assert held & set(_listening()), "the local cloud listens on the host (its API, its bridges)"
    finally:
        stop_local_cloud(cloud)
    # No process of the local cloud is left, nor any new nginx or gunicorn
    alive = [pid for pid in tree if _started(pid) == born[pid]]  # the same process, not a reused pid
    assert alive == [], {pid: tree[pid] for pid in alive}
    left = _named("nginx", "gunicorn") - host_before["named"]
    assert not left, {pid: _cmdline(pid) for pid in left}
    # No socket it listened on is still open; no new listener of the host's is one of its kind
    now = _listening()
    assert not held & set(now), {inode: now[inode] for inode in held & set(now)}
    new = {now[inode] for inode in set(now) - set(host_before["listening"])}
    assert not [s for s in new if s == "tcp:8080" or "gunicorn" in s or str(tmp_path) in s], new
    # And no file of the host's changed: nginx's logs and state, /opt/ml, /opt/program, /tmp's socket and pid
    assert _files(WATCHED) == host_before["files"]


def test_local_up_without_a_sandbox_says_once_what_is_not_isolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGEDOCK_SANDBOX", "off")
    stop_local_cloud(start_local_cloud(tmp_path, engine="process"))
    said = (tmp_path / "local-up.stderr").read_text()
    assert said.count(f"sandbox: off (SAGEDOCK_SANDBOX=off): {sandbox.NOT_ISOLATED}") == 1, said
    assert "sandbox: on" not in said and "process mode without a sandbox" not in said
