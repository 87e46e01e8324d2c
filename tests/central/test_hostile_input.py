"""Values that parse but cannot be written back: central refuses them with 400 JSON, never 500."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient

from central.storage.interface import Storage
from protocol.encoding import dumps
from protocol.envelope import sign_envelope
from protocol.schema import REPORT_TYPE
from tests.central.conftest import FakeAgent, auth


def _signed(agent: FakeAgent, payload: bytes) -> bytes:
    return dumps(sign_envelope(payload, REPORT_TYPE, agent.key))


@pytest.mark.parametrize(
    "data", ['{"host":{"load":1e400}}', '{"host":{"name":"AP \\ud800 evil"}}', '{"\\ud800":1}'],
    ids=["float overflow", "lone surrogate", "surrogate key"],
)
async def test_signed_report_with_unwritable_value_is_400(
    client: TestClient, store: Storage, agent: FakeAgent, data: str
) -> None:
    payload = (
        f'{{"v":1,"agent_id":"{agent.agent_id}","school_id":"{agent.school_id}","seq_from":1,"seq_to":1,'
        f'"sent_at":"2024-05-06T08:00:00Z","events":[{{"seq":1,"at":"2024-05-06T08:00:01Z",'
        f'"kind":"health.snapshot","data":{data}}}]}}'
    ).encode()
    resp = await client.post("/v1/reports", data=_signed(agent, payload))
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"] == "bad_json"
    assert await store.get_events(agent.agent_id) == []


async def test_enroll_with_lone_surrogate_hostname_is_400(client: TestClient) -> None:
    body = b'{"code":"x","public_key":"AAAA","hostname":"srv\\udc80","agent_version":"0.1.0"}'
    resp = await client.post("/v1/enroll", data=body)
    assert resp.status == 400
    assert (await resp.json())["error"] == "bad_json"


@pytest.mark.parametrize("limit", ["\u00b2", "\u0661", "\u0663\u0660", "+5", "10_0"])
async def test_incident_limit_must_be_ascii_digits(client: TestClient, limit: str) -> None:
    resp = await client.get("/v1/incidents", params={"limit": limit}, headers=auth())
    assert resp.status == 400
    assert (await resp.json())["error"] == "bad_query"


async def test_bearer_token_with_raw_bytes_is_401_json(client: TestClient) -> None:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"GET /v1/schools HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer \xff\xed\xa0\x80\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), head[:80]
    assert b'"error"' in body


async def test_school_detail_shows_events_the_agent_dropped(client: TestClient, agent: FakeAgent) -> None:
    snapshot = {"agent": {"dropped_events": 334}, "outbox": {"last_seq": 0}}
    state = agent.state(0, snapshot=snapshot)
    resp = await client.post("/v1/reports", data=state)
    assert resp.status == 200, await resp.text()
    detail = await (await client.get("/v1/schools/gs-nord", headers=auth())).json()
    assert detail["dropped_events"] == 334


async def test_central_json_is_nosniff_and_posts_and_metrics_are_no_store(client: TestClient, agent: FakeAgent) -> None:
    resp = await client.post("/v1/reports", data=agent.report(1, 1))
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    schools = await client.get("/v1/schools", headers=auth())
    assert schools.headers["X-Content-Type-Options"] == "nosniff"
    metrics = await client.get("/metrics")
    assert metrics.headers["Cache-Control"] == "no-store"
    refused = await client.get("/v1/schools")
    assert refused.status == 401 and refused.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/login", "/logout"])
@pytest.mark.parametrize(
    "content_type", ["multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; charset=utf-8"]
)
async def test_a_form_post_aiohttp_cannot_read_is_400_not_500(client: TestClient, path: str, content_type: str) -> None:
    """Found by schemathesis: a multipart type without a boundary made request.post() raise ValueError."""
    resp = await client.post(path, data=b"csrf=x", headers={"Content-Type": content_type}, allow_redirects=False)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"] == "bad_form"
