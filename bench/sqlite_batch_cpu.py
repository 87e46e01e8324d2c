"""CPU of one central process per ingested event on SQLite, without HTTP: a small driver to profile.

``python -m bench.sqlite_batch_cpu [BATCHES] [ROUNDS]`` (defaults 20 and 3): the ingest
benchmark's agents and batches (``bench.bench_ingest``: 4 agents, 500 events a batch of its
realistic mix, the same signed bodies), ingested by ``Ingestor.ingest`` into a fresh SQLite
store in a temporary directory, 4 in flight, BATCHES per agent. Each round starts from a fresh
database. Prints this process's CPU (user + system of all its threads, ``time.process_time``)
per event in µs for each round and their median, and the wall time. Not part of ``make bench``
(the ingest benchmark has the baseline); run it before and after a change, alternating.
Set PY_SPY_OUT to a path to have py-spy record the last round (raw collapsed stacks).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from base.clock import SystemClock
from bench import bench_ingest
from central.ingest import Ingestor
from central.storage.sqlite import SqliteStore

AT = "2026-11-30T08:00:00.000000Z"


async def _round(batches: list[list[bytes]], keys: list[Ed25519PrivateKey], spy_out: str | None) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="sqlite-batch-cpu-") as tmp:
        store = SqliteStore.open(Path(tmp) / "central.db")
        for n, key in enumerate(keys):
            await store.add_school(f"gs-{n}", f"GS {n}", "Bench", AT)
            async with store.transaction() as tx:
                public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
                await tx.add_agent(f"agent-{n}", f"gs-{n}", bench_ingest._keyid(key), public, "bench", "bench", AT)
        ingestor = Ingestor(store, SystemClock())

        async def one_agent(bodies: list[bytes]) -> None:
            for body in bodies:
                await ingestor.ingest(body)

        spy = None
        if spy_out:
            spy_bin = str(Path(sys.executable).parent / "py-spy")
            spy = subprocess.Popen([spy_bin, "record", "--format", "raw", "-r", "500", "-o", spy_out,
                                    "-p", str(os.getpid())], stdout=subprocess.DEVNULL)  # fmt: skip
            await asyncio.sleep(1.0)
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one_agent(b) for b in batches))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=30)
        await store.close()
    return cpu, wall


async def _main(per_agent: int, rounds: int) -> None:
    bench_ingest.BATCHES_PER_AGENT = per_agent
    keys = [Ed25519PrivateKey.generate() for _ in range(bench_ingest.AGENTS)]
    batches = [[body for _, body in bench_ingest._batches(f"agent-{n}", f"gs-{n}", key)] for n, key in enumerate(keys)]
    events = bench_ingest.AGENTS * per_agent * bench_ingest.BATCH
    per_event = []
    for r in range(rounds):
        cpu, wall = await _round(batches, keys, os.environ.get("PY_SPY_OUT") if r == rounds - 1 else None)
        per_event.append(cpu * 1e6 / events)
        sys.stdout.write(f"round {r + 1}: {per_event[-1]:.1f} µs CPU per event, {events / wall:,.0f} events/s wall\n")
    sys.stdout.write(f"median {statistics.median(per_event):.1f} µs CPU per event ({events} events a round)\n")


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, int(sys.argv[2]) if len(sys.argv) > 2 else 3))
