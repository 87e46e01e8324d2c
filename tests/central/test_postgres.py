"""PostgreSQL as several central nodes share it: the database, not a process, decides.

Each "node" is its own PostgresStore (its own connection pool) and its own aiohttp app on a
loopback socket, as two `serve` processes would be.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from base.errors import SchemaTooNewError
from central.config import CentralConfig
from central.doctor import check_postgres
from central.keystore import Keystore
from central.storage.migrations import MIGRATIONS as SQLITE_MIGRATIONS
from central.storage.postgres import PostgresStore
from central.storage.postgres_migrations import LATEST, MIGRATIONS
from central.web.app import create_app
from protocol.keys import generate_private_key, public_key_b64
from tests.pg import Server

from .conftest import CentralTestServer, FakeAgent, FakeClock, enroll


def test_the_steps_are_those_of_sqlite() -> None:
    """A schema step added on one backend and not the other fails here."""
    assert [(m.version, m.name) for m in MIGRATIONS] == [(m.version, m.name) for m in SQLITE_MIGRATIONS]


async def test_a_newer_schema_is_refused_and_left_alone(pg_server: Server) -> None:
    url = pg_server.new_schema()
    store = await PostgresStore.open(url)
    await store.add_school("gs-a", "A", "C", "2024-05-01T00:00:00.000000Z")
    await store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, 'future')", (LATEST + 1,))
    with pytest.raises(SchemaTooNewError, match=f"schema version {LATEST + 1}"):
        await PostgresStore.open(url)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM schools").fetchone() == (1,)


async def test_two_nodes_starting_at_once_migrate_once(pg_server: Server) -> None:
    url = pg_server.new_schema()
    stores = await asyncio.gather(*(PostgresStore.open(url) for _ in range(3)))
    for store in stores:
        await store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == list(range(1, LATEST + 1))


@pytest.fixture
async def nodes(
    aiohttp_client: Any, pg_server: Server, config: CentralConfig, keys: Keystore, clock: FakeClock
) -> AsyncIterator[tuple[list[TestClient], list[PostgresStore]]]:
    """Two central nodes (a pool and an app each) on one fresh PostgreSQL database, sharing the keys."""
    url = pg_server.fresh()
    stores = [await PostgresStore.open(url), await PostgresStore.open(url)]
    await stores[0].add_school("gs-nord", "GS Nord", "Musterstadt", "2024-05-01T00:00:00.000000Z")
    clients = []
    for store in stores:
        app = create_app(config, store, keys, clock=clock, silence_monitor=False)
        clients.append(await aiohttp_client(CentralTestServer(app)))
    yield clients, stores
    for store in stores:
        await store.close()


async def test_two_nodes_given_the_same_batches_at_once_store_each_event_once(
    nodes: tuple[list[TestClient], list[PostgresStore]], clock: FakeClock
) -> None:
    (one, two), (store, other) = nodes
    agent: FakeAgent = await enroll(one, store, clock)
    # Batches that overlap (1..20, 11..30, …), each posted to both nodes at the same moment, twice.
    posts = []
    for first in range(1, 200, 10):
        body = agent.report(first, first + 19)
        posts += [one.post("/v1/reports", data=body), two.post("/v1/reports", data=body)] * 2
    answers = await asyncio.gather(*posts)
    statuses = sorted({a.status for a in answers})
    # A batch may arrive before the one it follows (409 gap); none may fail otherwise.
    assert set(statuses) <= {200, 409}, statuses
    # The agent resends what was refused, in order, through either node.
    held = await other.get_agent(agent.agent_id)
    assert held is not None
    while held.acked_seq < 210:
        client = (one, two)[held.acked_seq % 2]
        first = held.acked_seq + 1
        resp = await client.post("/v1/reports", data=agent.report(first, min(first + 19, 210)))
        assert resp.status == 200, await resp.text()
        held = await store.get_agent(agent.agent_id)
        assert held is not None
    events = await other.get_events(agent.agent_id)
    assert [e.seq for e in events] == list(range(1, 211))


async def test_two_senders_never_lease_the_same_message(nodes: tuple[list[TestClient], list[PostgresStore]]) -> None:
    _, (store, other) = nodes
    async with store.transaction() as tx:
        for n in range(40):
            await tx.add_alert_delivery("ops", f"t{n}", "opened", "gs-nord", "{}", "2024-05-06T08:00:00.000000Z", "x")
    now, until = "2024-05-06T08:00:01.000000Z", "2024-05-06T08:05:00.000000Z"
    claims = await asyncio.gather(*(s.claim_alert_deliveries(now, until, 7) for s in (store, other) * 4))
    ids = [d.id for claimed in claims for d in claimed]
    assert len(ids) == len(set(ids)) == 40


async def test_wrong_codes_spread_over_two_nodes_meet_one_limit(
    nodes: tuple[list[TestClient], list[PostgresStore]], config: CentralConfig
) -> None:
    (one, two), _ = nodes
    statuses = []
    for n in range(config.enroll_max_failures + 1):
        body = {"code": f"wrong-code-{n}", "public_key": public_key_b64(generate_private_key()), "hostname": "srv",
                "agent_version": "0.1.0"}  # fmt: skip
        statuses.append((await (one, two)[n % 2].post("/v1/enroll", json=body)).status)
    assert statuses[-1] == 429 and 429 not in statuses[:-1], statuses


async def test_doctor_reads_the_schema_and_names_an_unreachable_server_without_its_password(
    pg_server: Server,
) -> None:
    url = pg_server.new_schema()
    (empty,) = check_postgres(url)
    assert empty.outcome == "ok" and f"schema 0; migrated from schema 0 to {LATEST}" in empty.detail
    await (await PostgresStore.open(url)).close()
    (ready,) = check_postgres(url)
    assert ready.outcome == "ok" and f"0 school(s), schema {LATEST}" in ready.detail
    (down,) = check_postgres("postgresql://schulwart:s3cret-pw@127.0.0.1:1/x")
    assert down.outcome == "fail" and "127.0.0.1:1/x" in down.detail and "s3cret-pw" not in down.detail
