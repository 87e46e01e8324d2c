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


async def test_config_layers_are_versioned_and_a_migrated_database_keeps_its_agents(tmp_path: Path) -> None:
    from base.sqlite import migrate
    from central.storage.migrations import MIGRATIONS as STEPS

    path = tmp_path / "c.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, STEPS[:4], path=str(path), program="central")  # a database from before step 5
    conn.execute("INSERT INTO schools VALUES ('gs-nord', 'GS Nord', 'Kreis A', '2026-01-01')")
    conn.execute("INSERT INTO agents (agent_id, school_id, keyid, public_key, hostname, version, enrolled_at)"
                 " VALUES ('ag-1', 'gs-nord', 'k', x'00', 'srv', '0.1', '2026-01-01')")  # fmt: skip
    conn.close()
    store = SqliteStore.open(path)
    try:
        agent = await store.get_agent("ag-1")
        assert agent is not None and agent.config_version is None and agent.config_overrides == ()
        first = await store.add_config_layer("carrier:Kreis A", "a = 1", '{"a": 1}', "2026-01-02", "ops")
        second = await store.add_config_layer("school:gs-nord", "b = 1", '{"b": 1}', "2026-01-03", "ops")
        third = await store.add_config_layer("carrier:Kreis A", "a = 2", '{"a": 2}', "2026-01-04", "ops")
        assert first < second < third
        newest = await store.config_layers(["carrier:Kreis A", "school:gs-nord", "school:none"])
        assert [(layer.scope, layer.version, layer.toml) for layer in newest] == [
            ("carrier:Kreis A", third, "a = 2"), ("school:gs-nord", second, "b = 1")]  # fmt: skip
        assert [layer.version for layer in await store.config_history("carrier:Kreis A")] == [third, first]
        assert [layer.version for layer in await store.config_history(None, limit=2)] == [third, second]
        async with store.transaction() as tx:
            await tx.set_agent_config_report("ag-1", third, ["incidents.open_after"])
        agent = await store.get_agent("ag-1")
        assert agent is not None
        assert (agent.config_version, agent.config_overrides) == (third, ("incidents.open_after",))
    finally:
        await store.close()
