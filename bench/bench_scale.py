"""Central at scale: thousands of simulated agents, one signed batch per agent per minute, against
1 node on SQLite, 1 node on PostgreSQL (one process, and ``serve --workers 2``) and 2 nodes on
PostgreSQL (real `serve` processes on loopback).

Each agent has its own Ed25519 key and sends a realistic batch (BATCH events of the mix in
sim.fleet) once per 60 s cycle. Time is compressed by measuring a SLICE_S slice of that
cycle: at the level "N agents", the N x SLICE_S / 60 agents whose turn falls inside the slice
send, each at a uniformly random moment in it. The offered load is exactly that of N agents
at one batch a minute; the slice keeps a level at SLICE_S seconds. The agents are running ones:
before a level's slice, each agent new to it sends its first batch, untimed (central loads its key
and stores its devices; that first contact's CPU is reported on its own), and the agents of one
level send again in the next. Levels rise until p99
ingest latency passes 250 ms or an error appears. All agents of a level live in this one
asyncio process (multiplexed over one connection pool); with 2 nodes each agent keeps to one
node, alternating, as round-robin DNS or a load balancer's source hashing would spread them.

CPU is per central node (user + system seconds of the process over the slice, in cores);
PostgreSQL's CPU is that of every ``postgres`` process on the machine (others' tests too); the
client's is this process's. Each agent's batch is signed before the slice starts (``SimAgent.stage``):
on one machine, the client's CPU is taken from the nodes'.
Results go to bench/results/scale.json as well as to the table, with the machine's load
average (other processes on a shared machine take the CPU the nodes would use).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import psycopg

from sim.fleet import SimAgent

LEVELS = (1_500, 5_000, 15_000, 30_000)  # agents at one batch per minute
SLICE_S = 20.0
SETTLE_S = 15.0  # after a level's warm-up, before its slice
BATCH = 20
P99_LIMIT_S = 0.250
CONNECTIONS = 100
TARGET_AGENTS = 15_000
SCHOOL = "gs-scale"
ENROLLED_AT = "2026-11-30T08:00:00.000000Z"
SERVER = os.environ.get("SCHULWART_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BIN = Path(sys.executable).parent / "schulwart-central"
RESULTS = Path(__file__).parent / "results" / "scale.json"
_LISTEN = re.compile(r"listening on (http://[\d.]+:\d+)")

# (row label, nodes, workers per node): one node as one process, as two (``serve --workers 2``,
# one per core of the 2-core target), and two nodes of one process.
PG_CONFIGS = (("postgresql-1", 1, 1), ("postgresql-1 (2 workers)", 1, 2), ("postgresql-2", 2, 1))

def _levels() -> tuple[int, ...]:
    """LEVELS, or those of SCHULWART_BENCH_SCALE_LEVELS (``5000,15000``: a quicker run to profile)."""
    given = os.environ.get("SCHULWART_BENCH_SCALE_LEVELS")
    return tuple(int(x) for x in given.split(",")) if given else LEVELS


def _configs() -> set[str] | None:
    """The configurations SCHULWART_BENCH_SCALE_ONLY names (``postgresql-1,sqlite-1``); None: all."""
    given = os.environ.get("SCHULWART_BENCH_SCALE_ONLY")
    return {x.strip() for x in given.split(",")} if given else None


Register = Callable[[list[SimAgent]], Awaitable[None]]


async def _start_node(data_dir: Path, config: Path, workers: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    log = data_dir.with_suffix(".log")
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [str(BIN), "serve", "--port", "0", "--data-dir", str(data_dir), "--config", str(config),
             "--workers", str(workers)], stderr=handle,
        )  # fmt: skip
    for _ in range(400):
        match = _LISTEN.search(log.read_text())
        if match:
            return proc, match.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"central exited: {log.read_text()[-500:]}")
        await asyncio.sleep(0.05)
    proc.kill()
    raise RuntimeError("central did not start")


def _cpu(pids: list[int]) -> list[float]:
    """CPU seconds per node: the process and its workers (``serve --workers``), as one figure."""
    out = []
    for pid in pids:
        node = psutil.Process(pid)
        total = 0.0
        for proc in (node, *node.children()):
            times = proc.cpu_times()
            total += times.user + times.system
        out.append(total)
    return out


def _postgres_cpu() -> float:
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "postgres":
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


async def _warm(urls: list[str], pids: list[int], fresh: list[SimAgent], first_index: int) -> float | None:
    """Send each new agent's first batch, untimed: a running agent has sent before (central has its
    key loaded and its devices stored). ``first_index`` is the first one's place in the pool, which
    names its node. The nodes' CPU per such first batch, ms, is returned."""
    if not fresh:
        return None
    cpu_before = _cpu(pids)
    gate = asyncio.Semaphore(CONNECTIONS)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS)) as session:

        async def one(index: int, agent: SimAgent) -> None:
            async with gate:
                await agent.send(session, urls[index % len(urls)], BATCH, deadline=time.monotonic() + 120)

        await asyncio.gather(*(one(first_index + i, a) for i, a in enumerate(fresh)))
    return round((sum(_cpu(pids)) - sum(cpu_before)) * 1000 / len(fresh), 1)


async def _level(
    urls: list[str], pids: list[int], agents_at_60s: int, register: Register, pool: list[SimAgent]
) -> dict[str, Any]:
    """One level: the agents of one SLICE_S slice at ``agents_at_60s`` agents. ``pool`` holds the
    agents of the levels before, warmed up; as many new ones as this level needs more join it."""
    # One school per agent, as in the field (a school has one server, rarely two).
    wanted = round(agents_at_60s * SLICE_S / 60)
    fresh = [SimAgent.new(f"gs-{secrets.token_hex(5)}") for _ in range(wanted - len(pool))]
    await register(fresh)
    first_batch_ms = await _warm(urls, pids, fresh, len(pool))
    if fresh:
        # The warm-up is a burst no running fleet makes: the slice starts after its wake (an SQLite
        # node measured p99 261-447 ms at 15,000 straight after it, 139-163 ms after this pause).
        await asyncio.sleep(SETTLE_S)
    pool.extend(fresh)
    agents = pool[:wanted]
    for agent in agents:
        agent.latencies, agent.errors, agent.last_error = [], 0, None  # this level's own
        agent.stage(BATCH)  # signed before the slice: this process shares the machine with the nodes
    offsets = [random.uniform(0, SLICE_S) for _ in agents]
    # The agents and their staged batches live through the slice: frozen, the collector no longer
    # walks them. Unfrozen, this process's full collections took 30-120 ms during a slice at 15,000
    # agents, and every batch in flight then carried that pause in its latency.
    gc.collect()
    gc.freeze()
    cpu_before, pg_before, client_before = _cpu(pids), _postgres_cpu(), time.process_time()
    acked_before = sum(a.acked for a in agents)
    started = time.monotonic()
    # Below central's 128 connections per address: every simulated agent comes from 127.0.0.1.
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(index: int, agent: SimAgent) -> None:
            await asyncio.sleep(max(0.0, started + offsets[index] - time.monotonic()))
            await agent.send(session, urls[index % len(urls)], 0, deadline=started + SLICE_S + 30)

        await asyncio.gather(*(one(i, a) for i, a in enumerate(agents)))
    elapsed = max(time.monotonic() - started, SLICE_S)
    gc.unfreeze()
    client_cpu = (time.process_time() - client_before) / elapsed
    cpu = [(after - before) / elapsed for before, after in zip(cpu_before, _cpu(pids), strict=True)]
    latencies = sorted(x for a in agents for x in a.latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("inf")
    errors = sum(a.errors for a in agents) + sum(a.acked < a.produced for a in agents)
    batches = sum(len(a.latencies) for a in agents)
    return {
        # CPU a node spends per acknowledged batch: what a loaded machine cannot hide.
        "node_cpu_ms_per_batch": round(sum(cpu) * elapsed * 1000 / batches, 1) if batches else None,
        "node_cpu_ms_per_first_batch": first_batch_ms,  # an agent's first contact (the warm-up), all nodes
        "postgres_cpu_ms_per_batch": round((_postgres_cpu() - pg_before) * 1000 / batches, 1) if batches else None,
        "agents": agents_at_60s,
        "keys": len(agents),
        "events_per_s": round((sum(a.acked for a in agents) - acked_before) / elapsed),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(p99 * 1000, 1),
        "errors": errors,
        "cpu_per_node": [round(c, 2) for c in cpu],
        "postgres_cpu": round((_postgres_cpu() - pg_before) / elapsed, 2),
        "client_cpu": round(client_cpu, 2),  # this process: the simulated agents' HTTP
        "sustained": errors == 0 and p99 <= P99_LIMIT_S,
        "last_error": next((a.last_error for a in agents if a.last_error), None),
    }


async def _run_config(
    name: str, tmp: Path, db: str, nodes: int, register: Register, workers: int = 1
) -> dict[str, Any]:
    slug = re.sub(r"[^a-z0-9-]+", "-", name).strip("-")
    config = tmp / f"{slug}.toml"
    config.write_text(f'[central]\ndb = {json.dumps(db)}\n')  # INFO, as in production (one line a batch)
    first = tmp / f"{slug}-a"
    subprocess.run(
        [str(BIN), "school", "add", "--id", SCHOOL, "--name", "Scale", "--carrier", "Bench", "--data-dir", str(first),
         "--config", str(config)], check=True, capture_output=True,
    )  # fmt: skip
    dirs = [first]
    for n in range(1, nodes):
        other = tmp / f"{slug}-{'abc'[n]}"
        shutil.copytree(first / "keys", other / "keys")  # every node signs with the same keys
        dirs.append(other)
    procs = []
    try:
        for d in dirs:
            procs.append(await _start_node(d, config, workers))
        results = []
        pool: list[SimAgent] = []
        for level in _levels():
            result = await _level([url for _, url in procs], [p.pid for p, _ in procs], level, register, pool)
            results.append(result)
            if not result["sustained"]:
                break
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(timeout=20)
    sustained = max((r["agents"] for r in results if r["sustained"]), default=0)
    return {"config": name, "nodes": nodes, "workers": workers, "levels": results, "agents_sustained": sustained}


def _rows(agents: list[SimAgent]) -> tuple[list[tuple[str, ...]], list[tuple[Any, ...]]]:
    schools = [(a.school_id, a.school_id, "Bench", ENROLLED_AT) for a in agents]
    rows = [(a.agent_id, a.school_id, a.keyid, a.public_raw, "bench", "bench", ENROLLED_AT) for a in agents]
    return schools, rows


def _sqlite_register(path: Path) -> Register:
    async def register(agents: list[SimAgent]) -> None:
        schools, rows = _rows(agents)
        with sqlite3.connect(path, timeout=30) as conn:
            conn.executemany("INSERT INTO schools (id, name, carrier, created_at) VALUES (?, ?, ?, ?)", schools)
            conn.executemany(
                "INSERT INTO agents (agent_id, school_id, keyid, public_key, hostname, version, enrolled_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        conn.close()

    return register


def _pg_register(url: str) -> Register:
    async def register(agents: list[SimAgent]) -> None:
        schools, rows = _rows(agents)
        async with await psycopg.AsyncConnection.connect(url) as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO schools (id, name, carrier, created_at) VALUES (%s, %s, %s, %s)", schools
            )
            await cur.executemany(
                "INSERT INTO agents (agent_id, school_id, keyid, public_key, hostname, version, enrolled_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                rows,
            )

    return register


async def _run(tmp: Path) -> list[dict[str, Any]]:
    only = _configs()
    configs = []
    if only is None or "sqlite-1" in only:
        configs.append(await _run_config("sqlite-1", tmp, str(tmp / "central.sqlite3"), 1,
                                         _sqlite_register(tmp / "central.sqlite3")))  # fmt: skip
    dbname = f"schulwart_bench_{os.getpid()}"
    try:
        with psycopg.connect(SERVER, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        configs.append({"config": "postgresql", "skipped": str(exc).strip().splitlines()[0]})
    else:
        try:
            for label, nodes, workers in PG_CONFIGS:
                if only is not None and label not in only:
                    continue
                # A fresh database per configuration: each starts from empty tables.
                name = f"{dbname}_{nodes}_{workers}"
                with psycopg.connect(SERVER, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                url = SERVER.rsplit("/", 1)[0] + "/" + name
                configs.append(await _run_config(label, tmp, url, nodes, _pg_register(url), workers))
        finally:
            with psycopg.connect(SERVER, autocommit=True, connect_timeout=5) as conn:
                for _, nodes, workers in PG_CONFIGS:
                    conn.execute(f'DROP DATABASE IF EXISTS "{dbname}_{nodes}_{workers}" WITH (FORCE)')
    RESULTS.parent.mkdir(exist_ok=True)
    summary = {"slice_s": SLICE_S, "batch_events": BATCH, "load_average": os.getloadavg(), "configs": configs}
    RESULTS.write_text(json.dumps(summary, indent=1) + "\n")
    rows: list[dict[str, Any]] = []
    for c in configs:
        if "skipped" in c:
            rows.append({"name": f"{c['config']}: skipped", "value": 0, "unit": "", "note": c["skipped"][:80]})
            continue
        met = "met" if c["agents_sustained"] >= TARGET_AGENTS else "not met"
        rows.append({"name": f"{c['config']}: agents sustained", "value": c["agents_sustained"], "unit": "agents",
                     "note": f"target {TARGET_AGENTS:,} ({met}); p99 <= 250 ms, no errors"})  # fmt: skip
        first = c["levels"][0]
        if first["node_cpu_ms_per_batch"]:
            per_core = round(60_000 / first["node_cpu_ms_per_batch"])
            rows.append({"name": f"{c['config']}: central CPU per batch", "value": first["node_cpu_ms_per_batch"],
                         "unit": "ms", "note": f"{BATCH} events; one core's worth: {per_core:,} agents at 1 batch/min; "
                         f"postgres {first['postgres_cpu_ms_per_batch']} ms; an agent's first batch "
                         f"{first['node_cpu_ms_per_first_batch']} ms"})  # fmt: skip
        for r in c["levels"]:
            cpu = "+".join(f"{x:.2f}" for x in r["cpu_per_node"])
            rows.append({
                "name": f"{c['config']}: {r['agents']:,} agents", "value": r["events_per_s"], "unit": "events/s",
                "note": f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, errors {r['errors']} {r['last_error'] or ''}, "
                        f"CPU node {cpu}, postgres {r['postgres_cpu']:.2f}, client {r['client_cpu']:.2f} cores",
            })  # fmt: skip
    return rows


def run() -> list[dict[str, Any]]:
    """Measure and return rows of name, value, unit, note (and write bench/results/scale.json)."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        return asyncio.run(_run(Path(tmp)))


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
