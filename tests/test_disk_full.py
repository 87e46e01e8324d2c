"""A full disk under the agent's and under central's database, with real processes on a small tmpfs.

Promises: neither process exits; a clear line in the log (no traceback per write); nothing
half-stored (``PRAGMA integrity_check`` is ``ok``); central answers 507 JSON and the agent
keeps what it has; when space returns both go on by themselves and central ends with every
event the agent stored exactly once (and learns how many the agent had to drop).
Needs root to mount a tmpfs; skipped otherwise. Slow.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.procs import (
    Central,
    Proc,
    agent_status,
    central_available,
    drained,
    enroll_agent,
    start_agent,
    wait_for,
    write_config,
)
from tests.agent.test_e2e_central import assert_exactly_once_in_order

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not central_available(), reason="schulwart-central is not built"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]

CONFIG = """
[agent]
snapshot_interval = 0.1
[sync]
report_interval = 0.1
backoff_max = 0.3
max_bytes_per_s = 0
[host]
interval = 0.1
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)]
    done = subprocess.run(command, capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Take every free byte of the disk with one file; returns it (remove it to give the space back)."""
    filler = disk / "filler"
    try:
        with filler.open("wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    return filler


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def _stored_after_stop(agent: Proc, data: Path, central: Central, agent_id: str) -> int:
    """Stop the drained agent; returns how many of its events central holds.

    With intervals of 0.1 s the agent stores new events between the drain and the stop; the
    last batch may be stored at central while the stop comes before its ack is written. So
    central must hold the seqs 1..N, where N lies between what the agent recorded as
    acknowledged and the last seq it stored; the rest waits in the outbox for the next start.
    """
    assert agent.terminate() == 0
    box = agent_status(data)["outbox"]
    stored = len(central.events(agent_id))
    assert 0 < box["acked_seq"] <= stored <= box["last_seq"], (box, stored)
    return stored


def test_central_on_a_full_disk_answers_507_and_recovers(tmp_path: Path, small_disk: Path) -> None:
    central = Central(tmp_path)
    shutil.copytree(central.dir, small_disk / "central")  # made by `school add` on the big disk
    central.dir = small_disk / "central"
    central.start()
    try:
        data = tmp_path / "agent"
        agent_id = enroll_agent(central, data)
        agent = start_agent(data, write_config(tmp_path / "agent.toml", CONFIG), tmp_path / "agent.log")
        wait_for(lambda: central.school()["agents"][0]["acked_seq"] > 5, 20, "the first events at central")
        filler = _fill(small_disk)
        proc = central.proc
        assert proc is not None
        wait_for(lambda: "status=507 reason=store_full" in proc.text(), 20, "central to refuse with 507")
        time.sleep(2)  # the agent keeps collecting while central cannot store
        held_while_full = agent_status(data)["outbox"]["depth"]
        assert held_while_full > 0 and proc.popen.poll() is None
        db = next(central.dir.glob("*.sqlite3"))
        assert _integrity(db) == "ok"
        filler.unlink()  # space returns
        wait_for(lambda: drained(data), 40, "the backlog to drain once space returned")
        last_seq = _stored_after_stop(agent, data, central, agent_id)
        assert_exactly_once_in_order(central, agent_id, last_seq)
        log = proc.text()
        assert "Traceback" not in log and log.count("store_full") < 200, log[-3000:]
        print(f"central disk full: 507 answered, {held_while_full} events held by the agent meanwhile, "
              f"{last_seq} events at central exactly once after space returned", file=sys.stderr)  # fmt: skip
    finally:
        if central.proc is not None:
            central.proc.terminate()
        assert _integrity(next(central.dir.glob("*.sqlite3"))) == "ok"


def test_agent_on_a_full_disk_keeps_running_counts_drops_and_recovers(tmp_path: Path, small_disk: Path) -> None:
    central = Central(tmp_path)
    central.start()
    try:
        data = small_disk / "agent"
        agent_id = enroll_agent(central, data)
        agent = start_agent(data, write_config(tmp_path / "agent.toml", CONFIG), tmp_path / "agent.log")
        wait_for(lambda: central.school()["agents"][0]["acked_seq"] > 5, 20, "the first events at central")
        filler = _fill(small_disk)
        wait_for(lambda: "disk" in agent.text().lower() and "full" in agent.text().lower(), 20, "a disk-full line")
        time.sleep(2)
        assert agent.popen.poll() is None, "the agent exited on a full disk"
        assert _integrity(data / "agent.db") == "ok"
        filler.unlink()
        wait_for(lambda: central.school().get("dropped_events", 0) > 0, 30, "central to hear of the dropped events")
        wait_for(lambda: drained(data), 40, "the backlog to drain once space returned")
        last_seq = _stored_after_stop(agent, data, central, agent_id)
        assert_exactly_once_in_order(central, agent_id, last_seq)
        assert _integrity(data / "agent.db") == "ok"
        text = agent.text()
        assert text.count("Traceback") <= 1 and len(text.splitlines()) < 2000, text[-3000:]
        dropped = central.school()["dropped_events"]
        print(f"agent disk full: kept running, {dropped} events dropped and counted at central, "
              f"{last_seq} stored events at central exactly once", file=sys.stderr)  # fmt: skip
    finally:
        if central.proc is not None:
            central.proc.terminate()
