"""Fixtures for the agent's tests: a fake clock, a real SQLite file, the engine, a fake central."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.incidents.engine import IncidentEngine
from agent.privacy import Privacy
from agent.store import Store
from agent.store.outbox import Outbox
from base.clock import FakeClock
from tests.agent.fakecentral import FakeCentral

BIN = Path(sys.executable).parent
AGENT = str(BIN / "schulwart-agent")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "agent"
    path.mkdir()
    return path


@pytest.fixture
def store(data_dir: Path) -> Store:
    store = Store.open(data_dir)
    yield store
    store.close()


@pytest.fixture
def outbox(store: Store, clock: FakeClock) -> Outbox:
    return Outbox(store, clock)


@pytest.fixture
def privacy() -> Privacy:
    return Privacy(b"k" * 32)


@pytest.fixture
def engine(store: Store, outbox: Outbox, privacy: Privacy, clock: FakeClock) -> IncidentEngine:
    return IncidentEngine(store, outbox, privacy, clock, open_after=3, resolve_after=3, school="s1")


@pytest.fixture
async def central(aiohttp_server) -> AsyncIterator[tuple[FakeCentral, str]]:  # type: ignore[no-untyped-def]
    fake = FakeCentral()
    server = await aiohttp_server(fake.app())
    yield fake, str(server.make_url("")).rstrip("/")
