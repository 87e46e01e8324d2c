"""The SQLite store's migrations: recorded once, re-opening applies nothing twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from central.storage.migrations import LATEST, MIGRATIONS
from central.storage.sqlite import SqliteStore


async def test_migrations_are_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    for _ in range(2):
        store = SqliteStore.open(path)
        await store.close()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
        assert rows == [(m.version, m.name) for m in MIGRATIONS] and LATEST == len(MIGRATIONS)
        assert rows[:2] == [(1, "initial schema"), (2, "revocations and the issued-token log")]
        assert "alert routing: threads and the delivery outbox" in [name for _, name in rows]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_events_are_unique_per_agent_and_seq(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "c.sqlite3")
    try:
        with sqlite3.connect(tmp_path / "c.sqlite3") as conn:
            indexes = conn.execute("SELECT sql FROM sqlite_master WHERE name='events'").fetchone()[0]
        assert "PRIMARY KEY (agent_id, seq)" in indexes
    finally:
        await store.close()


def test_one_off_commands_on_a_fresh_data_dir_at_the_same_moment(tmp_path) -> None:
    # Two commands creating the database (and its WAL switch) at once used to fail one of
    # them with "database is locked" now and then; several fresh dirs make the race likely.
    import subprocess
    import sys
    from pathlib import Path

    central = str(Path(sys.executable).parent / "schulwart-central")
    for attempt in range(3):
        data = tmp_path / f"d{attempt}"
        procs = [
            subprocess.Popen(
                [central, "school", "add", "--id", sid, "--name", sid, "--carrier", "K", "--data-dir", str(data)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for sid in ("a", "b", "c")
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err


def test_concurrent_first_starts_share_one_key_pair(tmp_path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, pathlib; from central.keystore import load_keystore; from protocol.keys import keyid;"
        "k = load_keystore(pathlib.Path(sys.argv[1])); print(keyid(k.config_key), keyid(k.token_key))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    seen = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert len(seen) == 1, seen
