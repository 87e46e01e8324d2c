"""The local API's /healthz, the systemd unit, and a full disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import agent
from agent.store import Store, StoreFullError
from agent.store.outbox import Outbox
from agent.techapi.server import make_app
from base.clock import FakeClock


async def test_healthz(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(make_app(lambda: {"status": "ok", "version": "1"}))
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json()) == {"status": "ok", "version": "1"}
    assert (await client.get("/api/v1/devices")).status == 404  # nothing about the school without the later routes


def test_systemd_unit_is_packaged_and_hardened() -> None:
    unit = (Path(agent.__file__).parent / "systemd" / "schulwart-agent.service").read_text()
    for line in (
        "User=schulwart",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/schulwart",
        "CapabilityBoundingSet=",
        "KillSignal=SIGTERM",
        "schulwart-agent run",
    ):
        assert line in unit, line


def test_full_disk_rolls_back_whole_and_keeps_the_queue(store: Store, outbox: Outbox, clock: FakeClock) -> None:
    outbox.add_many([("health.snapshot", {"i": i}) for i in range(5)])
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full now
    with pytest.raises(StoreFullError):
        outbox.add_many([("health.snapshot", {"pad": "x" * 4000 + str(i)}) for i in range(50)])
    assert outbox.last_seq == 5
    assert [e.seq for e in outbox.batch(1, 100, 10**9)] == [1, 2, 3, 4, 5]
    store.conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
    assert outbox.add("health.snapshot", {}) == 6


def test_store_refuses_garbage_file(data_dir: Path) -> None:
    (data_dir / "agent.db").write_bytes(b"not a database" * 100)
    from agent.store import StoreError

    with pytest.raises(StoreError):
        Store.open(data_dir)
    assert isinstance(sqlite3.sqlite_version, str)


def test_enable_wal_waits_for_another_process_switching_a_fresh_database(tmp_path) -> None:
    import sqlite3
    import threading

    from base.sqlite import enable_wal

    path = tmp_path / "fresh.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # what another process's journal-mode switch holds
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    try:
        # The bare PRAGMA gives up at once: this is the error two CLI commands used to hit.
        try:
            mode = waiter.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            mode = str(exc)
        assert mode != "wal"
        threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
        enable_wal(waiter, timeout_s=5)
        assert waiter.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        waiter.close()
        holder.close()
