"""CPU of one central process per ingested batch on PostgreSQL, without HTTP: a small driver to profile.

``python -m bench.pg_batch_cpu [AGENTS] [ROUNDS]`` (defaults 400 and 3): a fresh database,
AGENTS agents of one school each, ROUNDS batches of 20 mixed events per agent (sim.fleet's mix),
ingested by ``Ingestor.ingest`` with 16 in flight. The first round pays each key's first load
and is left out. Prints this process's CPU (user + system, ``time.process_time``) per batch in
ms and the wall time; the PostgreSQL server's CPU is not in it. Not part of ``make bench``
(it has no baseline); run it before and after a change to the store, several times, alternating.
Set PY_SPY_OUT to a path to have py-spy record this process meanwhile (raw collapsed stacks).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import psycopg

from base.clock import SystemClock
from central.ingest import Ingestor
from central.storage.postgres import PostgresStore
from sim.fleet import SimAgent

SERVER = os.environ.get("SCHULWART_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BATCH = 20
IN_FLIGHT = 16
AT = "2026-11-30T08:00:00.000000Z"


async def _main(agents_n: int, rounds: int) -> None:
    name = f"schulwart_batchcpu_{os.getpid()}"
    with psycopg.connect(SERVER, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = SERVER.rsplit("/", 1)[0] + "/" + name
    try:
        store = await PostgresStore.open(url)
        agents = [SimAgent.new(f"gs-{n}") for n in range(agents_n)]
        for a in agents:
            await store.add_school(a.school_id, a.school_id, "Bench", AT)
        async with store.transaction() as tx:
            for a in agents:
                await tx.add_agent(a.agent_id, a.school_id, a.keyid, a.public_raw, "bench", "bench", AT)
        ingestor = Ingestor(store, SystemClock())
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(body: bytes) -> None:
            async with gate:
                await ingestor.ingest(body)

        spy = None
        for r in range(rounds):
            bodies = [a.report(r * BATCH + 1, (r + 1) * BATCH) for a in agents]
            if r == 1:
                if os.environ.get("PY_SPY_OUT"):
                    spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "-r", "200", "-o",
                                            os.environ["PY_SPY_OUT"], "-p", str(os.getpid())])  # fmt: skip
                    await asyncio.sleep(1.0)
                cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one(b) for b in bodies))
        batches = agents_n * (rounds - 1)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=30)
        await store.close()
        sys.stdout.write(f"{batches} batches: {cpu * 1000 / batches:.2f} ms CPU per batch, "
                         f"{wall * 1000 / batches:.2f} ms wall per batch\n")  # fmt: skip
    finally:
        with psycopg.connect(SERVER, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 400, int(sys.argv[2]) if len(sys.argv) > 2 else 3))
