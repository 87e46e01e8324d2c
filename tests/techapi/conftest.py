"""Fixtures for the technician API: a fixed identity and an issuer key central would hold."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from agent.techapi.auth import Authenticator
from agent.techapi.routes import setup_technician_api
from agent.techapi.view import Page, SiteIdentity
from base.ratelimit import FailureLimiter
from protocol.keys import generate_private_key

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
ISSUER = generate_private_key()
ADMIN_TOKEN = "local-admin-token-0123456789abcdef"


class ListView:
    """A LocalView over plain lists: the route layer's contract without a database."""

    def __init__(self) -> None:
        self.floor: datetime | None = None
        self.revoked: frozenset[str] = frozenset()
        self.incident_rows = [
            {
                "id": "inc-1",
                "key": "ap-down:ap-1",
                "category": "wlan",
                "severity": "critical",
                "title": "AP Turnhalle offline",
                "subject": "ap-1",
                "state": "open",
                "notes": [],
            },
        ]
        self.device_rows = [
            {"id": "d1", "name": "Lenas iPad", "class": "tablet", "model": "iPad13,4", "state": "present"},
            {"id": "d2", "name": "<img src=x onerror=alert(1)>", "class": "airplay", "model": None, "state": "present"},
        ]
        self.acks: list[tuple[str, str, str | None]] = []

    def identity(self) -> SiteIdentity:
        return SiteIdentity("agent-1", "gs-nord", "GS Nord", "Kreis A", ISSUER.public_key())

    def time_floor(self) -> datetime | None:
        return self.floor

    def token_keys(self) -> list[object]:
        return []

    def revoked_tokens(self) -> frozenset[str]:
        return self.revoked

    def status(self) -> Mapping[str, Any]:
        return {"outbox": {"last_seq": 3, "acked_seq": 3, "depth": 0, "oldest_unsent_age_s": None}}

    def devices(self, *, device_class, state, query, limit, offset) -> Page:
        rows = [d for d in self.device_rows if device_class in (None, d["class"]) and (query or "") in d["name"]]
        return Page(rows[offset : offset + limit], len(rows))

    def incidents(self, *, state, severity, category, limit, offset) -> Page:
        rows = [i for i in self.incident_rows if state in ("all", i["state"])]
        return Page(rows[offset : offset + limit], len(rows))

    def acknowledge(self, incident_id, by, note):
        for row in self.incident_rows:
            if row["id"] == incident_id:
                self.acks.append((incident_id, by, note))
                row["acknowledged_by"] = by
                return row
        return None

    def add_note(self, incident_id, by, text):
        for row in self.incident_rows:
            if row["id"] == incident_id:
                row["notes"].append({"by": by, "text": text})
                return row
        return None


class Clock:
    def __init__(self) -> None:
        self.now = NOW
        self.mono = 0.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def view() -> ListView:
    return ListView()


@pytest.fixture
async def client(aiohttp_client, view: ListView, clock: Clock):
    app = web.Application(client_max_size=64 * 1024)
    limiter = FailureLimiter(lambda: clock.mono, max_failures=5, window_s=60)
    auth = Authenticator(view, ADMIN_TOKEN, lambda: clock.now, limiter)
    setup_technician_api(app, view, auth, lambda: (b"", "text/plain; version=0.0.4; charset=utf-8"))

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/healthz", healthz)
    return await aiohttp_client(app)
