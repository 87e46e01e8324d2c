"""The dashboard at carrier scale: 2,000 schools, 100,000 devices, 50,000 incidents.

Fills a fresh central database (one agent per school, 50 devices per school of which 40
tablets, 25 incidents per school of which one in five open), starts the real app on
loopback and measures, per request, the server time (a middleware around the handler)
of the overview page ``GET /`` (logged in) and of ``GET /v1/schools`` (bearer token).
Reports median and p95 over ``ROUNDS`` requests each, after two warm-up requests.
Target: p95 at most 150 ms on a 2-core machine.

``SCHOOLS=200 python -m bench dashboard`` runs a smaller world.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from base.clock import SystemClock
from central.config import CentralConfig
from central.enrollment import hash_secret
from central.keystore import load_keystore
from central.storage.sqlite import SqliteStore
from central.timestamps import iso
from central.users import hash_password
from central.web.app import create_app, start
from central.web.auth import session_hash

SCHOOLS = int(os.environ.get("SCHOOLS", "2000"))
DEVICES_PER_SCHOOL = 50
INCIDENTS_PER_SCHOOL = 25
ROUNDS = int(os.environ.get("ROUNDS", "40"))
CARRIERS = 14


def fill(path: Path, now: datetime) -> None:
    """Write the world straight into the migrated database (one transaction)."""
    rng = random.Random(7)
    conn = sqlite3.connect(path)
    stamp = iso(now)
    with conn:
        conn.executemany(
            "INSERT INTO schools (id, name, carrier, created_at) VALUES (?, ?, ?, ?)",
            [(f"s{i:04d}", f"Grundschule {i:04d}", f"Kreis {i % CARRIERS:02d}", stamp) for i in range(SCHOOLS)],
        )
        agents = []
        for i in range(SCHOOLS):
            last = iso(now - timedelta(seconds=rng.randint(0, 3600 if i % 50 else 86400)))
            agents.append((f"ag-{i:04d}", f"s{i:04d}", f"k{i:060d}", b"\0" * 32, "srv", "0.1.0", stamp, 100, last,
                           rng.uniform(-3, 3)))  # fmt: skip
        conn.executemany(
            "INSERT INTO agents (agent_id, school_id, keyid, public_key, hostname, version, enrolled_at, acked_seq,"
            " last_report_at, clock_skew_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            agents,
        )
        devices = []
        for i in range(SCHOOLS):
            for n in range(DEVICES_PER_SCHOOL):
                cls = "tablet" if n < 40 else ("ap" if n < 45 else "printer")
                seen = iso(now - timedelta(hours=rng.randint(0, 24 * 20)))
                devices.append((f"s{i:04d}", f"ag-{i:04d}", f"d-{i:04d}{n:028d}", cls, "present", "{}", 1, seen, stamp))
        conn.executemany(
            "INSERT INTO devices (school_id, agent_id, device_id, class, state, data, seq, last_seen_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            devices,
        )
        incidents = []
        keys = ("ap-down:ap{}", "cabinet-no-power:cab{}", "device-missing:x{}", "host-disk:root{}", "wlan-degraded:{}")
        for i in range(SCHOOLS):
            for n in range(INCIDENTS_PER_SCHOOL):
                opened = iso(now - timedelta(hours=rng.randint(1, 24 * 30)))
                is_open = n % 5 == 0
                incidents.append((
                    f"s{i:04d}", "agent", f"ag-{i:04d}", f"inc-{i}-{n}", keys[n % 5].format(n), "wlan",
                    rng.choice(("info", "warning", "warning", "critical")), f"Problem {n}", None,
                    "open" if is_open else "resolved", n, opened, None if is_open else stamp, None, None, "[]", opened,
                ))  # fmt: skip
        conn.executemany(
            "INSERT INTO incidents (school_id, origin, agent_id, incident_id, key, category, severity, title, subject,"
            " status, status_seq, opened_at, resolved_at, acknowledged_by, acknowledged_at, notes, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            incidents,
        )
    conn.execute("ANALYZE")
    conn.close()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def _measure() -> list[dict[str, Any]]:
    base = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    config = CentralConfig(data_dir=base)
    now = SystemClock().now()
    store = SqliteStore.open(config.db_path)
    started = time.perf_counter()
    fill(config.db_path, now)
    filled = time.perf_counter() - started
    token = "swc_" + secrets.token_urlsafe(16)
    await store.add_api_token(hash_secret(token), "bench", None, iso(now))
    await store.add_user("bench", "admin", None, hash_password("bench-password-1"), iso(now))
    session_id = secrets.token_urlsafe(32)
    # The session a login would create, without the Argon2 step.
    await store.add_session(session_hash(session_id), "bench", "x", iso(now), iso(now + timedelta(hours=1)))
    timings: dict[str, list[float]] = {"/": [], "/v1/schools": []}

    @web.middleware
    async def timer(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        t0 = time.perf_counter()
        response = await handler(request)
        if request.path in timings:
            timings[request.path].append(time.perf_counter() - t0)
        return response

    app = create_app(config, store, load_keystore(base), silence_monitor=False)
    app.middlewares.insert(0, timer)
    runner, url = await start(app, "127.0.0.1", 0)
    sizes: dict[str, int] = {}
    try:
        async with aiohttp.ClientSession(cookies={"schulwart_session": session_id}) as http:
            asks = (("/", {"Accept-Language": "de"}), ("/v1/schools", {"Authorization": f"Bearer {token}"}))
            for path, headers in asks:
                for _ in range(2):  # warm-up: templates compiled, pages cached by SQLite
                    async with http.get(url + path, headers=headers) as resp:
                        assert resp.status == 200, await resp.text()
                        sizes[path] = len(await resp.read())
                timings[path].clear()
                for _ in range(ROUNDS):
                    async with http.get(url + path, headers=headers) as resp:
                        await resp.read()
    finally:
        await runner.cleanup()
        await store.close()
    rows: list[dict[str, Any]] = [
        {"name": "world filled", "value": filled, "unit": "s",
         "note": f"{SCHOOLS} schools, {SCHOOLS * DEVICES_PER_SCHOOL} devices, "
                 f"{SCHOOLS * INCIDENTS_PER_SCHOOL} incidents"},
    ]  # fmt: skip
    for path, label in (("/", "overview page GET /"), ("/v1/schools", "GET /v1/schools")):
        ms = [t * 1000 for t in timings[path]]
        rows.append({"name": f"{label} median", "value": statistics.median(ms), "unit": "ms",
                     "note": f"server time, {len(ms)} requests, {sizes[path] // 1024} KiB"})  # fmt: skip
        rows.append({"name": f"{label} p95", "value": _percentile(ms, 0.95), "unit": "ms", "note": "target <= 150 ms"})
    return rows


def run() -> list[dict[str, Any]]:
    """Fill, serve, measure; the table rows."""
    return asyncio.run(_measure())


if __name__ == "__main__":
    for row in run():
        print(row)
