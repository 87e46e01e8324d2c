"""The SQLite store's migrations: recorded once, re-opening applies nothing twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from central.storage.migrations import LATEST
from central.storage.sqlite import SqliteStore


async def test_migrations_are_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    for _ in range(2):
        store = SqliteStore.open(path)
        await store.close()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
        assert rows == [(1, "initial schema")] and LATEST == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_events_are_unique_per_agent_and_seq(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "c.sqlite3")
    try:
        with sqlite3.connect(tmp_path / "c.sqlite3") as conn:
            indexes = conn.execute("SELECT sql FROM sqlite_master WHERE name='events'").fetchone()[0]
        assert "PRIMARY KEY (agent_id, seq)" in indexes
    finally:
        await store.close()
