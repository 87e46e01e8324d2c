"""Fixtures for central: a real app over a loopback socket, a fake clock, agents that sign with protocol/."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from base.clock import FakeClock as BaseFakeClock
from central.config import DB_FILE, CentralConfig
from central.enrollment import create_code, hash_secret
from central.keystore import Keystore, load_keystore
from central.storage.interface import Storage
from central.storage.postgres import PostgresStore
from central.storage.sqlite import SqliteStore
from central.web.app import create_app, make_runner
from central.web.appkeys import KEYS
from protocol.envelope import sign
from protocol.keys import generate_private_key, public_key_b64
from protocol.schema import REPORT_TYPE, STATE_TYPE, build_report, build_state, make_event
from tests.pg import pg_server  # noqa: F401 - the session's PostgreSQL database, for the store fixture

T0 = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
# Every test that takes the ``store`` fixture runs once per backend.
BACKENDS = ("sqlite", "postgresql")
API_TOKEN = "swc_test-token-all"
CARRIER_TOKEN = "swc_test-token-musterstadt"


class FakeClock(BaseFakeClock):
    """A clock the test moves by hand, starting at T0."""

    def __init__(self, start: datetime = T0) -> None:
        super().__init__(start)


class CentralTestServer(TestServer):
    """A TestServer whose runner leaves gzip bodies to central (as `serve` does)."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return make_runner(self.app)


@dataclass
class FakeAgent:
    """An enrolled agent as a test drives it: it builds, signs and numbers its events."""

    agent_id: str
    school_id: str
    key: Ed25519PrivateKey
    enrollment: dict[str, Any] = field(default_factory=dict)

    def events(self, first: int, last: int, *, salt: str = "") -> list[dict[str, Any]]:
        """Events first..last; ``salt`` changes their content (a forked history)."""
        out = []
        for seq in range(first, last + 1):
            at = T0 + timedelta(seconds=seq)
            if seq % 3 == 0:
                out.append(make_event(seq, at, "health.snapshot", {"host": {"load": seq}, "note": salt}))
            else:
                out.append(make_event(seq, at, "device.seen", {"id": f"d{seq}{salt}", "class": "ipad"}))
        return out

    def payload(
        self,
        events: Sequence[dict[str, Any]],
        *,
        school_id: str | None = None,
        agent_id: str | None = None,
        sent_at: datetime = T0,
    ) -> bytes:
        return build_report(agent_id or self.agent_id, school_id or self.school_id, events, sent_at)

    def config_headers(self, now: datetime, agent_id: str | None = None) -> dict[str, str]:
        """The signed-request headers of ``GET /v1/agents/{id}/config`` made at ``now``."""
        from protocol.httpsig import sign_request

        path = f"/v1/agents/{agent_id or self.agent_id}/config"
        return sign_request("GET", path, int(now.timestamp()), self.key)

    def report(self, first: int, last: int, *, salt: str = "", **kwargs: Any) -> bytes:
        """A signed report envelope over events first..last."""
        return sign(self.payload(self.events(first, last, salt=salt), **kwargs), REPORT_TYPE, self.key)

    def sign_events(self, events: Sequence[dict[str, Any]], **kwargs: Any) -> bytes:
        return sign(self.payload(events, **kwargs), REPORT_TYPE, self.key)

    def state(
        self,
        last_seq: int,
        open_incidents: Sequence[dict[str, Any]] = (),
        *,
        made_at: datetime = T0,
        snapshot: dict[str, Any] | None = None,
        devices: Sequence[dict[str, Any]] = (),
    ) -> bytes:
        payload = build_state(self.agent_id, self.school_id, last_seq, made_at, open_incidents, snapshot, devices)
        return sign(payload, STATE_TYPE, self.key)


def incident(incident_id: str, severity: str = "warning", **extra: Any) -> dict[str, Any]:
    """incident.opened data."""
    return {
        "id": incident_id,
        "key": f"k-{incident_id}",
        "category": "wlan",
        "severity": severity,
        "title": f"Problem {incident_id}",
        "subject": None,
        **extra,
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config(tmp_path: Path) -> CentralConfig:
    return CentralConfig(data_dir=tmp_path, enroll_max_failures=5)


@pytest.fixture
def keys(tmp_path: Path) -> Keystore:
    return load_keystore(tmp_path)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, config: CentralConfig) -> str:
    """The test's database as ``--db`` and the config file's ``db`` name it, once per backend: a SQLite
    file in tmp_path, or the session's PostgreSQL database emptied for this test."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_server").fresh())
    return str(config.data_dir / DB_FILE)


@pytest.fixture
def central_toml(tmp_path: Path, database: str) -> Path:
    """A central.toml naming the test's database, for the command line (``--config``)."""
    path = tmp_path / "central.toml"
    path.write_text(db_section(database))
    return path


def db_section(database: str) -> str:
    """The [central] section that names this database."""
    return f"[central]\ndb = {json.dumps(database)}\n"


@pytest.fixture
async def store(database: str) -> AsyncIterator[Storage]:
    """The central store on the test's database, with three schools and two read-API tokens."""
    db: Storage
    if database.startswith("postgresql://"):
        db = await PostgresStore.open(database)
    else:
        db = SqliteStore.open(Path(database))
    await db.add_school("gs-nord", "GS Nord", "Musterstadt", "2024-05-01T00:00:00.000000Z")
    await db.add_school("gs-sued", "GS Süd", "Musterstadt", "2024-05-01T00:00:00.000000Z")
    await db.add_school("gs-ost", "GS Ost", "Anderdorf", "2024-05-01T00:00:00.000000Z")
    await db.add_api_token(hash_secret(API_TOKEN), "test", None, "2024-05-01T00:00:00.000000Z")
    await db.add_api_token(hash_secret(CARRIER_TOKEN), "carrier", "Musterstadt", "2024-05-01T00:00:00.000000Z")
    yield db
    await db.close()


@pytest.fixture
async def client(
    aiohttp_client: Any, config: CentralConfig, store: Storage, keys: Keystore, clock: FakeClock
) -> TestClient:
    app = create_app(config, store, keys, clock=clock, silence_monitor=False)
    return await aiohttp_client(CentralTestServer(app))


async def enroll(
    client: TestClient,
    store: Storage,
    clock: FakeClock,
    school_id: str = "gs-nord",
    key: Ed25519PrivateKey | None = None,
) -> FakeAgent:
    """Enroll a fresh key over HTTP with a fresh code."""
    key = key or generate_private_key()
    code = await create_code(store, school_id, timedelta(hours=24), clock.now(), client.server.app[KEYS])
    resp = await client.post(
        "/v1/enroll",
        json={"code": code, "public_key": public_key_b64(key), "hostname": "srv", "agent_version": "0.1.0"},
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    return FakeAgent(body["agent_id"], body["school_id"], key, body)


@pytest.fixture
async def agent(client: TestClient, store: Storage, clock: FakeClock) -> FakeAgent:
    return await enroll(client, store, clock)


def auth(token: str = API_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


@pytest.fixture
def random_hex() -> Iterator[str]:
    yield secrets.token_hex(4)
