"""``serve --workers N``: real processes on a real port (SO_REUSEPORT), on PostgreSQL.

Requests land on every worker; a SIGKILLed worker is started again while the port keeps
answering; SIGTERM to the parent stops them all; SQLite refuses more than one worker.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from central.workers import MAX_WORKERS, WorkerRole, parse_workers
from tests.contract.conftest import CENTRAL, clean_env
from tests.pg import Server as PgServer

from .conftest import db_section

LISTEN_RE = re.compile(r"listening on http://127\.0\.0\.1:(\d+) \(database .*, 2 workers, pid (\d+)\)")


def test_parse_workers() -> None:
    assert parse_workers("3") == 3
    assert 1 <= parse_workers("auto") == min(len(os.sched_getaffinity(0)), MAX_WORKERS)
    for bad in ("0", "-1", "two", "", str(MAX_WORKERS + 1)):
        with pytest.raises(ValueError, match="--workers"):
            parse_workers(bad)


def test_only_worker_0_runs_the_node_duties() -> None:
    assert WorkerRole().runs_node_duties
    assert WorkerRole(0, 2).runs_node_duties
    assert not WorkerRole(1, 2).runs_node_duties


def test_sqlite_refuses_two_workers_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [CENTRAL, "serve", "--data-dir", str(tmp_path / "d"), "--port", "0", "--workers", "2"],
        capture_output=True, text=True, env=clean_env(), timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--workers 2 needs PostgreSQL" in lines[0], done.stderr


def _owner(port: int, parent: psutil.Process | None) -> int:
    """Which worker serves one new connection: the pid among the parent's children now holding its server end."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        assert response.status == 200
        response.read()
        assert conn.sock is not None
        client_port = conn.sock.getsockname()[1]
        for worker in parent.children() if parent is not None else []:
            try:
                held = worker.net_connections("tcp")
            except psutil.Error:  # a worker that has just died
                continue
            for c in held:
                if c.raddr and c.raddr.port == client_port and c.laddr.port == port:
                    return worker.pid
        raise AssertionError(f"no worker holds the connection from port {client_port}")
    finally:
        conn.close()


def _workers(parent: psutil.Process, count: int, timeout: float = 20.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while True:
        children = [c for c in parent.children() if _alive(c)]
        if len(children) == count:
            return children
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(children)} workers, not {count}")
        time.sleep(0.05)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_log(log: Path, pattern: str, timeout: float = 30.0, after: int = 0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while True:
        match = re.compile(pattern).search(log.read_text()[after:])
        if match:
            return match
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not logged: {log.read_text()[-2000:]}")
        time.sleep(0.05)


def test_two_workers_share_the_port_survive_a_kill_and_stop_together(tmp_path: Path, pg_server: PgServer) -> None:
    toml = tmp_path / "central.toml"
    toml.write_text(db_section(pg_server.fresh()))
    data = tmp_path / "d"
    added = subprocess.run(
        [CENTRAL, "school", "add", "--id", "gs-1", "--name", "GS 1", "--carrier", "K", "--data-dir", str(data),
         "--config", str(toml)], capture_output=True, text=True, check=False, env=clean_env(), timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    log = tmp_path / "serve.log"
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [CENTRAL, "serve", "--data-dir", str(data), "--config", str(toml), "--port", "0", "--workers", "2"],
            stderr=handle, env=clean_env(),
        )  # fmt: skip
    try:
        match = _wait_log(log, LISTEN_RE.pattern)
        port, parent = int(match.group(1)), psutil.Process(proc.pid)
        assert int(match.group(2)) == proc.pid
        workers = _workers(parent, 2)
        pids = {w.pid for w in workers}
        # The kernel hashes each new connection to one listener: 40 connections all on one of two
        # workers would be a 1-in-2^39 chance, so both answer.
        assert {_owner(port, parent) for _ in range(40)} == pids

        victim = workers[1].pid
        before = len(log.read_text())
        os.kill(victim, signal.SIGKILL)
        # The port answers all the while: the surviving worker takes every new connection. Only a
        # connection the kernel queued at the victim in the instant it died is reset.
        deadline = time.monotonic() + 30
        resets = 0
        while True:
            try:
                assert _owner(port, parent) != victim
            except (ConnectionResetError, http.client.RemoteDisconnected):
                resets += 1
                assert resets <= 2
            alive = [w for w in parent.children() if w.pid != victim and _alive(w)]
            if len(alive) == 2 and "running again" in log.read_text()[before:]:
                break
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        assert "ended (signal 9)" in log.read_text()[before:]
        workers = _workers(parent, 2)
        assert victim not in {w.pid for w in workers}
        assert {_owner(port, parent) for _ in range(40)} == {w.pid for w in workers}

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        for w in workers:
            assert not w.is_running() or w.status() == psutil.STATUS_ZOMBIE
        with pytest.raises(ConnectionRefusedError):
            _owner(port, None)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
