"""Group commit in the SQLite store: transactions that arrive together share one durable COMMIT.

Promises: every transaction that returns is on disk (another connection sees it); one that
raises leaves nothing, and does not take the others of its group with it; reads outside a
transaction never see a group's writes before its COMMIT; an open group never keeps the
file's write lock after its transactions are done, not even when its only one failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from central.errors import AlreadyExistsError
from central.storage.sqlite import SqliteStore

AT = "2026-11-30T08:00:00.000000Z"


def _schools_on_disk(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM schools")}


async def test_concurrent_transactions_share_commits_and_all_are_durable(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    store = SqliteStore.open(path)
    commits: list[str] = []
    store._conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    try:
        await asyncio.gather(*(store.add_school(f"gs-{i}", f"Schule {i}", "Kreis", AT) for i in range(200)))
        assert _schools_on_disk(path) == {f"gs-{i}" for i in range(200)}
        # 200 transactions, gathered while the COMMIT before them was being made durable.
        assert 1 <= len(commits) < 100, len(commits)
    finally:
        await store.close()


async def test_a_failing_transaction_leaves_nothing_and_spares_its_group(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    store = SqliteStore.open(path)
    try:
        await store.add_school("gs-taken", "Vorher", "Kreis", AT)

        async def half_then_fail() -> None:
            async with store.transaction():
                store._conn.execute(
                    "INSERT INTO schools (id, name, carrier, created_at) VALUES ('gs-half', 'x', 'Kreis', ?)", (AT,)
                )
                raise RuntimeError("the unit fails after a write")

        results = await asyncio.gather(
            store.add_school("gs-a", "A", "Kreis", AT),
            half_then_fail(),
            store.add_school("gs-taken", "Doppelt", "Kreis", AT),
            store.add_school("gs-b", "B", "Kreis", AT),
            return_exceptions=True,
        )
        assert results[0] is None and results[3] is None
        assert isinstance(results[1], RuntimeError) and isinstance(results[2], AlreadyExistsError)
        assert _schools_on_disk(path) == {"gs-taken", "gs-a", "gs-b"}
        taken = await store.get_school("gs-taken")
        assert taken is not None and taken.name == "Vorher"
    finally:
        await store.close()


async def test_reads_outside_a_transaction_see_only_committed_writes(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "c.sqlite3")
    try:
        async with store.transaction():
            store._conn.execute(
                "INSERT INTO schools (id, name, carrier, created_at) VALUES ('gs-new', 'Neu', 'Kreis', ?)", (AT,)
            )
            assert await store.get_school("gs-new") is None  # written, not yet committed
        school = await store.get_school("gs-new")
        assert school is not None and school.name == "Neu"
    finally:
        await store.close()


@pytest.mark.parametrize("fails", [True, False])
async def test_no_write_lock_is_held_once_the_transactions_are_done(tmp_path: Path, fails: bool) -> None:
    path = tmp_path / "c.sqlite3"
    store = SqliteStore.open(path)
    try:
        with pytest.raises(AlreadyExistsError) if fails else contextlib.nullcontext():
            await store.add_school("gs-1", "Eins", "Kreis", AT)
            if fails:
                await store.add_school("gs-1", "Eins", "Kreis", AT)
        other = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # "database is locked" if a group were left open
            other.execute("ROLLBACK")
        finally:
            other.close()
    finally:
        await store.close()



def _main_file_holds(path: Path) -> set[str]:
    """The school ids in the database file itself, without its WAL (read from a copy of the file alone)."""
    copy = path.with_name("main-only.sqlite3")
    copy.write_bytes(path.read_bytes())
    try:
        with contextlib.closing(sqlite3.connect(f"file:{copy}?mode=ro", uri=True)) as conn:
            return {row[0] for row in conn.execute("SELECT id FROM schools")}
    finally:
        copy.unlink()


async def test_the_wal_is_checkpointed_beside_the_writer_not_in_its_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A few rows stay far below SQLite's own checkpoint threshold: only the store's checkpoint,
    # after a COMMIT, in its own thread and connection, moves them into the database file.
    monkeypatch.setattr("central.storage.sqlite.CHECKPOINT_EVERY_S", 0.0)
    path = tmp_path / "c.sqlite3"
    store = SqliteStore.open(path)
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    try:
        await store.add_school("gs-1", "Schule 1", "Kreis", AT)
        assert store._checkpoint is not None
        await store._checkpoint
        assert _main_file_holds(path) == {"gs-1"}
        await store.add_school("gs-2", "Schule 2", "Kreis", AT)  # the writer goes on after a checkpoint
        await store._checkpoint
        assert _main_file_holds(path) == {"gs-1", "gs-2"}
        assert not [s for s in statements if "checkpoint" in s.lower()]  # never on the writer's connection
    finally:
        await store.close()
    # Without the store's checkpoints the rows stay in the WAL until SQLite's threshold.
    monkeypatch.setattr("central.storage.sqlite.CHECKPOINT_EVERY_S", 3600.0)
    other = tmp_path / "d.sqlite3"
    store = SqliteStore.open(other)
    try:
        await store.add_school("gs-1", "Schule 1", "Kreis", AT)  # the first checkpoint runs at once
        await store._checkpoint
        await store.add_school("gs-2", "Schule 2", "Kreis", AT)
        assert _main_file_holds(other) == {"gs-1"}
    finally:
        await store.close()
