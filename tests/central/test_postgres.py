"""PostgreSQL as several central nodes share it: the database, not a process, decides.

Each "node" is its own PostgresStore (its own connection pool) and its own aiohttp app on a
loopback socket, as two `serve` processes would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from base.errors import SchemaTooNewError
from central.config import CentralConfig
from central.doctor import check_postgres
from central.keystore import Keystore
from central.storage.interface import EventRow, IncidentQuery
from central.storage.migrations import MIGRATIONS as SQLITE_MIGRATIONS
from central.storage.postgres import PostgresStore
from central.storage.postgres_migrations import LATEST, MIGRATIONS
from central.web.app import create_app
from protocol.keys import generate_private_key, public_key_b64
from protocol.schema import make_event
from tests.pg import Server, admin, database_url

from .conftest import T0, CentralTestServer, FakeAgent, FakeClock, enroll, incident


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


def _old_schema(url: str, steps: int) -> None:
    """A database as the release of schema version ``steps`` left it (its steps, its bookkeeping)."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("CREATE TABLE schema_migrations (version bigint PRIMARY KEY, name text NOT NULL,"
                     " applied_at text NOT NULL DEFAULT 'then')")  # fmt: skip
        for migration in MIGRATIONS[:steps]:
            for statement in migration.statements:
                conn.execute(statement)  # type: ignore[arg-type]
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (migration.version, migration.name)
            )


@pytest.mark.parametrize("steps", range(1, LATEST))
async def test_a_database_of_every_older_version_is_migrated_with_its_data(pg_server: Server, steps: int) -> None:
    url = pg_server.new_schema()
    _old_schema(url, steps)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schools (id, name, carrier, created_at) VALUES ('gs-nord', 'GS Nord', 'K', 'x')")
        conn.execute(
            "INSERT INTO agents (agent_id, school_id, keyid, public_key, hostname, version, enrolled_at, acked_seq)"
            " VALUES ('a-1', 'gs-nord', 'kid', '\\x00', 'srv', '0.1', '2025-01-01T00:00:00Z', 2)"
        )
        for seq in (1, 2):
            conn.execute(
                "INSERT INTO events (agent_id, seq, school_id, kind, at, digest, body, received_at)"
                " VALUES ('a-1', %s, 'gs-nord', 'health.snapshot', '2025-01-01T00:00:00Z', 'd', '{}', 'r')",
                (seq,),
            )
    store = await PostgresStore.open(url)
    try:
        assert [e.seq for e in await store.get_events("a-1")] == [1, 2]
        agent = await store.get_agent("a-1")
        assert agent is not None and agent.acked_seq == 2 and not agent.revoked
        assert agent.config_version is None and agent.config_overrides == ()
        assert [s.school.id for s in await store.school_summaries()] == ["gs-nord"]
    finally:
        await store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == list(range(1, LATEST + 1))


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


@pytest.fixture
def small_tablespace() -> Iterator[tuple[str, Path]]:
    """A PostgreSQL database whose files live on a 16 MiB tmpfs (its URL, the mount); root and a local server."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no local postgres user: the server is elsewhere")
    mount = Path(tempfile.mkdtemp(prefix="schulwart-pg-"))
    mount.chmod(0o755)
    options = f"size=16m,uid={owner.pw_uid},gid={owner.pw_gid},mode=700"
    command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)]
    done = subprocess.run(command, capture_output=True, check=False)
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    name = f"schulwart_full_{secrets.token_hex(4)}"
    try:
        with admin() as conn:
            try:
                conn.execute(f"CREATE TABLESPACE {name} LOCATION '{mount}'")
            except psycopg.Error as exc:
                pytest.skip(f"the server cannot use a local tablespace: {exc}")
            conn.execute(f"CREATE DATABASE {name} TABLESPACE {name}")
        yield database_url(name), mount
    finally:
        with admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"DROP TABLESPACE IF EXISTS {name}")
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


async def test_a_full_disk_under_postgresql_answers_507_stores_nothing_and_heals(
    aiohttp_client: Any, small_tablespace: tuple[str, Path], config: CentralConfig, keys: Keystore, clock: FakeClock
) -> None:
    """SQLSTATE 53100 (disk full) part-way through a batch: the batch is rolled back whole, central
    answers 507 store_full as it does on SQLite, and the agent's resend goes through once there is room."""
    url, mount = small_tablespace
    store = await PostgresStore.open(url)
    try:
        await store.add_school("gs-nord", "GS Nord", "Musterstadt", "2024-05-01T00:00:00.000000Z")
        client = await aiohttp_client(CentralTestServer(create_app(config, store, keys, clock=clock)))
        agent = await enroll(client, store, clock)
        resp = await client.post("/v1/reports", data=agent.report(1, 3))
        assert resp.status == 200, await resp.text()
        filler = mount / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as fh:  # every free byte, as root may
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        # Incompressible text, so that the table must grow (TOAST would squeeze repeated bytes).
        big = [
            make_event(seq, T0, "health.snapshot", {"host": {"pad": secrets.token_urlsafe(3000)}})
            for seq in range(4, 40)
        ]
        resp = await client.post("/v1/reports", data=agent.sign_events(big))
        assert (resp.status, (await resp.json())["error"]) == (507, "store_full")
        assert [e.seq for e in await store.get_events(agent.agent_id)] == [1, 2, 3]
        held = await store.get_agent(agent.agent_id)
        assert held is not None and held.acked_seq == 3
        filler.unlink()  # space returns: the same batch, resent, is stored whole
        resp = await client.post("/v1/reports", data=agent.sign_events(big))
        assert (resp.status, await resp.json()) == (200, {"acked_through": 39})
        assert [e.seq for e in await store.get_events(agent.agent_id)] == list(range(1, 40))
    finally:
        await store.close()


async def test_pipelined_ingest_stores_what_every_batch_carried(
    nodes: tuple[list[TestClient], list[PostgresStore]], clock: FakeClock
) -> None:
    """Ingest's transaction is pipelined: the writes nobody reads travel with the next read or the
    COMMIT. Every later read of the same transaction still sees them: devices, incidents and the
    snapshot of each batch, the ack, every event once.

    (How many times the loop waited for the server per batch, counted with ``loop.add_reader``,
    went from 11-16 to 7-10; that count depends on how the answers are split into TCP segments,
    so it is reported, not asserted.)
    """
    (one, _), (store, _) = nodes
    agent: FakeAgent = await enroll(one, store, clock)
    for first in (1, 21, 41):
        events = agent.events(first, first + 19)
        events[4] = make_event(first + 4, T0 + timedelta(seconds=first + 4), "incident.opened", incident(f"i{first}"))
        resp = await one.post("/v1/reports", data=agent.sign_events(events))
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["acked_through"] == first + 19
    held = await store.get_agent(agent.agent_id)
    assert held is not None and held.acked_seq == 60 and held.snapshot_seq == 60
    assert [e.seq for e in await store.get_events(agent.agent_id)] == list(range(1, 61))
    opened = {r["incident_id"] for r in await store.list_incidents(IncidentQuery(status="open"))}
    assert opened >= {"i1", "i21", "i41"}
    devices = {d["device_id"] for d in await store.list_devices(agent.school_id)}
    assert {"d1", "d59"} <= devices


async def test_a_failing_write_that_nobody_waited_for_rolls_its_transaction_back(pg_server: Server) -> None:
    """A pipelined write's error comes at the next read or the COMMIT, and nothing of the transaction stays."""
    store = await PostgresStore.open(pg_server.new_schema())
    try:
        await store.add_school("gs-a", "A", "C", "2024-05-01T00:00:00.000000Z")
        key = generate_private_key()
        async with store.transaction() as tx:
            await tx.add_agent("ag-1", "gs-a", "kid-1", key.public_key().public_bytes_raw(), "srv", "0.1.0",
                               "2024-05-01T00:00:00.000000Z")  # fmt: skip
        row = EventRow("ag-1", 1, "gs-a", "device.seen", "2024-05-01T00:00:00.000000Z", "d", '{"x":1}')
        async with store.transaction() as tx:
            await tx.insert_events([row], "2024-05-01T00:00:01.000000Z")
        with pytest.raises(psycopg.errors.UniqueViolation):
            async with store.transaction() as tx:
                await tx.record_contact("ag-1", 7, "2024-05-01T00:00:02.000000Z", None, None)
                await tx.insert_events([row], "2024-05-01T00:00:02.000000Z")  # the same (agent, seq): refused
                await tx.set_snapshot("ag-1", "{}", 1, "2024-05-01T00:00:02.000000Z")
        held = await store.get_agent("ag-1")
        assert held is not None and held.acked_seq == 0 and held.last_report_at is None
        assert await store.count_events("ag-1") == 1
    finally:
        await store.close()
