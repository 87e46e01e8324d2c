"""``serve --workers N``: one node as N processes sharing its listening port (SO_REUSEPORT).

A node is stateless (every piece of state is in the database), so N processes of one node are
N nodes that happen to share a port: the kernel spreads new connections over their listening
sockets. One Python process uses one core; on PostgreSQL a node is CPU-bound in Python, so
N workers carry about N times the agents of one.

The parent forks the workers before it runs any event loop or thread, and then only watches
them: a worker that dies is started again (after 1 s, doubling up to 30 s while it keeps dying
within 30 s of its start); SIGTERM or SIGINT is forwarded to every worker and the parent exits
once they have stopped. A worker that fails before it ever listened, while the node starts,
stops the node with that worker's exit code (a bad config is one line and exit 2, not a loop).
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("central")

MAX_WORKERS = 64
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 30.0  # a worker that ran this long starts again after FIRST_BACKOFF_S
STOP_GRACE_S = 30.0  # then SIGKILL: a worker that hangs in shutdown must not keep the node


@dataclass(frozen=True)
class WorkerRole:
    """Which worker of a node this process is: ``index`` 0..``count``-1."""

    index: int = 0
    count: int = 1

    @property
    def runs_node_duties(self) -> bool:
        """Whether this worker runs the node's background duties (silence monitor, alert delivery).

        Only worker 0 does: they ran once per node before workers existed and stay so. The silence
        monitor scans every school each pass (15,000 at Land scale); N workers would make N passes
        of writes that are idempotent anyway. Alert delivery is safe across processes already
        (outbox rows leased with ``FOR UPDATE SKIP LOCKED``, planning under an advisory lock), so
        one sender per node loses nothing; while worker 0 restarts (seconds) both duties wait.
        """
        return self.index == 0


def parse_workers(text: str) -> int:
    """``"auto"`` (the cores this process may use) or a number 1..MAX_WORKERS; ValueError otherwise."""
    if text.strip().lower() == "auto":
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # not Linux
            cores = os.cpu_count() or 1
        return max(1, min(cores, MAX_WORKERS))
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"--workers must be 'auto' or a number 1..{MAX_WORKERS}, not {text!r}") from None
    if not 1 <= count <= MAX_WORKERS:
        raise ValueError(f"--workers must be 'auto' or a number 1..{MAX_WORKERS}, not {text!r}")
    return count


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A bound, not listening SO_REUSEPORT socket on host:port; returns it and its real port.

    With port 0 the kernel picks the port here, once, and every worker binds that one. The
    socket never listens, so it takes no connections; it keeps the port for the node while a
    worker restarts. OSError when the address is taken or cannot be resolved.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock, int(sock.getsockname()[1])


_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)


class _Supervisor:
    def __init__(self, count: int, run_worker: Callable[[WorkerRole, Callable[[], None]], int]) -> None:
        self.count = count
        self.run_worker = run_worker
        self.pids: dict[int, int] = {}  # index -> pid
        self.started: dict[int, float] = {}
        self.backoff: dict[int, float] = dict.fromkeys(range(count), FIRST_BACKOFF_S)
        self.due: dict[int, float] = {}  # index -> monotonic time of its restart
        self.ready: set[int] = set()
        self.all_ready_once = False
        self.stop_signal: int | None = None

    def spawn(self, index: int, close_fds: list[int]) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: none of the parent's signal plumbing, then serve
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                for signum in _SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                for fd in close_fds:
                    os.close(fd)
                ready_fd = self.ready_w

                def ready() -> None:
                    os.write(ready_fd, bytes([index]))

                code = self.run_worker(WorkerRole(index, self.count), ready)
            except BaseException:  # the worker must never return into the parent's loop
                log.exception("central worker %d failed", index)
            finally:
                with contextlib.suppress(Exception):
                    logging.shutdown()
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        self.pids[index] = pid
        self.started[index] = time.monotonic()

    def run(self, keep_fds: list[int]) -> int:
        self.ready_r, self.ready_w = os.pipe()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(self.ready_r, False)
        child_closes = [self.ready_r, wake_r, wake_w, *keep_fds]

        def on_signal(signum: int, _frame: object) -> None:
            if signum != signal.SIGCHLD and self.stop_signal is None:
                self.stop_signal = signum

        old_wakeup = signal.set_wakeup_fd(wake_w)
        old = {s: signal.signal(s, on_signal) for s in _SIGNALS}
        try:
            for index in range(self.count):
                self.spawn(index, child_closes)
            with selectors.DefaultSelector() as sel:
                sel.register(wake_r, selectors.EVENT_READ)
                sel.register(self.ready_r, selectors.EVENT_READ)
                code = self._watch(sel, wake_r, child_closes)
            return code if code is not None else self._stop_all()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in old.items():
                signal.signal(signum, handler)
            for fd in (self.ready_r, self.ready_w, wake_r, wake_w):
                os.close(fd)

    def _watch(self, sel: selectors.BaseSelector, wake_r: int, child_closes: list[int]) -> int | None:
        """Until a stop signal (None: stop the workers) or a failed start (its exit code)."""
        while self.stop_signal is None:
            now = time.monotonic()
            timeout = max(0.0, min(self.due.values()) - now) if self.due else None
            for key, _ in sel.select(timeout):
                with contextlib.suppress(BlockingIOError):
                    data = os.read(key.fd, 512)
                    if key.fd != wake_r:
                        self._mark_ready(data)
            if self.stop_signal is not None:
                break
            failed = self._reap()
            if failed is not None:
                return failed
            now = time.monotonic()
            for index in [i for i, at in self.due.items() if at <= now]:
                del self.due[index]
                self.spawn(index, child_closes)
        return None

    def _mark_ready(self, data: bytes) -> None:
        for index in data:
            if index in self.ready and self.all_ready_once:
                continue
            self.ready.add(index)
            if self.all_ready_once:
                log.info("central worker %d running again (pid %d)", index, self.pids.get(index, 0))
        if not self.all_ready_once and len(self.ready) == self.count:
            self.all_ready_once = True
            self.on_all_ready()

    def on_all_ready(self) -> None:
        """Called once, when every worker listens for the first time (serve logs its line here)."""

    def _reap(self) -> int | None:
        while self.pids:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            index = next((i for i, p in self.pids.items() if p == pid), None)
            if index is None:
                continue
            del self.pids[index]
            code = os.waitstatus_to_exitcode(status)
            how = f"signal {-code}" if code < 0 else f"exit {code}"
            if not self.all_ready_once:
                # Before the node ever listened: a config or database error, not bad luck.
                log.error("central worker %d stopped while starting (%s); stopping", index, how)
                self._stop_all()
                return code if code > 0 else 1
            self.ready.discard(index)
            ran = time.monotonic() - self.started[index]
            delay = FIRST_BACKOFF_S if ran >= STABLE_AFTER_S else self.backoff[index]
            self.backoff[index] = min(delay * 2, MAX_BACKOFF_S)
            log.warning("central worker %d (pid %d) ended (%s) after %.0f s; starting it again in %.0f s",
                        index, pid, how, ran, delay)  # fmt: skip
            self.due[index] = time.monotonic() + delay
        return None

    def _stop_all(self) -> int:
        signum = self.stop_signal or signal.SIGTERM
        for pid in self.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        deadline = time.monotonic() + STOP_GRACE_S
        while self.pids:
            for index, pid in list(self.pids.items()):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    del self.pids[index]
            if self.pids and time.monotonic() > deadline:
                log.error("central workers %s did not stop in %.0f s; killing them",
                          sorted(self.pids.values()), STOP_GRACE_S)  # fmt: skip
                for pid in self.pids.values():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.05)
        return 0


def supervise(
    count: int,
    run_worker: Callable[[WorkerRole, Callable[[], None]], int],
    *,
    on_all_ready: Callable[[], None],
    keep_fds: list[int] | None = None,
) -> int:
    """Run ``count`` forked workers until SIGTERM/SIGINT; returns the node's exit code.

    ``run_worker(role, ready)`` runs in each worker and returns its exit code; it calls
    ``ready()`` once it listens. ``on_all_ready`` runs in the parent when every worker has
    listened for the first time. ``keep_fds`` are descriptors of the parent that the workers
    close (the reserved port). Returns 0 after a stop signal, or the exit code of a worker that
    failed before the node first listened. Call it before any thread or event loop exists.
    """
    supervisor = _Supervisor(count, run_worker)
    supervisor.on_all_ready = on_all_ready  # type: ignore[method-assign]
    return supervisor.run(keep_fds or [])
