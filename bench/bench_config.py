"""Signed configuration at fleet scale: what one agent's config fetch costs central, with and without a change.

Fills a fresh central database with ``SCHOOLS`` schools of one carrier, a carrier layer (cabinet
windows, thresholds) and a school layer each, one enrolled agent per school; starts the real
app on loopback and fetches ``GET /v1/agents/{id}/config`` the way agents do (a signed request),
round-robin over the agents, alternating: without ``If-None-Match`` (central merges the layers,
builds and signs the payload: 200), then naming the ETag just got (nothing changed: 304). Reports the
median and p95 round trip of each and the 304/200 ratio measured in the same run, and what a fleet
of ``SCHOOLS`` agents fetching every 5 minutes asks of central (requests per second).

``SCHOOLS=500 python -m bench config`` runs a larger world.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from base.clock import SystemClock
from central.config import CentralConfig
from central.keystore import load_keystore
from central.storage.sqlite import SqliteStore
from central.timestamps import iso
from central.web.app import create_app, start
from protocol.httpsig import sign_request
from protocol.keys import generate_private_key, keyid, public_key_raw

SCHOOLS = int(os.environ.get("SCHOOLS", "150"))
ROUNDS = int(os.environ.get("ROUNDS", "300"))
CARRIER_LAYER = {"cabinets": {"window": "15:00-07:00", "days": ["mon-fri"]}, "host": {"disk_max_percent": 85.0}}


async def _world(store: SqliteStore, now: datetime) -> list[tuple[str, Any]]:
    stamp = iso(now)
    agents = []
    await store.add_config_layer("carrier:Kreis", "(bench)", json.dumps(CARRIER_LAYER), stamp, "bench")
    for i in range(SCHOOLS):
        school = f"s{i:04d}"
        await store.add_school(school, f"Grundschule {i:04d}", "Kreis", stamp)
        layer = {"cabinets": {"cabinet": [{"id": str(n), "name": f"Schrank {n}",
                                           "meter": {"url": f"http://10.{i // 250}.{i % 250}.{n}"}} for n in range(4)]}}
        await store.add_config_layer(f"school:{school}", "(bench)", json.dumps(layer), stamp, "bench")
        key = generate_private_key()
        async with store.transaction() as tx:
            await tx.add_agent(f"ag-{i:04d}", school, keyid(key), public_key_raw(key), "srv", "bench", stamp)
        agents.append((f"ag-{i:04d}", key))
    return agents


def _summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.95) - 1] * 1000


async def _measure(root: Path) -> list[dict[str, Any]]:
    clock = SystemClock()
    config = CentralConfig(data_dir=root)
    store = SqliteStore.open(config.db_path)
    agents = await _world(store, clock.now())
    app = create_app(config, store, load_keystore(root), clock=clock, silence_monitor=False)
    runner, url = await start(app, "127.0.0.1", 0)
    full: list[float] = []
    unchanged: list[float] = []
    sizes: list[int] = []
    try:
        async with aiohttp.ClientSession() as session:
            # Alternating, so that drift on a shared machine touches both kinds alike.
            for n in range(ROUNDS):
                agent_id, key = agents[n % len(agents)]
                path = f"/v1/agents/{agent_id}/config"
                etag = ""
                for tagged, samples in ((False, full), (True, unchanged)):
                    headers = sign_request("GET", path, int(time.time()), key)
                    if tagged:
                        headers["If-None-Match"] = etag
                    started = time.perf_counter()
                    async with session.get(url + path, headers=headers) as resp:
                        body = await resp.read()
                    samples.append(time.perf_counter() - started)
                    assert resp.status == (304 if tagged else 200), resp.status
                    etag = resp.headers["ETag"]
                    if not tagged:
                        sizes.append(len(body))
    finally:
        await runner.cleanup()
        await store.close()
    full_median, full_p95 = _summary(full)
    same_median, same_p95 = _summary(unchanged)
    return [
        {"name": f"config 200 (merge + sign), median ({SCHOOLS} schools)", "value": full_median, "unit": "ms"},
        {"name": "config 200, p95", "value": full_p95, "unit": "ms"},
        {"name": "config 304 (If-None-Match), median", "value": same_median, "unit": "ms"},
        {"name": "config 304, p95", "value": same_p95, "unit": "ms"},
        {"name": "304 / 200 median ratio", "value": same_median / full_median, "unit": "x",
         "note": "same run, same agents"},
        {"name": "config 200 body (signed envelope), median", "value": statistics.median(sizes), "unit": "bytes",
         "note": "a 304 carries none: the school's uplink is what the ETag saves"},
        {"name": f"fleet of {SCHOOLS} agents, every 5 min", "value": SCHOOLS / 300, "unit": "req/s",
         "note": f"sequential 200s ran at {1000 / full_median:,.0f}/s here (client and server on one machine)"},
    ]  # fmt: skip


def run() -> list[dict[str, Any]]:
    """Measure and return the rows for the table."""
    with tempfile.TemporaryDirectory(prefix="bench-config-") as tmp:
        return asyncio.run(_measure(Path(tmp)))
