"""In-process central on a real loopback socket with staff users, for the HTTP-level dashboard tests."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from central.users import hash_password
from tests.central.conftest import (  # noqa: F401 - fixtures re-used here
    CentralTestServer,
    FakeClock,
    clock,
    config,
    database,
    keys,
    pg_server,
    store,
)

PASSWORD = "richtig-geheim-42"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def web(aiohttp_client: Any, config: Any, store: Any, keys: Any, clock: FakeClock) -> TestClient:  # noqa: F811
    from central.web.app import create_app

    await store.add_user("hotline", "admin", None, hash_password(PASSWORD), "2024-05-01T00:00:00.000000Z")
    at = "2024-05-01T00:00:00.000000Z"
    await store.add_user("musterstadt", "carrier", "Musterstadt", hash_password(PASSWORD), at)
    app = create_app(config, store, keys, clock=clock, silence_monitor=False)
    return await aiohttp_client(CentralTestServer(app))


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, html[:500]
    return match.group(1)


async def login(client: TestClient, name: str = "hotline", password: str = PASSWORD) -> Any:
    """Log in through the form (GET for the token, POST); the response of the POST, not followed."""
    page = await client.get("/login")
    token = csrf_of(await page.text())
    return await client.post(
        "/login", data={"csrf": token, "name": name, "password": password, "next": "/"}, allow_redirects=False
    )
