"""JSON refusals everywhere on the agent's API; nosniff on JSON; no-store on POST answers and /metrics."""

from __future__ import annotations

import pytest
from aiohttp import web

from agent.techapi.auth import Authenticator
from agent.techapi.routes import setup_technician_api
from agent.techapi.server import make_app
from base.ratelimit import FailureLimiter
from tests.techapi.conftest import ADMIN_TOKEN, ListView

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def api(aiohttp_client, clock):  # type: ignore[no-untyped-def]
    app: web.Application = make_app()
    view = ListView()
    auth = Authenticator(view, ADMIN_TOKEN, lambda: clock.now, FailureLimiter(lambda: clock.mono))
    setup_technician_api(app, view, auth, lambda: (b"", "text/plain; version=0.0.4; charset=utf-8"))
    return await aiohttp_client(app)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/static/", 404), ("GET", "/static/evil.js", 404), ("POST", "/", 405), ("DELETE", "/static/app.js", 405)],
)
async def test_page_and_static_refusals_are_json(api, method: str, path: str, status: int) -> None:  # type: ignore[no-untyped-def]
    response = await api.request(method, path)
    assert response.status == status
    assert response.content_type == "application/json"
    assert "error" in await response.json()
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_json_answers_say_nosniff_and_posts_and_metrics_no_store(api) -> None:  # type: ignore[no-untyped-def]
    status = await api.get("/api/v1/status", headers=HEADERS)
    assert status.headers["X-Content-Type-Options"] == "nosniff"
    ack = await api.post("/api/v1/incidents/inc-1/ack", json={}, headers=HEADERS)
    assert ack.status == 200
    assert ack.headers["Cache-Control"] == "no-store" and ack.headers["X-Content-Type-Options"] == "nosniff"
    metrics = await api.get("/metrics", headers=HEADERS)
    assert metrics.headers["Cache-Control"] == "no-store"
    health = await api.get("/healthz")
    assert health.headers["X-Content-Type-Options"] == "nosniff"
