"""The processes of `serve`: a parent accepting connections, forked workers answering them; no user code.

The parent hands each connection (SCM_RIGHTS over a Unix socket) to the worker holding the fewest, which
runs a small event loop over its keep-alive connections. SIGTERM (or SIGINT) lets every worker finish the
request it is on and exit; the parent then exits 0. What a request means is `server.Application`'s.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING

from http11 import TEXT, HttpError, parse_request, response

if TYPE_CHECKING:
    from server import Application, Config

GRACEFUL_TIMEOUT = 20.0  # SageMaker sends SIGKILL 30 s after SIGTERM


class Connection:
    """A client connection's buffers."""

    __slots__ = ("continued", "inbuf", "outbuf", "sock", "writing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = b""
        self.continued = False
        self.writing = False


_KEEP_ALIVE: list[socket.socket] = []


def signal_wakeup() -> socket.socket:
    """A socket that becomes readable (one byte per signal number) whenever a handled signal arrives."""
    wake_read, wake_write = socket.socketpair()
    wake_read.setblocking(False)
    wake_write.setblocking(False)
    signal.set_wakeup_fd(wake_write.fileno())
    _KEEP_ALIVE.append(wake_write)  # the writing end must outlive this function
    return wake_read


class Worker:
    """One process's event loop over the connections the parent hands it."""

    def __init__(self, control: socket.socket, app: Application) -> None:
        self.control = control
        self.app = app
        self.selector = selectors.DefaultSelector()
        self.connections: dict[int, Connection] = {}
        self.stopping = False

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (or the parent goes away); then close everything and return 0."""
        wake = signal_wakeup()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        self.control.setblocking(False)
        self.selector.register(self.control, selectors.EVENT_READ, None)
        self.selector.register(wake, selectors.EVENT_READ, None)
        while not self.stopping:
            for key, events in self.selector.select():
                sock = key.fileobj
                if sock is self.control:
                    self._adopt()
                elif sock is wake:
                    with contextlib.suppress(OSError):
                        wake.recv(64)
                else:
                    connection = self.connections.get(key.fd)
                    if connection is not None:
                        self._serve(connection, events)
        for connection in list(self.connections.values()):
            self._close(connection)
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _adopt(self) -> None:
        """Take the connections the parent sent over the control socket (SCM_RIGHTS)."""
        try:
            message, fds, _, _ = socket.recv_fds(self.control, 256, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            message, fds = b"", []
        if not message and not fds:
            self.stopping = True  # the parent is gone
            return
        for fd in fds:
            sock = socket.socket(fileno=fd)
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections[fd] = Connection(sock)
            self.selector.register(sock, selectors.EVENT_READ, None)

    def _close(self, connection: Connection) -> None:
        fd = connection.sock.fileno()
        if fd >= 0:
            self.selector.unregister(connection.sock)
            self.connections.pop(fd, None)
            with contextlib.suppress(OSError):
                self.control.send(b"x")  # tell the parent: one connection fewer here
        connection.sock.close()

    def _serve(self, connection: Connection, events: int) -> None:
        if events & selectors.EVENT_WRITE and not self._flush(connection):
            return
        if events & selectors.EVENT_READ:
            try:
                data = connection.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._close(connection)
                return
            if not data:
                self._close(connection)
                return
            connection.inbuf += data
        self._respond(connection)

    def _respond(self, connection: Connection) -> None:
        """Answer every complete request in the input buffer (pipelining included), in order."""
        replies: list[bytes] = []
        close = False
        while connection.inbuf and not connection.outbuf:
            try:
                parsed = parse_request(connection.inbuf, self.app.config.max_payload)
            except HttpError as exc:
                replies.append(response(exc.status, f"{exc}\n".encode(), TEXT, False))
                close = True
                break
            request = parsed.request
            if request is None:
                if parsed.wants_continue and not connection.continued:
                    connection.continued = True
                    replies.append(b"HTTP/1.1 100 Continue\r\n\r\n")
                break
            del connection.inbuf[: parsed.consumed]
            connection.continued = False
            replies.append(self.app.handle(request))
            if not request.keep_alive:
                close = True
                break
        if replies:
            connection.outbuf += b"".join(replies)
            if not self._flush(connection):
                return
        if close:
            self._close(connection)

    def _flush(self, connection: Connection) -> bool:
        """Send what is pending; True once all is sent (the connection may have been closed if not)."""
        try:
            sent = connection.sock.send(connection.outbuf)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(connection)
            return False
        connection.outbuf = connection.outbuf[sent:]
        if connection.outbuf:
            if not connection.writing:
                connection.writing = True
                self.selector.modify(connection.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, None)
            return False
        if connection.writing:
            connection.writing = False
            self.selector.modify(connection.sock, selectors.EVENT_READ, None)
        return True


def _die_with_parent() -> None:
    """Linux: have the kernel send SIGTERM to this worker if the parent dies without stopping it."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class WorkerSlot:
    """The parent's view of one worker: its control socket and how many connections it holds."""

    pid: int
    control: socket.socket
    started: float
    connections: int = 0


class Master:
    """Accepts connections and hands each to the worker holding the fewest; replaces workers that die.

    Accepting in one place keeps long-lived keep-alive connections spread evenly over the workers
    (workers racing for a shared socket often leave one of them with most of the connections).
    """

    def __init__(self, listener: socket.socket, app: Application, config: Config) -> None:
        self.listener = listener
        self.app = app
        self.config = config
        self.selector = selectors.DefaultSelector()
        self.slots: dict[int, WorkerSlot] = {}  # by pid
        self.quick_deaths = 0

    def spawn(self) -> None:
        """Fork one worker with a fresh control socket."""
        parent = os.getpid()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # Signals stay blocked across the fork until the worker has its own handlers installed.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                self.selector.close()
                self.listener.close()
                ours.close()
                for slot in self.slots.values():
                    slot.control.close()
                _die_with_parent()
                if os.getppid() != parent:
                    os._exit(0)
                code = Worker(theirs, self.app).run()
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        theirs.close()
        ours.setblocking(False)
        self.slots[pid] = WorkerSlot(pid, ours, time.monotonic())
        self.selector.register(ours, selectors.EVENT_READ, pid)

    def run(self) -> int:
        """Serve until told to stop; 0 after a clean shutdown, 1 if the workers keep crashing."""
        wake = signal_wakeup()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, lambda *_: None)
        for _ in range(self.config.workers):
            self.spawn()
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.selector.register(wake, selectors.EVENT_READ, None)
        print(
            f"serve: listening on {self.config.host}:{self.config.port} "
            f"with {self.config.workers} worker(s), pid {os.getpid()}",
            flush=True,
        )
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.listener:
                    self._accept()
                elif key.fileobj is wake:
                    received = self._signals(wake)
                    if signal.SIGTERM in received or signal.SIGINT in received:
                        return self.stop(wake)
                    if signal.SIGCHLD in received and not self._replace_dead():
                        self.stop(wake)
                        return 1
                else:
                    self._closed_by(key.data)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: leave it in the backlog for a moment
                print(f"serve: accept failed: {exc}", file=sys.stderr, flush=True)
                return
            with sock:
                for slot in sorted(self.slots.values(), key=lambda s: s.connections):
                    try:
                        socket.send_fds(slot.control, [b"c"], [sock.fileno()])
                    except OSError:
                        continue  # that worker is stuck or gone: try the next
                    slot.connections += 1
                    break

    def _closed_by(self, pid: int) -> None:
        slot = self.slots.get(pid)
        if slot is None:
            return
        try:
            data = slot.control.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the worker is gone; SIGCHLD does the rest
            self.selector.unregister(slot.control)
            return
        slot.connections = max(0, slot.connections - len(data))

    def _replace_dead(self) -> bool:
        """Start a worker for each one that exited; False when they keep dying at start."""
        for pid, status in self._reap():
            slot = self.slots.pop(pid, None)
            if slot is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(slot.control)
            slot.control.close()
            print(f"serve: worker {pid} exited ({status}); starting another", file=sys.stderr, flush=True)
            self.quick_deaths = self.quick_deaths + 1 if time.monotonic() - slot.started < 1.0 else 0
            if self.quick_deaths >= 5:
                print("serve: workers keep crashing at start; giving up", file=sys.stderr, flush=True)
                return False
            self.spawn()
        return True

    def stop(self, wake: socket.socket) -> int:
        """Stop accepting, SIGTERM every worker, wait for them (SIGKILL after the grace time), return 0."""
        self.selector.unregister(self.listener)
        self.listener.close()
        for pid in self.slots:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACEFUL_TIMEOUT
        while self.slots and time.monotonic() < deadline:
            for pid, _ in self._reap():
                self.slots.pop(pid, None)
            if self.slots:
                with selectors.DefaultSelector() as selector:
                    selector.register(wake, selectors.EVENT_READ)
                    selector.select(min(0.5, max(0.0, deadline - time.monotonic())))
                self._signals(wake)
        for pid in list(self.slots):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        print("serve: stopped", flush=True)
        return 0

    @staticmethod
    def _signals(wake: socket.socket) -> set[int]:
        """The signal numbers received since the last call."""
        received: set[int] = set()
        while True:
            try:
                data = wake.recv(256)
            except (BlockingIOError, InterruptedError):
                return received
            if not data:
                return received
            received.update(data)

    @staticmethod
    def _reap() -> list[tuple[int, str]]:
        """Collect every exited child: (pid, how it ended)."""
        ended: list[tuple[int, str]] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return ended
            if pid == 0:
                return ended
            if os.WIFSIGNALED(status):
                ended.append((pid, f"signal {os.WTERMSIG(status)}"))
            else:
                ended.append((pid, f"exit code {os.waitstatus_to_exitcode(status)}"))
