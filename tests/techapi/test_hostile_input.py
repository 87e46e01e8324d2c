"""Values that parse but cannot be written back are refused at the agent's API door (4xx JSON, never 500)."""

from __future__ import annotations

import pytest

from protocol.tokens import issue_technician_token
from tests.techapi.conftest import ISSUER, NOW


@pytest.fixture
def headers() -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_technician_token(ISSUER, "A. Weber", "school:gs-nord", NOW)}


@pytest.mark.parametrize(
    "body",
    [b'{"text": "x\\ud800y"}', b'{"text": "ok", "n": 1e400}', b'{"\\udfff": 1, "text": "ok"}'],
    ids=["lone surrogate", "float overflow", "surrogate key"],
)
async def test_note_bodies_that_cannot_be_stored_are_400(client, view, headers, body: bytes) -> None:
    response = await client.post("/api/v1/incidents/inc-1/notes", data=body, headers=headers)
    assert response.status == 400
    assert (await response.json())["error"] == "bad_json"
    assert view.incident_rows[0]["notes"] == []


async def test_ack_note_with_lone_surrogate_is_400_and_nothing_acked(client, view, headers) -> None:
    response = await client.post("/api/v1/incidents/inc-1/ack", data=b'{"note": "\\ud800"}', headers=headers)
    assert response.status == 400
    assert view.acks == []


@pytest.mark.parametrize("value", ["\u00b2", "\u0661", "1\u00b2", "+1", " 1", "1_0", "\uff10"])
@pytest.mark.parametrize("name", ["offset", "limit"])
async def test_non_ascii_digits_in_query_are_400(client, headers, name: str, value: str) -> None:
    # str.isdigit() accepts "²", int() does not: the check must be ASCII digits only.
    response = await client.get("/api/v1/devices", params={name: value}, headers=headers)
    assert response.status == 400
    assert "error" in await response.json()


async def test_authorization_header_with_raw_bytes_is_401_json(client) -> None:
    # aiohttp decodes header bytes that are not UTF-8 as surrogate escapes.
    response = await client.get("/api/v1/status", headers={"Authorization": b"Bearer \xff\xfe".decode("latin-1")})
    assert response.status == 401
    assert (await response.json())["error"]


async def test_raw_non_utf8_authorization_bytes_are_401_json(client) -> None:
    import asyncio

    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer \xff\xfe\xed\xa0\x80\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), head[:80]
    assert b'"error"' in body
