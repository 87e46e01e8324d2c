"""Requests that change state commit all or nothing; a full store answers 507 JSON, not 500.

A real SQLite file behind the real AgentView and routes, over a loopback socket. "Full" is
SQLite's own SQLITE_FULL, produced by capping the database's page count (what a full disk gives
the agent, without filling one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.incidents.engine import IncidentEngine, list_incidents, notes_for
from agent.monitors.interface import Signal
from agent.privacy import Privacy
from agent.store import Store, StoreFullError
from agent.store.outbox import Outbox
from agent.techapi.auth import Authenticator
from agent.techapi.routes import setup_technician_api
from agent.techapi.store_view import AgentView
from base.clock import FakeClock
from base.ratelimit import FailureLimiter

ADMIN = "admin-token-0123456789abcdef0123"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def parts(tmp_path: Path) -> Any:
    store = Store.open(tmp_path)
    clock = FakeClock()
    outbox = Outbox(store, clock)
    engine = IncidentEngine(store, outbox, Privacy(b"k" * 32), clock, open_after=1, resolve_after=1, school="s1")
    engine.observe([Signal("ap-down:ap-1", True, "wlan", "critical", "AP down", "ap-1", clock.now())])
    yield store, outbox, engine
    store.close()


@pytest.fixture
async def client(aiohttp_client: Any, parts: Any, tmp_path: Path) -> Any:
    store, _outbox, engine = parts
    view = AgentView(store=store, engine=engine, data_dir=tmp_path, identity=None, sections=dict, wake=lambda: None)
    app = web.Application()
    auth = Authenticator(view, ADMIN, engine.clock.now, FailureLimiter(lambda: 0.0))
    setup_technician_api(app, view, auth, lambda: (b"", "text/plain; version=0.0.4; charset=utf-8"))
    return await aiohttp_client(app)


def _fill(store: Store, engine: IncidentEngine, incident_id: str) -> None:
    """Cap the database at its size and fill it with notes: the next note gets SQLITE_FULL.

    Filling another table would not do: SQLite fills free room table by table.
    """
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages}")
    for size in (1900, 500, 100):
        for _ in range(100_000):
            try:
                engine.add_note(incident_id, "filler", "x" * size)
            except StoreFullError:
                break


def _notes_fail(store: Store) -> None:
    """The note's row cannot be stored (as on a full disk); the acknowledgement's rows could."""
    store.conn.execute(
        "CREATE TEMP TRIGGER notes_full BEFORE INSERT ON incident_notes"
        " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )


async def test_ack_with_a_note_that_cannot_be_stored_stores_nothing_and_answers_507(client: Any, parts: Any) -> None:
    store, outbox, _engine = parts
    incident = list_incidents(store)[0]
    last_seq = outbox.last_seq
    _notes_fail(store)
    note = "Sicherung F3 im Schrank 2 getauscht."
    response = await client.post(f"/api/v1/incidents/{incident.id}/ack", json={"note": note}, headers=HEADERS)
    assert response.status == 507
    assert await response.json() == {"error": "store_full"}
    assert response.headers["Cache-Control"] == "no-store"
    # All or nothing: not acknowledged, no note, and no event queued for central.
    assert list_incidents(store)[0].acknowledged_at is None
    assert notes_for(store, [incident.id])[incident.id] == []
    assert outbox.last_seq == last_seq


async def test_ack_with_a_note_commits_both_in_one_go(client: Any, parts: Any) -> None:
    store, outbox, _engine = parts
    incident = list_incidents(store)[0]
    last_seq = outbox.last_seq
    response = await client.post(f"/api/v1/incidents/{incident.id}/ack", json={"note": "erledigt"}, headers=HEADERS)
    assert response.status == 200
    kinds = [r[0] for r in store.query("SELECT kind FROM outbox WHERE seq > ? ORDER BY seq", (last_seq,))]
    assert kinds == ["incident.acknowledged", "note.added"]
    assert list_incidents(store)[0].acknowledged_by == "local admin"


async def test_note_on_a_full_store_is_507_and_space_returning_heals(client: Any, parts: Any) -> None:
    store, _outbox, engine = parts
    incident = list_incidents(store)[0]
    _fill(store, engine, incident.id)
    before = len(notes_for(store, [incident.id])[incident.id])
    response = await client.post(f"/api/v1/incidents/{incident.id}/notes", json={"text": "x" * 1900}, headers=HEADERS)
    assert response.status == 507
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.conn.execute("PRAGMA max_page_count = 1073741823")
    response = await client.post(f"/api/v1/incidents/{incident.id}/notes", json={"text": "x" * 1900}, headers=HEADERS)
    assert response.status == 201
    assert len(notes_for(store, [incident.id])[incident.id]) == before + 1
