"""Acknowledge and annotate through the API: the technician's name comes from the token."""

from __future__ import annotations

import pytest

from protocol.tokens import issue_technician_token
from tests.techapi.conftest import ISSUER, NOW


@pytest.fixture
def headers() -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_technician_token(ISSUER, "A. Weber", "school:gs-nord", NOW)}


async def test_ack_records_the_technician_from_the_token(client, view, headers) -> None:
    response = await client.post("/api/v1/incidents/inc-1/ack", json={"note": "Sicherung raus"}, headers=headers)
    assert response.status == 200
    assert view.acks == [("inc-1", "A. Weber", "Sicherung raus")]


async def test_note_needs_text(client, view, headers) -> None:
    assert (await client.post("/api/v1/incidents/inc-1/notes", json={}, headers=headers)).status == 400
    assert (await client.post("/api/v1/incidents/inc-1/notes", json={"text": "  "}, headers=headers)).status == 400
    response = await client.post("/api/v1/incidents/inc-1/notes", json={"text": "Neu gestartet"}, headers=headers)
    assert response.status == 201
    assert view.incident_rows[0]["notes"] == [{"by": "A. Weber", "text": "Neu gestartet"}]


async def test_unknown_incident_is_404(client, headers) -> None:
    response = await client.post("/api/v1/incidents/nope/ack", headers=headers)
    assert response.status == 404
    assert (await response.json())["error"] == "no_such_incident"


@pytest.mark.parametrize(
    "body",
    [b"[1]", b'{"text": "a", "text": "b"}', b"not json", b'{"text": "' + b"x" * 20000 + b'"}'],
    ids=["array", "duplicate keys", "not json", "too large"],
)
async def test_bad_bodies_are_4xx_json(client, headers, body: bytes) -> None:
    response = await client.post("/api/v1/incidents/inc-1/notes", data=body, headers=headers)
    assert 400 <= response.status < 500
    assert "error" in await response.json()


@pytest.mark.parametrize("query", ["limit=0", "limit=5000", "offset=-1", "limit=abc", "state=maybe"])
async def test_bad_list_parameters(client, headers, query: str) -> None:
    path = "/api/v1/incidents?" + query if "state" in query else "/api/v1/devices?" + query
    response = await client.get(path, headers=headers)
    assert response.status == 400
    assert "error" in await response.json()


async def test_pagination(client, headers) -> None:
    data = await (await client.get("/api/v1/devices?limit=1&offset=1", headers=headers)).json()
    assert data["total"] == 2
    assert [d["id"] for d in data["devices"]] == ["d2"]


async def test_errors_are_json_even_for_unknown_routes_and_bugs(client, view, headers) -> None:
    response = await client.get("/api/v1/nothing-here", headers=headers)
    assert (response.status, await response.json()) == (404, {"error": "not_found"})
    response = await client.delete("/api/v1/incidents", headers=headers)
    assert response.status == 405
    assert (await response.json())["error"] == "method_not_allowed"

    def broken(**_kwargs):
        raise RuntimeError("a bug in the store")

    view.incidents = broken
    response = await client.get("/api/v1/incidents", headers=headers)
    assert (response.status, await response.json()) == (500, {"error": "internal"})
