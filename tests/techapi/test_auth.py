"""Who may read the school's state: each refusal over a real socket, and its logged reason."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from protocol.encoding import b64url_decode_nopad, b64url_encode_nopad
from protocol.keys import generate_private_key
from protocol.tokens import issue_technician_token
from tests.techapi.conftest import ADMIN_TOKEN, ISSUER, NOW

ROUTES = ["/api/v1/status", "/api/v1/devices", "/api/v1/incidents", "/metrics"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _flip(token: str) -> str:
    body = bytearray(b64url_decode_nopad(token[len("v4.public.") :]))
    body[5] ^= 0x01
    return "v4.public." + b64url_encode_nopad(bytes(body))


@pytest.mark.parametrize("path", ROUTES)
async def test_nothing_is_readable_without_a_token(client, path: str) -> None:
    response = await client.get(path)
    assert response.status == 401
    assert (await response.json())["error"] == "missing_token"
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_healthz_and_the_page_shell_need_no_token(client) -> None:
    assert (await client.get("/healthz")).status == 200
    page = await client.get("/")
    assert page.status == 200
    html = await page.text()
    assert "Lenas" not in html  # the shell carries no data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert (await client.get("/static/app.js")).status == 200
    assert (await client.get("/static/view.py")).status == 404  # only the page's own files
    assert (await client.get("/static/index.html")).status == 404


REFUSALS = [
    ("another school", lambda: issue_technician_token(ISSUER, "A. Weber", "school:gs-sued", NOW), 403, "scope"),
    ("another carrier", lambda: issue_technician_token(ISSUER, "A. Weber", "carrier:Kreis B", NOW), 403, "scope"),
    (
        "expired",
        lambda: issue_technician_token(ISSUER, "A. Weber", "school:gs-nord", NOW - timedelta(hours=9)),
        401,
        "token_expired",
    ),
    ("flipped byte", lambda: _flip(issue_technician_token(ISSUER, "A. Weber", "all", NOW)), 401, "token_signature"),
    (
        "not central's key",
        lambda: issue_technician_token(generate_private_key(), "A. Weber", "all", NOW),
        401,
        "token_signature",
    ),
    ("central read-API token", lambda: "sw_api_0123456789abcdef", 401, "not_a_technician_token"),
    ("v4.local token", lambda: "v4.local.AAAA", 401, "not_a_technician_token"),
]


@pytest.mark.parametrize(("label", "make", "status", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_bad_tokens_are_refused_and_the_reason_logged(client, caplog, label, make, status, reason) -> None:
    token = make()
    with caplog.at_level(logging.WARNING, logger="agent.techapi.auth"):
        response = await client.get("/api/v1/incidents", headers=_bearer(token))
    assert response.status == status, label
    assert (await response.json())["error"] == reason
    logged = [r.getMessage() for r in caplog.records]
    assert any(f"reason={reason}" in line and "school=gs-nord" in line for line in logged), logged
    assert all(token not in line for line in logged), "a token must never be logged"


@pytest.mark.parametrize("scope", ["school:gs-nord", "carrier:Kreis A", "all"])
async def test_a_valid_token_reads_everything(client, scope: str) -> None:
    headers = _bearer(issue_technician_token(ISSUER, "A. Weber", scope, NOW))
    status = await (await client.get("/api/v1/status", headers=headers)).json()
    assert status["school"]["id"] == "gs-nord"
    assert status["you"] == {"name": "A. Weber", "kind": "technician", "scope": scope}
    devices = await (await client.get("/api/v1/devices", headers=headers)).json()
    assert devices["devices"][0]["name"] == "Lenas iPad"  # real names stay readable on site
    incidents = await (await client.get("/api/v1/incidents", headers=headers)).json()
    assert incidents["incidents"][0]["id"] == "inc-1"
    metrics = await client.get("/metrics", headers=headers)
    assert metrics.status == 200


async def test_the_local_admin_token_works(client) -> None:
    response = await client.get("/api/v1/status", headers=_bearer(ADMIN_TOKEN))
    assert (await response.json())["you"]["kind"] == "admin"


async def test_failed_attempts_are_rate_limited_per_address(client, clock) -> None:
    for _ in range(5):
        assert (await client.get("/api/v1/status", headers=_bearer("wrong"))).status == 401
    response = await client.get("/api/v1/status", headers=_bearer(ADMIN_TOKEN))
    assert response.status == 429  # even the right token waits until the window passes
    clock.mono += 61
    assert (await client.get("/api/v1/status", headers=_bearer(ADMIN_TOKEN))).status == 200
