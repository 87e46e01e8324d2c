"""Databases from every older schema version are migrated with their data; a newer one is refused.

Each older database is built the way that release left it: the schema steps up to its version,
applied by the one runner (``base.sqlite.migrate``), with rows written in that version's columns.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.store import Store
from agent.store.db import DB_NAME
from agent.store.migrations import MIGRATIONS as AGENT_MIGRATIONS
from agent.store.outbox import Outbox
from base.clock import FakeClock
from base.sqlite import migrate, schema_version
from central.storage.migrations import MIGRATIONS as CENTRAL_MIGRATIONS
from central.storage.sqlite import SqliteStore

AGENT = str(Path(sys.executable).parent / "schulwart-agent")


def _old_database(path: Path, steps: int, migrations: tuple, program: str) -> sqlite3.Connection:  # type: ignore[type-arg]
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, migrations[:steps], path=path, program=program)
    assert schema_version(conn) == steps
    return conn


@pytest.mark.parametrize("steps", range(1, len(CENTRAL_MIGRATIONS)))
async def test_central_database_of_every_older_version_is_migrated_with_its_data(tmp_path: Path, steps: int) -> None:
    path = tmp_path / "central.sqlite3"
    conn = _old_database(path, steps, CENTRAL_MIGRATIONS, "central")
    conn.execute("INSERT INTO schools (id, name, carrier, created_at) VALUES ('gs-nord', 'GS Nord', 'K', 'x')")
    conn.execute(
        "INSERT INTO agents (agent_id, school_id, keyid, public_key, hostname, version, enrolled_at, acked_seq)"
        " VALUES ('a-1', 'gs-nord', 'kid', x'00', 'srv', '0.1', '2025-01-01T00:00:00Z', 2)"
    )
    for seq in (1, 2):
        conn.execute(
            "INSERT INTO events (agent_id, seq, school_id, kind, at, digest, body, received_at)"
            " VALUES ('a-1', ?, 'gs-nord', 'health.snapshot', '2025-01-01T00:00:00Z', 'd', '{}', 'r')",
            (seq,),
        )
    conn.close()
    store = SqliteStore.open(path)
    try:
        assert [e.seq for e in await store.get_events("a-1")] == [1, 2]
        agent = await store.get_agent("a-1")
        assert agent is not None and agent.acked_seq == 2 and not agent.revoked
        assert [s.school.id for s in await store.school_summaries()] == ["gs-nord"]
    finally:
        await store.close()
    with sqlite3.connect(path) as check:
        assert schema_version(check) == len(CENTRAL_MIGRATIONS)
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("steps", range(1, len(AGENT_MIGRATIONS)))
def test_agent_database_of_every_older_version_is_migrated_with_its_outbox(tmp_path: Path, steps: int) -> None:
    conn = _old_database(tmp_path / DB_NAME, steps, AGENT_MIGRATIONS, "agent")
    for seq in (1, 2, 3):
        conn.execute(
            "INSERT INTO outbox (seq, at, kind, data, size, created, thinned)"
            " VALUES (?, '2025-01-01T00:00:00Z', 'health.snapshot', '{\"host\": {}}', 60, 0, 0)",
            (seq,),
        )
    conn.execute("UPDATE outbox_state SET last_seq = 3, acked_seq = 1, sent_seq = 1")
    conn.close()
    store = Store.open(tmp_path)
    try:
        assert schema_version(store.conn) == len(AGENT_MIGRATIONS)
        outbox = Outbox(store, FakeClock())
        assert [e.seq for e in outbox.batch(2, 10, 10**6)] == [2, 3]
        assert outbox.add("health.snapshot", {}) == 4  # the sequence goes on, never back
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        store.close()


def test_agent_refuses_a_database_from_a_newer_version_with_one_line(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')")
    before = _dump(tmp_path / DB_NAME)
    done = subprocess.run(
        [AGENT, "status", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "schema version 99" in lines[0] and "newer" in lines[0] and "upgrade the agent" in lines[0]
    assert _dump(tmp_path / DB_NAME) == before  # refused, not touched


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())
