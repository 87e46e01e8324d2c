"""Ingest throughput of a real `schulwart-central serve` on loopback, with a no-op baseline.

Several enrolled agents send pre-signed report envelopes concurrently (each agent in seq
order, as a real one does) at batch sizes 100 and 500. The baseline is the same bodies
POSTed, with the same concurrency, to a bare aiohttp server whose handler only reads the
body: the gap between the two is central's verify + parse + store + aggregate cost.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from protocol.envelope import sign
from protocol.keys import generate_private_key, public_key_b64
from protocol.schema import REPORT_TYPE, build_report, make_event

AGENTS = 4
EVENTS_PER_SIZE = 20_000
BATCH_SIZES = (100, 500)
BIN = Path(sys.executable).parent / "schulwart-central"
_LISTEN = re.compile(r"listening on (http://[\d.]+:\d+)")
_NOOP_SERVER = """
import sys
from aiohttp import web
async def noop(request):
    await request.read()
    return web.json_response({"acked_through": 0})
async def main():
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/noop", noop)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", file=sys.stderr, flush=True)
    import asyncio
    await asyncio.Event().wait()
import asyncio
asyncio.run(main())
"""

T0 = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)


def _event(seq: int) -> dict[str, Any]:
    """A plausible mix: mostly device churn, some incidents and snapshots (~150-250 bytes each)."""
    at = T0 + timedelta(seconds=seq)
    kind = seq % 10
    if kind == 0:
        return make_event(
            seq, at, "health.snapshot", {"host": {"cpu": 0.3, "mem": 0.6, "disk": 0.4}, "wlan": {"aps_up": 12}}
        )
    if kind == 1:
        data = {
            "id": f"inc{seq}",
            "key": f"ap-down:{seq % 40}",
            "category": "wlan",
            "severity": "warning",
            "title": "Access point not answering",
            "subject": f"ap{seq % 40}",
        }
        return make_event(seq, at, "incident.opened", data)
    if kind == 2:
        return make_event(seq, at, "incident.resolved", {"id": f"inc{seq - 1}"})
    return make_event(
        seq, at, "device.seen", {"id": f"dev{seq % 2400:04d}", "class": "ipad", "model": "iPad9,1", "state": "present"}
    )


def _bodies(agent_id: str, school_id: str, key: Any, first_seq: int, total: int, size: int) -> list[bytes]:
    out = []
    for start in range(first_seq, first_seq + total, size):
        events = [_event(seq) for seq in range(start, start + size)]
        out.append(sign(build_report(agent_id, school_id, events, T0), REPORT_TYPE, key))
    return out


def _cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run([BIN, *args, "--data-dir", str(data_dir)], capture_output=True, text=True, check=True)
    return done.stdout.strip()


async def _start(cmd: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with log.open("wb") as handle:
        proc = subprocess.Popen(cmd, stderr=handle)
    for _ in range(300):
        match = _LISTEN.search(log.read_text())
        if match:
            return proc, match.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited: {log.read_text()[-500:]}")
        await asyncio.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not start")


async def _send_all(http: aiohttp.ClientSession, url: str, per_agent: list[list[bytes]]) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def one_agent(bodies: list[bytes]) -> None:
        for body in bodies:
            began = time.perf_counter()
            async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{url} answered {resp.status}")
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(one_agent(b) for b in per_agent))
    return time.perf_counter() - began, latencies


async def _run(tmp: Path) -> list[dict[str, Any]]:
    data = tmp / "data"
    _cli(data, "school", "add", "--id", "gs-bench", "--name", "Bench", "--carrier", "Bench")
    codes = [_cli(data, "enroll-code", "--school", "gs-bench") for _ in range(AGENTS)]
    central, central_url = await _start(
        [str(BIN), "serve", "--port", "0", "--data-dir", str(data)], tmp / "central.log"
    )
    noop, noop_url = await _start([sys.executable, "-c", _NOOP_SERVER], tmp / "noop.log")
    rows: list[dict[str, Any]] = []
    try:
        connector = aiohttp.TCPConnector(limit=AGENTS * 2)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
            agents = []
            for code in codes:
                key = generate_private_key()
                body = {"code": code, "public_key": public_key_b64(key), "hostname": "bench", "agent_version": "bench"}
                async with http.post(f"{central_url}/v1/enroll", json=body) as resp:
                    enrolled = await resp.json()
                agents.append((enrolled["agent_id"], enrolled["school_id"], key))
            next_seq = 1
            per_agent_total = EVENTS_PER_SIZE // AGENTS
            for size in BATCH_SIZES:
                per_agent = [_bodies(a, s, k, next_seq, per_agent_total, size) for a, s, k in agents]
                next_seq += per_agent_total
                events = per_agent_total * AGENTS
                body_kib = statistics.mean(len(b) for b in per_agent[0]) / 1024
                base_s, _ = await _send_all(http, f"{noop_url}/noop", per_agent)
                took_s, latencies = await _send_all(http, f"{central_url}/v1/reports", per_agent)
                note = f"{AGENTS} agents concurrently, {events} events, ~{body_kib:.0f} KiB/batch"
                rows += [
                    {
                        "name": f"ingest events/s (batch {size})",
                        "value": round(events / took_s),
                        "unit": "events/s",
                        "note": note,
                    },
                    {
                        "name": f"ingest p50 latency (batch {size})",
                        "value": round(statistics.median(latencies) * 1000, 1),
                        "unit": "ms",
                        "note": "one verified, stored, committed batch",
                    },
                    {
                        "name": f"baseline no-op POST events/s (batch {size})",
                        "value": round(events / base_s),
                        "unit": "events/s",
                        "note": "same bodies to a bare aiohttp handler that only reads them",
                    },
                ]
    finally:
        for proc in (central, noop):
            proc.terminate()
            proc.wait(timeout=10)
    return rows


def run() -> list[dict[str, Any]]:
    """Measure and return rows of name, value, unit, note."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        return asyncio.run(_run(Path(tmp)))


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
