"""Winding the clock back must not revive a token: the real view reads the floor the sync client stored.

The floor is what central's signed configuration said the time was (``raise_time_floor``, the
path ``SyncClient.fetch_config`` takes); it only ever moves up. A real SQLite store behind the
real AgentView and routes, over a loopback socket.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from agent.identity import Identity, raise_time_floor, time_floor
from agent.incidents.engine import IncidentEngine
from agent.privacy import Privacy
from agent.store import Store
from agent.store.outbox import Outbox
from agent.techapi.auth import Authenticator
from agent.techapi.routes import setup_technician_api
from agent.techapi.store_view import AgentView
from base.clock import FakeClock
from base.ratelimit import FailureLimiter
from protocol.keys import generate_private_key, keyid, public_key_b64
from protocol.schema import format_time
from protocol.tokens import issue_technician_token
from tests.techapi.conftest import ISSUER, NOW, Clock

ADMIN = "admin-token-0123456789abcdef0123"
AGENT_KEY = generate_private_key()


def _identity() -> Identity:
    return Identity(
        agent_id="agent-1",
        school_id="gs-nord",
        carrier="Kreis A",
        school_name="GS Nord",
        central_url="http://central.invalid",
        central_public_key=public_key_b64(generate_private_key()),
        token_public_key=public_key_b64(ISSUER),
        keyid=keyid(AGENT_KEY),
        enrolled_at="2026-11-01T08:00:00Z",
    )


@pytest.fixture
def store(tmp_path: Path) -> Any:
    store = Store.open(tmp_path)
    yield store
    store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(aiohttp_client: Any, store: Store, clock: Clock, tmp_path: Path) -> Any:
    engine_clock = FakeClock()
    engine = IncidentEngine(store, Outbox(store, engine_clock), Privacy(b"k" * 32), engine_clock, school="gs-nord")
    view = AgentView(
        store=store, engine=engine, data_dir=tmp_path, identity=_identity(), sections=dict, wake=lambda: None
    )
    app = web.Application()
    auth = Authenticator(view, ADMIN, lambda: clock.now, FailureLimiter(lambda: 0.0))
    setup_technician_api(app, view, auth, CollectorRegistry())
    return await aiohttp_client(app)


def _raise(store: Store, when: Any) -> str:
    with store.transaction() as conn:
        return raise_time_floor(store, conn, format_time(when))


async def test_a_floor_past_the_tokens_expiry_refuses_it_though_the_clock_says_otherwise(
    client: Any, store: Store, clock: Clock
) -> None:
    token = {"Authorization": "Bearer " + issue_technician_token(ISSUER, "A. Weber", "school:gs-nord", NOW)}
    clock.now = NOW + timedelta(hours=1)
    assert (await client.get("/api/v1/status", headers=token)).status == 200
    _raise(store, NOW + timedelta(hours=9))  # central's config said so at the last sync; the clock was wound back
    response = await client.get("/api/v1/status", headers=token)
    assert response.status == 401
    assert (await response.json())["error"] == "token_expired"


async def test_the_floor_never_moves_down(client: Any, store: Store, clock: Clock) -> None:
    later, earlier = NOW + timedelta(hours=9), NOW + timedelta(hours=2)
    assert _raise(store, later) == format_time(later)
    assert _raise(store, earlier) == format_time(later)  # an older signed time (replayed config) changes nothing
    assert time_floor(store) == format_time(later)
    token = {"Authorization": "Bearer " + issue_technician_token(ISSUER, "A. Weber", "school:gs-nord", NOW)}
    clock.now = NOW + timedelta(hours=1)
    assert (await client.get("/api/v1/status", headers=token)).status == 401
