"""Ingest at the storage limit: a real `schulwart-central serve` on SQLite against raw SQLite inserts.

The client is written from the contract (docs/protocol.md), not from our code: report payloads
are built with ``json``, signed as DSSE envelopes (PAE, Ed25519 via pyca/cryptography) and
POSTed over real loopback HTTP by 4 agents at once, each in seq order, in batches of 500 events
of a realistic mix (70 % device.seen, 10 % each health.snapshot, incident.opened and
incident.resolved). Central's time includes verification and a durable commit
(``synchronous=FULL``) per batch.

Two baselines are measured in the same run, in a fresh database with central's schema and
pragmas (WAL, ``synchronous=FULL``), one transaction per batch of 500, ``executemany`` per table:

- **raw insert of the same rows**: the event rows plus the current-view rows central writes for
  that batch (one device row per distinct device, one incident row per distinct incident, one
  incident-timeline row per incident event). The target is central >= 0.5 x this.
- **raw insert of the event rows only**: the stricter bound, for comparison.

A third, the same bodies POSTed to a bare aiohttp handler that only reads them, shows what
HTTP itself costs. ``SCHULWART_BENCH_PROFILE=py-spy`` records central under py-spy (a flame
graph SVG and a top-functions text under bench/results/).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from base.sqlite import connect
from central.storage.migrations import run_migrations

AGENTS = 4
BATCH = 500
BATCHES_PER_AGENT = int(os.environ.get("SCHULWART_BENCH_INGEST_BATCHES", "20"))
TARGET_RATIO = 0.5
REPORT_TYPE = "application/vnd.schulwart.report+json;v=1"
BIN = Path(sys.executable).parent / "schulwart-central"
RESULTS = Path(__file__).parent / "results"
_LISTEN = re.compile(r"listening on (http://[\d.]+:\d+)")
_NOOP_SERVER = """
import asyncio, sys
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
    await asyncio.Event().wait()
asyncio.run(main())
"""

T0 = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)


# ---------------------------------------------------------------- the contract's client


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _event(seq: int) -> dict[str, Any]:
    """The mix: 10 % snapshot, 10 % incident.opened, 10 % incident.resolved, 70 % device.seen."""
    at = _rfc3339(T0 + timedelta(seconds=seq))
    kind = seq % 10
    if kind == 0:
        data: dict[str, Any] = {"host": {"cpu": 0.3, "mem": 0.6, "disk": 0.4}, "wlan": {"aps_up": 12}}
        return {"seq": seq, "at": at, "kind": "health.snapshot", "data": data}
    if kind == 1:
        data = {
            "id": f"inc{seq}",
            "key": f"ap-down:{seq % 40}",
            "category": "wlan",
            "severity": "warning",
            "title": "Access point not answering",
            "subject": f"ap{seq % 40}",
        }
        return {"seq": seq, "at": at, "kind": "incident.opened", "data": data}
    if kind == 2:
        return {"seq": seq, "at": at, "kind": "incident.resolved", "data": {"id": f"inc{seq - 1}"}}
    data = {"id": f"dev{seq % 2400:04d}", "class": "ipad", "model": "iPad9,1", "state": "present"}
    return {"seq": seq, "at": at, "kind": "device.seen", "data": data}


def _pae(payload_type: str, body: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def _keyid(key: Ed25519PrivateKey) -> str:
    return hashlib.sha256(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()


def _envelope(key: Ed25519PrivateKey, payload: bytes) -> bytes:
    doc = {
        "payloadType": REPORT_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": _keyid(key), "sig": base64.b64encode(key.sign(_pae(REPORT_TYPE, payload))).decode()}],
    }
    return json.dumps(doc).encode()


def _batches(agent_id: str, school_id: str, key: Ed25519PrivateKey) -> list[tuple[list[dict[str, Any]], bytes]]:
    out = []
    for start in range(1, BATCHES_PER_AGENT * BATCH + 1, BATCH):
        events = [_event(seq) for seq in range(start, start + BATCH)]
        payload = {
            "v": 1,
            "agent_id": agent_id,
            "school_id": school_id,
            "seq_from": start,
            "seq_to": start + BATCH - 1,
            "sent_at": _rfc3339(T0),
            "events": events,
        }
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        out.append((events, _envelope(key, body)))
    return out


# ---------------------------------------------------------------- processes and HTTP


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
                answer = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{url} answered {resp.status}: {answer[:200]!r}")
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(one_agent(b) for b in per_agent))
    return time.perf_counter() - began, latencies


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (proc(5): fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _profiler(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy on central while it ingests, when SCHULWART_BENCH_PROFILE=py-spy (needs ptrace: root)."""
    if os.environ.get("SCHULWART_BENCH_PROFILE") != "py-spy":
        return None
    spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# ---------------------------------------------------------------- the raw SQLite baselines


def _canonical(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _raw_rows(
    agent_id: str, school_id: str, events: list[dict[str, Any]], now: str
) -> dict[str, list[tuple[Any, ...]]]:
    """The rows central writes for one batch: events, and per batch the last row of each device and incident."""
    event_rows, devices, incidents, timeline = [], {}, {}, []
    for e in events:
        body = _canonical(e)
        digest = hashlib.sha256(body.encode()).hexdigest()
        event_rows.append((agent_id, e["seq"], school_id, e["kind"], e["at"], digest, body, now))
        data = e["data"]
        if e["kind"] == "device.seen":
            devices[data["id"]] = (
                school_id, agent_id, data["id"], data["class"], data["state"], json.dumps(data), e["seq"], e["at"], now
            )  # fmt: skip
        elif e["kind"].startswith("incident."):
            opened = e["kind"] == "incident.opened"
            incidents[data["id"]] = (
                school_id, "agent", agent_id, data["id"], data.get("key"), data.get("category", "wlan"),
                data.get("severity", "warning"), data.get("title", "x"), data.get("subject"),
                "open" if opened else "resolved", e["seq"], e["at"], None if opened else e["at"], None, None, "[]", now,
            )  # fmt: skip
            timeline.append((school_id, "agent", agent_id, data["id"], e["at"], e["kind"][9:], None, None, "agent",
                             "warning", "Access point not answering"))  # fmt: skip
    return {"events": event_rows, "devices": list(devices.values()), "incidents": list(incidents.values()),
            "incident_log": timeline}  # fmt: skip


_INSERTS = {
    "events": "INSERT INTO events (agent_id, seq, school_id, kind, at, digest, body, received_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "devices": "INSERT OR REPLACE INTO devices (school_id, agent_id, device_id, class, state, data, seq, last_seen_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "incidents": "INSERT OR REPLACE INTO incidents (school_id, origin, agent_id, incident_id, key, category, severity,"
    " title, subject, status, status_seq, opened_at, resolved_at, acknowledged_by, acknowledged_at, notes,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "incident_log": "INSERT INTO incident_log (school_id, origin, agent_id, incident_id, at, action, by, text, source,"
    " severity, title) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
}


def _raw_insert(
    path: Path, batches: list[dict[str, list[tuple[Any, ...]]]], tables: tuple[str, ...]
) -> tuple[float, float]:
    """(wall, CPU) seconds to insert the batches, one durable transaction each, into a fresh
    database with central's schema."""
    conn = connect(path)
    run_migrations(conn, str(path))
    conn.execute("PRAGMA foreign_keys = OFF")  # the agents and schools the rows name are not there
    began, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        conn.execute("BEGIN IMMEDIATE")
        for table in tables:
            conn.executemany(_INSERTS[table], batch[table])
        conn.execute("COMMIT")
    took, cpu = time.perf_counter() - began, time.process_time() - cpu
    conn.close()
    return took, cpu


_VIEW_TABLES = ("events", "devices", "incidents", "incident_log")


def _raw_baselines(
    where: Path, batches: list[dict[str, list[tuple[Any, ...]]]]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """(wall, CPU) seconds for the same rows and for the event rows only, each into a fresh database."""
    where.mkdir()
    return _raw_insert(where / "same.db", batches, _VIEW_TABLES), _raw_insert(where / "events.db", batches, ("events",))


# ---------------------------------------------------------------- the run


def _against(name: str, rate: float, baseline: float, target: float | None, note: str) -> dict[str, Any]:
    """A row of central's events/s against a baseline measured in the same run."""
    ratio = rate / baseline
    row: dict[str, Any] = {
        "name": name,
        "value": round(rate),
        "unit": "events/s",
        "baseline": round(baseline),
        "ratio": round(ratio, 3),
        "note": note,
    }
    if target is not None:
        row["target"] = f">= {target}"
        row["met"] = ratio >= target
    return row


async def _run(tmp: Path) -> list[dict[str, Any]]:
    data = tmp / "data"
    _cli(data, "school", "add", "--id", "gs-bench", "--name", "Bench", "--carrier", "Bench")
    codes = [_cli(data, "enroll-code", "--school", "gs-bench") for _ in range(AGENTS)]
    central, central_url = await _start(
        [str(BIN), "serve", "--port", "0", "--data-dir", str(data)], tmp / "central.log"
    )
    noop, noop_url = await _start([sys.executable, "-c", _NOOP_SERVER], tmp / "noop.log")
    spy: subprocess.Popen[bytes] | None = None
    try:
        connector = aiohttp.TCPConnector(limit=AGENTS * 2)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
            agents = []
            for code in codes:
                key = Ed25519PrivateKey.generate()
                raw_public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
                body = {
                    "code": code,
                    "public_key": base64.b64encode(raw_public).decode(),
                    "hostname": "bench",
                    "agent_version": "bench",
                }
                async with http.post(f"{central_url}/v1/enroll", json=body) as resp:
                    enrolled = await resp.json()
                agents.append((enrolled["agent_id"], enrolled["school_id"], key))
            made = [(a, s, _batches(a, s, k)) for a, s, k in agents]
            per_agent = [[body for _, body in batches] for _, _, batches in made]
            events = BATCH * BATCHES_PER_AGENT * AGENTS
            body_kib = statistics.mean(len(b) for b in per_agent[0]) / 1024
            now = _rfc3339(datetime.now(UTC))
            raw_batches = [_raw_rows(a, s, ev, now) for a, s, batches in made for ev, _ in batches]
            # The raw inserts run before and after central; the faster of the two is kept (the
            # stricter baseline on a machine whose disk and CPUs are shared).
            same_s, events_s = _raw_baselines(tmp / "before", raw_batches)
            noop_s, _ = await _send_all(http, f"{noop_url}/noop", per_agent)
            spy = _profiler(central.pid, RESULTS / "ingest-profile.txt")
            cpu_before = _cpu_seconds(central.pid)
            central_s, latencies = await _send_all(http, f"{central_url}/v1/reports", per_agent)
            central_cpu = _cpu_seconds(central.pid) - cpu_before
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=30)
        for proc in (central, noop):
            proc.terminate()
            proc.wait(timeout=10)
    same_after, events_after = _raw_baselines(tmp / "after", raw_batches)
    (same_s, same_cpu), (events_s, _) = min(same_s, same_after), min(events_s, events_after)
    rate, same_rate, events_rate = events / central_s, events / same_s, events / events_s
    view_rows = sum(len(b[t]) for b in raw_batches for t in _VIEW_TABLES)
    what = f"{AGENTS} agents at once, {events} events in batches of {BATCH} (~{body_kib:.0f} KiB)"
    return [
        _against(
            "central ingest / raw insert of the same rows",
            rate,
            same_rate,
            TARGET_RATIO,
            f"{what}; baseline {view_rows / events:.2f} rows/event (events, devices, incidents, timeline)",
        ),
        _against("central ingest / raw insert of event rows", rate, events_rate, None, "the stricter bound"),
        _against("central ingest / HTTP no-op POST", rate, events / noop_s, None, "a handler that only reads"),
        {
            "name": "central CPU per event / raw insert of the same rows",
            "value": round(central_cpu / events * 1e6, 1),
            "unit": "us",
            "baseline": round(same_cpu / events * 1e6, 1),
            "ratio": round(central_cpu / same_cpu, 2),
            "note": "CPU seconds of the central process (proc) and of the raw insert; less noisy than wall time",
        },
        {
            "name": f"central p50 latency (batch {BATCH})",
            "value": round(statistics.median(latencies) * 1000, 1),
            "unit": "ms",
            "note": "one verified, stored, committed batch",
        },
    ]


def run() -> list[dict[str, Any]]:
    """Measure and return rows of name, value, unit, note (and baseline, ratio, target, met)."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        return asyncio.run(_run(Path(tmp)))


if __name__ == "__main__":
    for result in run():
        print(json.dumps(result))
