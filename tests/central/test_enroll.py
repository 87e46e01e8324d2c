"""POST /v1/enroll: codes are one-use, expire, are rate-limited per address; weak and reused keys are refused."""

from __future__ import annotations

import logging
from datetime import timedelta

from aiohttp.test_utils import TestClient

from central.enrollment import create_code
from central.storage.interface import Storage
from central.web.appkeys import KEYS
from protocol.encoding import b64encode
from protocol.keys import generate_private_key, public_key_b64

from .conftest import FakeClock, enroll

# The identity point (y=1) and a point of order 8: both would verify forged signatures.
IDENTITY = (1).to_bytes(32, "little")
ORDER_8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")


def request(code: str, key: str | None = None) -> dict[str, str]:
    return {
        "code": code,
        "public_key": key or public_key_b64(generate_private_key()),
        "hostname": "schulserver",
        "agent_version": "0.1.0",
    }


async def test_enroll_answer(client: TestClient, store: Storage, clock: FakeClock) -> None:
    agent = await enroll(client, store, clock, "gs-ost")
    body = agent.enrollment
    assert body["school_id"] == "gs-ost" and body["carrier"] == "Anderdorf" and body["school_name"] == "GS Ost"
    assert body["central_public_key"] != body["token_public_key"]
    assert body["central_time"] == "2024-05-06T08:00:00.000000Z"
    assert body["sync"] == {
        "report_interval_s": 30,
        "max_batch_events": 500,
        "max_batch_bytes": 262144,
        "snapshot_interval_s": 300,
    }
    stored = await store.get_agent(agent.agent_id)
    assert stored is not None and stored.school_id == "gs-ost" and stored.hostname == "srv"


async def test_code_works_once_and_is_not_logged(
    client: TestClient, store: Storage, clock: FakeClock, caplog
) -> None:
    caplog.set_level(logging.INFO)
    code = await create_code(store, "gs-nord", timedelta(hours=1), clock.now(), client.server.app[KEYS])
    resp = await client.post("/v1/enroll", json=request(code))
    assert resp.status == 201
    resp = await client.post("/v1/enroll", json=request(code))
    assert resp.status == 403 and await resp.json() == {"error": "invalid_code"}
    assert len(await store.list_agents("gs-nord")) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "central.enrollment"]
    assert any("enrolled agent=" in line and "school=gs-nord" in line and "from=127.0.0.1" in line for line in lines)
    assert any("enroll refused from=127.0.0.1 school=gs-nord reason=invalid_code" in line for line in lines)
    assert not any(code in r.getMessage() for r in caplog.records)


async def test_expired_and_unknown_codes(client: TestClient, store: Storage, clock: FakeClock) -> None:
    code = await create_code(store, "gs-nord", timedelta(hours=1), clock.now(), client.server.app[KEYS])
    clock.advance(timedelta(hours=1, seconds=1))
    for attempt in (code, "not-a-code"):
        resp = await client.post("/v1/enroll", json=request(attempt))
        assert resp.status == 403 and await resp.json() == {"error": "invalid_code"}
    assert await store.list_agents() == []


async def test_small_order_keys_refused_without_burning_the_code(
    client: TestClient, store: Storage, clock: FakeClock
) -> None:
    code = await create_code(store, "gs-nord", timedelta(hours=1), clock.now(), client.server.app[KEYS])
    for raw in (IDENTITY, ORDER_8, b"\x00" * 31):
        resp = await client.post("/v1/enroll", json=request(code, b64encode(raw)))
        assert resp.status == 400, raw
        assert (await resp.json())["error"] in ("weak_key", "bad_key_length")
    resp = await client.post("/v1/enroll", json=request(code))
    assert resp.status == 201


async def test_key_already_enrolled(client: TestClient, store: Storage, clock: FakeClock) -> None:
    key = generate_private_key()
    await enroll(client, store, clock, key=key)
    code = await create_code(store, "gs-sued", timedelta(hours=1), clock.now(), client.server.app[KEYS])
    resp = await client.post("/v1/enroll", json=request(code, public_key_b64(key)))
    assert resp.status == 409 and await resp.json() == {"error": "key_enrolled"}
    resp = await client.post("/v1/enroll", json=request(code))  # the code was not used up
    assert resp.status == 201


async def test_malformed_requests(client: TestClient) -> None:
    for body in (b"{", b"[]", b'{"code": 1}', b'{"code":"a","code":"b"}', b"x" * 20000):
        resp = await client.post("/v1/enroll", data=body)
        assert resp.status in (400, 413), body[:20]
        assert "error" in await resp.json()


async def test_wrong_codes_are_rate_limited(client: TestClient, store: Storage, clock: FakeClock) -> None:
    for _ in range(5):  # the config fixture allows 5 failures per window
        resp = await client.post("/v1/enroll", json=request("wrong"))
        assert resp.status == 403
    good = await create_code(store, "gs-nord", timedelta(hours=1), clock.now(), client.server.app[KEYS])
    resp = await client.post("/v1/enroll", json=request(good))
    assert resp.status == 429 and await resp.json() == {"error": "rate_limited"}
    clock.advance(timedelta(minutes=11))
    resp = await client.post("/v1/enroll", json=request(good))
    assert resp.status == 201
    metrics = await (await client.get("/metrics")).text()
    assert 'reason="invalid_code",route="/v1/enroll"} 5.0' in metrics
    assert 'reason="rate_limited",route="/v1/enroll"} 1.0' in metrics
