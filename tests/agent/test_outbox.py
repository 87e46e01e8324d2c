"""The outbox: numbering that survives restarts, acks that prune, thinning that keeps seq contiguous."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.store import Store
from agent.store.migrations import MIGRATIONS
from agent.store.outbox import Outbox
from base.clock import FakeClock
from base.sqlite import schema_version
from protocol.errors import MalformedError


def _snap(n: int) -> dict:
    return {"host": {"n": n, "pad": "x" * 200}}


def test_numbering_survives_restarts(data_dir: Path, clock: FakeClock) -> None:
    seen: list[int] = []
    for _round in range(3):
        store = Store.open(data_dir)
        box = Outbox(store, clock)
        seen += [box.add("health.snapshot", _snap(i)) for i in range(5)]
        box.ack(seen[-1] - 2)  # prune, so max(seq) in the table is not the source of the next number
        store.close()
    assert seen == list(range(1, 16))
    store = Store.open(data_dir)
    box = Outbox(store, clock)
    box.ack(15)  # everything pruned: the table is empty
    store.close()
    store = Store.open(data_dir)
    assert Outbox(store, clock).add("health.snapshot", {}) == 16
    store.close()


def test_failed_transaction_hands_out_no_number(outbox: Outbox, store: Store) -> None:
    assert outbox.add("health.snapshot", {}) == 1
    with pytest.raises(RuntimeError), store.transaction() as conn:
        outbox.append(conn, "health.snapshot", {})
        raise RuntimeError("crash in the middle")
    with pytest.raises(MalformedError):
        outbox.add("incident.opened", {"id": "x"})  # central would refuse it: never stored
    assert outbox.add("health.snapshot", {}) == 2


def test_ack_prunes_and_never_goes_back(outbox: Outbox) -> None:
    outbox.add_many([("health.snapshot", _snap(i)) for i in range(10)])
    assert outbox.ack(4) == 4
    assert outbox.ack(2) == 4
    assert outbox.ack(99) == 10  # never past what exists
    assert outbox.stats().depth == 0
    assert outbox.batch(1, 100, 10**6) == []


def test_batch_limits_and_stats(outbox: Outbox, clock: FakeClock) -> None:
    outbox.add_many([("health.snapshot", _snap(i)) for i in range(20)])
    clock.advance(90)
    batch = outbox.batch(1, 5, 10**6)
    assert [e.seq for e in batch] == [1, 2, 3, 4, 5]
    small = outbox.batch(3, 100, 600)
    assert small[0].seq == 3 and 1 <= len(small) < 5
    assert len(outbox.batch(1, 100, 1)) == 1  # at least one event even if it alone is over the cap
    stats = outbox.stats()
    assert (stats.last_seq, stats.acked_seq, stats.depth) == (20, 0, 20)
    assert stats.oldest_unsent_age_s == 90.0
    wire = batch[0].to_wire()
    assert wire["seq"] == 1 and wire["kind"] == "health.snapshot" and wire["data"]["host"]["n"] == 0


def test_migrations_keep_the_outbox(data_dir: Path, clock: FakeClock) -> None:
    """An upgrade applies the new migrations and keeps every queued event (never drop and recreate).

    The database is made as the agent of an earlier release left it: only the first step, recorded
    in that release's bookkeeping table ``migrations``; the runner adopts it into ``schema_migrations``.
    """
    path = data_dir / "agent.db"
    conn = sqlite3.connect(str(path), isolation_level=None)
    MIGRATIONS[0].apply(conn)  # the agent as it was two releases ago
    conn.execute("CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    conn.execute("INSERT INTO migrations VALUES (1, 'm001_initial', '2025-01-01T00:00:00+00:00')")
    conn.close()
    # Fill the old outbox through today's Outbox on a connection that does not migrate.
    old = Store.__new__(Store)
    old.path = path
    old.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    assert schema_version(old.conn) == 1
    box = Outbox(old, clock)
    box.add_many([("health.snapshot", _snap(i)) for i in range(3)])
    old.conn.close()
    upgraded = Store.open(data_dir)
    assert schema_version(upgraded.conn) == len(MIGRATIONS)
    rows = upgraded.query("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [r[1] for r in rows] == [m.name for m in MIGRATIONS]
    tables = {r[0] for r in upgraded.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "migrations" not in tables, "the old bookkeeping table is adopted, not kept beside"
    box = Outbox(upgraded, clock)
    assert [e.seq for e in box.batch(1, 10, 10**6)] == [1, 2, 3]
    assert box.add("health.snapshot", {}) == 4
    upgraded.close()


def test_newer_schema_is_refused(data_dir: Path) -> None:
    store = Store.open(data_dir)
    with store.transaction() as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 'x')")
    store.close()
    from agent.store import StoreError

    with pytest.raises(StoreError, match="newer"):
        Store.open(data_dir)


def test_durability_pragmas(store: Store) -> None:
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


# ---------------------------------------------------------------- thinning


def _fill(outbox: Outbox, clock: FakeClock, hours: int, per_hour: int) -> None:
    """Snapshots every few minutes, an incident now and then, device chatter."""
    for h in range(hours):
        for i in range(per_hour):
            outbox.add("health.snapshot", _snap(h * 100 + i))
            outbox.add("device.seen", {"id": f"d-{i % 3}", "class": "ipad", "name": "x" * 100})
            clock.advance(3600 / per_hour)
        outbox.add(
            "incident.opened",
            {
                "id": f"inc-{h}",
                "key": f"k{h}",
                "category": "host",
                "severity": "warning",
                "title": "t",
                "subject": None,
            },
        )


def _rows(outbox: Outbox) -> list[tuple[int, str, dict]]:
    return [(s, k, json.loads(d)) for s, k, d in outbox.store.query("SELECT seq, kind, data FROM outbox ORDER BY seq")]


def test_thinning_keeps_incidents_and_contiguous_seq(outbox: Outbox, clock: FakeClock) -> None:
    _fill(outbox, clock, hours=50, per_hour=12)
    before = _rows(outbox)
    incidents_before = [r for r in before if r[1].startswith("incident.")]
    result = outbox.thin(max_bytes=outbox.unsent_bytes() // 4)
    after = _rows(outbox)
    assert result.thinned > 0 and result.after_bytes < result.before_bytes
    assert [r[0] for r in after] == [r[0] for r in before]  # no row deleted: seq contiguous
    assert [r[0] for r in after] == list(range(1, len(after) + 1))
    assert [r for r in after if r[1].startswith("incident.")] == incidents_before
    full_snaps = [r for r in after if r[1] == "health.snapshot" and not r[2].get("thinned")]
    assert len(full_snaps) < 50 * 12 / 2
    # the last hour is untouched; older hours keep at least one full snapshot each (or one a day)
    assert all(not r[2].get("thinned") for r in after[-20:] if r[1] == "health.snapshot")
    for _seq, kind, data in after:
        if kind == "device.seen" and data.get("thinned"):
            assert set(data) == {"id", "class", "thinned"}
    # what is left is still valid for central: every row goes through the same validation as a new event
    from protocol.schema import make_event

    for event in outbox.batch(1, 10_000, 10**9):
        make_event(event.seq, event.at, event.kind, event.to_wire()["data"])


def test_thinning_spares_what_was_sent(outbox: Outbox, clock: FakeClock) -> None:
    _fill(outbox, clock, hours=30, per_hour=12)
    outbox.mark_sent(200)  # central may hold these already: rewriting them would be a conflict
    before = {s: d for s, _k, d in _rows(outbox)}
    outbox.thin(max_bytes=1)
    after = {s: d for s, _k, d in _rows(outbox)}
    assert all(after[s] == before[s] for s in range(1, 201))
    assert any(after[s] != before[s] for s in range(201, len(after)))


def test_under_cap_nothing_happens(outbox: Outbox, clock: FakeClock) -> None:
    _fill(outbox, clock, hours=3, per_hour=4)
    result = outbox.thin(max_bytes=10**9)
    assert result.thinned == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["add", "add3", "ack", "reopen", "thin"]), min_size=1, max_size=30))
def test_invariants_under_random_operations(tmp_path_factory: pytest.TempPathFactory, ops: list[str]) -> None:
    directory = tmp_path_factory.mktemp("hyp")
    clock = FakeClock()
    store = Store.open(directory)
    box = Outbox(store, clock)
    handed: list[int] = []
    try:
        for op in ops:
            clock.advance(1800)
            if op == "add":
                handed.append(box.add("health.snapshot", _snap(len(handed))))
            elif op == "add3":
                handed += box.add_many([("device.seen", {"id": "d-1", "class": "ap"})] * 3)
            elif op == "ack" and handed:
                box.ack(handed[len(handed) // 2])
            elif op == "reopen":
                store.close()
                store = Store.open(directory)
                box = Outbox(store, clock)
            elif op == "thin":
                box.thin(max_bytes=1)
            stats = box.stats()
            held = [r[0] for r in store.query("SELECT seq FROM outbox ORDER BY seq")]
            assert handed == list(range(1, len(handed) + 1))
            assert held == list(range(stats.acked_seq + 1, stats.last_seq + 1))
    finally:
        store.close()
