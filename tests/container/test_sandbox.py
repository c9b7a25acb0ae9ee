"""The process-mode sandbox itself: own /tmp and /var/log, own 8080, /opt/ml at its real path, host untouched,
the whole process tree gone with it."""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagedock import sandbox
from sagedock.programs import free_port

pytestmark = pytest.mark.skipif(
    not sandbox.support().available, reason=f"no sandbox here: {sandbox.support().reason}"
)

SERVER = """
import http.server, os, sys
tag = sys.argv[1]
os.makedirs("/var/log/nginx", exist_ok=True)
open("/var/log/nginx/access.log", "w").write(tag)
open("/tmp/gunicorn.sock", "w").write(tag)
open("/opt/ml/seen", "w").write(tag)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (tag + " " + open("/tmp/gunicorn.sock").read()).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", 8080), Handler).serve_forever()
"""


class Started:
    """A program in a sandbox with its bridge."""

    def __init__(self, directory: Path, argv: list[str], opt_ml: Path) -> None:
        command = sandbox.prepare(
            directory,
            mounts=[
                sandbox.tmpfs("/tmp"),
                sandbox.tmpfs("/var/log", mode="755", skeleton=("/var/log",)),
                *sandbox.environment_binds(
                    ["/tmp", "/var/log"]
                ),  # this interpreter, should it live under /tmp
                sandbox.bind("/opt/ml", opt_ml),
            ],
            argv=argv,
            env={"PATH": os.environ["PATH"]},
            cwd="/",
            bridge=True,
        )
        self.proc = subprocess.Popen(command, start_new_session=True)
        self.bridge = sandbox.Bridge(directory, free_port())

    def get(self, deadline: float = 20) -> str:
        end = time.monotonic() + deadline
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.bridge.port, timeout=2)
                connection.request("GET", "/")
                return connection.getresponse().read().decode()
            except (OSError, http.client.HTTPException):
                if time.monotonic() > end or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(10)
        self.bridge.close()
        return code


@pytest.fixture
def host_files() -> Iterator[None]:
    watched = [Path("/tmp/gunicorn.sock"), Path("/var/log/nginx/access.log"), Path("/opt/ml")]
    before = {path: (path.exists(), path.stat().st_mtime_ns if path.exists() else None) for path in watched}
    yield
    after = {path: (path.exists(), path.stat().st_mtime_ns if path.exists() else None) for path in watched}
    assert after == before


def test_two_sandboxes_each_have_their_own_8080_tmp_and_opt_ml(tmp_path: Path, host_files: None) -> None:
    # Given two programs listening on 127.0.0.1:8080, writing /tmp, /var/log/nginx and /opt/ml
    started = []
    for tag in ("old", "new"):
        (tmp_path / tag / "opt_ml").mkdir(parents=True)
        argv = [sys.executable, "-c", SERVER, tag]
        started.append(Started(tmp_path / tag / "sandbox", argv, tmp_path / tag / "opt_ml"))
    try:
        # When both run at once
        answers = [program.get() for program in started]
        # Then each answers on its own 8080 from its own /tmp, and its /opt/ml is its own directory
        assert answers == ["old old", "new new"]
        assert (tmp_path / "old" / "opt_ml" / "seen").read_text() == "old"
        assert (tmp_path / "new" / "opt_ml" / "seen").read_text() == "new"
    finally:
        codes = [program.stop() for program in started]
    # And SIGTERM reached the program (its default action: the keeper reports that signal)
    assert codes == [-15, -15]


def test_the_whole_process_tree_goes_with_the_sandbox(tmp_path: Path) -> None:
    # Given a program that leaves a daemon behind (its own session, reparented: out of any process group)
    marker = f"sandbox-test-{uuid.uuid4().hex}"
    daemon = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(300)', '{marker}'])\n"
    )
    program = daemon + (
        "def daemon_started():\n"  # the daemon (PID 3 here) has become `python -c ... <marker>`
        "    try:\n"
        "        parts = open('/proc/3/cmdline').read().split(chr(0))\n"
        "    except OSError:\n"  # not forked yet
        "        return False\n"
        "    return len(parts) >= 2 and parts[-2] == sys.argv[1]\n"
        "deadline = time.monotonic() + 10\n"
        "while not daemon_started():\n"
        "    assert time.monotonic() < deadline\n"
        "    time.sleep(0.02)\n"
    )
    (tmp_path / "opt_ml").mkdir()
    command = sandbox.prepare(
        tmp_path / "sandbox",
        mounts=[sandbox.bind("/opt/ml", tmp_path / "opt_ml")],
        argv=[sys.executable, "-c", program, marker],
        env={"PATH": os.environ["PATH"]},
        cwd="/",
    )
    # When the program ends on its own
    done = subprocess.run(command, timeout=30, check=False)
    # Then it exited 0 and nothing it started is still running on this machine
    assert done.returncode == 0
    assert not [pid for pid in os.listdir("/proc") if pid.isdigit() and marker in _cmdline(pid)]


def test_a_program_that_fails_says_so_with_its_exit_status(tmp_path: Path) -> None:
    (tmp_path / "opt_ml").mkdir()
    command = sandbox.prepare(
        tmp_path / "sandbox",
        mounts=[sandbox.bind("/opt/ml", tmp_path / "opt_ml")],
        argv=[
            sys.executable,
            "-c",
            "import os; print(os.getcwd(), sorted(os.listdir('/opt/ml'))); raise SystemExit(3)",
        ],
        env={"PATH": os.environ["PATH"]},
        cwd="/opt/ml",
    )
    (tmp_path / "opt_ml" / "input").mkdir()
    done = subprocess.run(command, timeout=30, check=False, capture_output=True, text=True)
    assert done.returncode == 3
    assert done.stdout.strip() == "/opt/ml ['input']"


STATE_WRITER = """
import os, sys
marker = sys.argv[1]
print(sorted(os.listdir("/var/lib")))
os.makedirs(f"/var/lib/{marker}/body")  # as nginx makes its temporary directories in /var/lib/nginx
open(f"/var/cache/{marker}", "w").write("cached")
open(f"/run/{marker}.pid", "w").write(str(os.getpid()))
kept = os.path.isdir(f"/var/lib/{marker}/body") and os.path.isfile(f"/run/{marker}.pid")
print("written" if kept else "lost")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="as a user, the host's /var/lib is not writable anyway")
def test_a_program_reads_the_hosts_var_lib_and_its_writes_there_and_in_run_stay_in_the_sandbox(
    tmp_path: Path,
) -> None:
    # Given a program that lists /var/lib, then writes in /var/lib, /var/cache and /run, as daemons do
    marker = f"sandbox-test-{uuid.uuid4().hex}"
    listing = sorted(os.listdir("/var/lib"))
    (tmp_path / "opt_ml").mkdir()
    command = sandbox.prepare(
        tmp_path / "sandbox",
        mounts=[
            sandbox.tmpfs("/tmp"),
            sandbox.tmpfs("/run", mode="755", skeleton=("/run",)),
            sandbox.overlay("/var/lib"),
            sandbox.overlay("/var/cache"),
            *sandbox.environment_binds(["/tmp", "/run"]),
            sandbox.bind("/opt/ml", tmp_path / "opt_ml"),
        ],
        argv=[sys.executable, "-c", STATE_WRITER, marker],
        env={"PATH": os.environ["PATH"]},
        cwd="/",
    )
    # When it runs in a sandbox
    done = subprocess.run(command, timeout=30, check=False, capture_output=True, text=True)
    # Then it saw the host's /var/lib and wrote where it meant to
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [repr(listing), "written"]
    # And none of it reached the host
    for path in (f"/var/lib/{marker}", f"/var/cache/{marker}", f"/run/{marker}.pid"):
        assert not os.path.lexists(path), path
    assert sorted(os.listdir("/var/lib")) == listing


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _unprivileged_python() -> str | None:
    """A Python an unprivileged user may run (a virtualenv under /root is not one)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="as a user, every sandbox test here already runs unprivileged")
def test_an_unprivileged_user_gets_the_same_sandbox_through_a_user_namespace(tmp_path: Path) -> None:
    # Given a user with no privilege (nobody), a Python it may run, and the sandbox init where it may read it
    python, setpriv = _unprivileged_python(), shutil.which("setpriv")
    if python is None or setpriv is None:
        pytest.skip("no Python or setpriv an unprivileged user can run")
    shared = Path(tempfile.mkdtemp(prefix="sagedock-unprivileged-"))
    try:
        shared.chmod(0o755)
        init = shared / "sandbox_init.py"
        shutil.copy(sandbox.INIT, init)
        opt_ml = shared / "opt_ml"
        opt_ml.mkdir()
        os.chown(opt_ml, 65534, 65534)
        (shared / "sandbox").mkdir()
        os.chown(shared / "sandbox", 65534, 65534)
        command = sandbox.prepare(
            shared / "sandbox",
            mounts=[sandbox.tmpfs("/tmp"), sandbox.bind("/opt/ml", opt_ml)],
            argv=["/bin/sh", "-c", "id -u; echo mine > /tmp/x; cat /tmp/x; echo seen > /opt/ml/seen; exit 4"],
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            user=True,
        )
        # When it runs a program in a sandbox
        done = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, str(init), command[-1]],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        # Then the program is root inside (only that user mapped), has its own /tmp, writes its /opt/ml as
        # that user, and its exit status comes back
        assert done.returncode == 4, done.stderr
        assert done.stdout.split() == ["0", "mine"]
        assert not (shared / "sandbox" / "root" / "tmp" / "x").exists()
        assert (opt_ml / "seen").read_text() == "seen\n"
        assert (opt_ml / "seen").stat().st_uid == 65534
    finally:
        shutil.rmtree(shared, ignore_errors=True)
