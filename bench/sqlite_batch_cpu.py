"""CPU of one central process per ingested event on SQLite, without HTTP: a small driver to profile.

``python -m bench.sqlite_batch_cpu [BATCHES] [ROUNDS]`` (defaults 20 and 3): the ingest
benchmark's agents and batches (``bench.bench_ingest``: 4 agents, 500 events a batch of its
realistic mix, the same signed bodies), ingested by ``Ingestor.ingest`` into a fresh SQLite
store in a temporary directory, 4 in flight, BATCHES per agent. Each round starts from a fresh
database. Prints this process's CPU (user + system of all its threads, ``time.process_time``)
per event in µs for each round and their median, and the wall time; then where it went:

- the store's statements, CPU per event of each ``SqliteTransaction`` method over all rounds
  (the COMMIT, in its worker thread, is not among them);
- the steps before the store, timed on one batch body: the envelope's JSON, base64 and
  signature (``Ingestor.verify``), the payload's JSON (``central.fastjson``), ``parse_report``
  and the sorted-key texts and digests (``central.canonical``).

Not part of ``make bench`` (the ingest benchmark has the baseline); run it before and after a
change, alternating. Set PY_SPY_OUT to a path to have py-spy record the last round (raw
collapsed stacks).
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
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from base.clock import SystemClock
from bench import bench_ingest
from central import fastjson
from central.canonical import canonical_parts
from central.ingest import REPORT_TYPES, Ingestor
from central.storage import sqlite as sqlite_store
from central.storage.sqlite import SqliteStore
from protocol.schema import parse_report

AT = "2026-11-30T08:00:00.000000Z"
STEP_REPEATS = 100
_statement_cpu: dict[str, float] = {}


def _time_statements() -> None:
    """Wrap every public coroutine method of the SQLite transaction to add up its CPU time."""
    cls = sqlite_store.SqliteTransaction
    for name in [n for n in dir(cls) if not n.startswith("_") and asyncio.iscoroutinefunction(getattr(cls, n))]:
        method = getattr(cls, name)

        async def timed(self: object, *args: object, _name: str = name, _method: Any = method) -> object:
            began = time.process_time()
            try:
                return await _method(self, *args)
            finally:
                _statement_cpu[_name] = _statement_cpu.get(_name, 0.0) + time.process_time() - began

        setattr(cls, name, timed)


async def _steps(body: bytes, ingestor: Ingestor) -> dict[str, float]:
    """µs per event of each step before the store, on one batch body (median of STEP_REPEATS)."""
    _, verified = await ingestor.verify(body, REPORT_TYPES)
    doc = fastjson.loads(verified.payload)
    report = parse_report(doc)
    steps = {
        "envelope JSON, base64, signature (Ingestor.verify)": lambda: ingestor.verify(body, REPORT_TYPES),
        "payload JSON (central.fastjson)": lambda: fastjson.loads(verified.payload),
        "parse_report": lambda: parse_report(doc),
        "sorted-key texts and digests (central.canonical)": lambda: [canonical_parts(e) for e in report.events],
    }
    out = {}
    for name, step in steps.items():
        times = []
        for _ in range(STEP_REPEATS):
            began = time.process_time()
            result = step()
            if asyncio.iscoroutine(result):
                await result
            times.append(time.process_time() - began)
        out[name] = statistics.median(times) * 1e6 / len(report.events)
    return out


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


async def _step_costs(body: bytes, key: Ed25519PrivateKey) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="sqlite-batch-cpu-") as tmp:
        store = SqliteStore.open(Path(tmp) / "central.db")
        await store.add_school("gs-0", "GS 0", "Bench", AT)
        async with store.transaction() as tx:
            public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            await tx.add_agent("agent-0", "gs-0", bench_ingest._keyid(key), public, "bench", "bench", AT)
        try:
            return await _steps(body, Ingestor(store, SystemClock()))
        finally:
            await store.close()


async def _main(per_agent: int, rounds: int) -> None:
    bench_ingest.BATCHES_PER_AGENT = per_agent
    keys = [Ed25519PrivateKey.generate() for _ in range(bench_ingest.AGENTS)]
    batches = [[body for _, body in bench_ingest._batches(f"agent-{n}", f"gs-{n}", key)] for n, key in enumerate(keys)]
    events = bench_ingest.AGENTS * per_agent * bench_ingest.BATCH
    per_event = []
    _time_statements()
    for r in range(rounds):
        cpu, wall = await _round(batches, keys, os.environ.get("PY_SPY_OUT") if r == rounds - 1 else None)
        per_event.append(cpu * 1e6 / events)
        sys.stdout.write(f"round {r + 1}: {per_event[-1]:.1f} µs CPU per event, {events / wall:,.0f} events/s wall\n")
    sys.stdout.write(f"median {statistics.median(per_event):.1f} µs CPU per event ({events} events a round)\n")
    sys.stdout.write("the store's statements, µs CPU per event:\n")
    for name, cpu in sorted(_statement_cpu.items(), key=lambda item: -item[1]):
        if cpu * 1e6 / (events * rounds) >= 0.01:
            sys.stdout.write(f"  {name:28s} {cpu * 1e6 / (events * rounds):6.2f}\n")
    sys.stdout.write(f"steps before the store, µs CPU per event (one batch, median of {STEP_REPEATS}):\n")
    for name, cost in (await _step_costs(batches[0][0], keys[0])).items():
        sys.stdout.write(f"  {name:52s} {cost:6.2f}\n")


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, int(sys.argv[2]) if len(sys.argv) > 2 else 3))
