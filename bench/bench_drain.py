"""Agent numbers: how fast a 10,000-event backlog drains to a local central, and the idle footprint.

Runs a real `schulwart-central serve` and a real `schulwart-agent run` as subprocesses on
loopback. The backlog is a realistic mix (health snapshots, device events, incidents)
written straight into the agent's outbox before the agent starts.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from agent.identity import load_agent_key, load_identity
from agent.monitors.host import HostMonitor
from agent.store import Store
from agent.store.outbox import Outbox
from agent.sync.client import report_envelope
from base.agentconfig import HostSection
from base.clock import SystemClock

BIN = Path(sys.executable).parent
AGENT = str(BIN / "schulwart-agent")
CENTRAL = str(BIN / "schulwart-central")
BACKLOG = 10_000
DEFAULT_RATE = 32_768  # [sync] max_bytes_per_s default
_LISTEN = re.compile(r"listening on http://[^\s:]+:(\d+)")


def _run(args: list[str]) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def _start(args: list[str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    fh = log.open("wb")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=fh)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = _LISTEN.search(log.read_text(errors="replace"))
        if match:
            return proc, int(match.group(1))
        if proc.poll() is not None:
            raise RuntimeError(log.read_text())
        time.sleep(0.02)
    raise TimeoutError(log.read_text())


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def _fill(data: Path, n: int) -> None:
    """A realistic mix: a real host snapshot every 10th event, pseudonymous device ids, some incidents."""
    store = Store.open(data)
    box = Outbox(store, SystemClock())
    host = HostMonitor(data, HostSection()).sample(0.4).to_json()
    items: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        device = "d-" + hashlib.sha256(str(i % 700).encode()).hexdigest()[:32]
        if i % 10 == 0:
            host["memory_percent"] = round(30 + (i % 97) / 10, 1)
            host["uptime_s"] = 3600.0 + i * 30
            items.append(("health.snapshot", {"host": dict(host), "counts": {"devices": 700, "open_incidents": i % 7}}))
        elif i % 50 == 1:
            data_ = {"id": f"inc-{i:020x}", "key": f"ap-down:{device}", "category": "wlan", "severity": "warning"}
            items.append(("incident.opened", {**data_, "title": "Access point down", "subject": device}))
        else:
            items.append(("device.seen", {"id": device, "class": "ipad", "model": "iPad9,1", "state": "present"}))
    for start in range(0, n, 1000):
        box.add_many(items[start : start + 1000])
    store.close()


def _acked(data: Path) -> int:
    conn = sqlite3.connect(f"file:{data / 'agent.db'}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT acked_seq FROM outbox_state").fetchone()[0])
    finally:
        conn.close()


def _wire_bytes(data: Path, batch_events: int, batch_bytes: int) -> int:
    store = Store.open(data, migrate=False)
    identity = load_identity(store)
    assert identity is not None
    key = load_agent_key(data, identity)
    box = Outbox(store, SystemClock())
    total = sum(
        len(gzip.compress(report_envelope(identity, key, events, SystemClock().now()), 6))
        for events in box.unsent(batch_events, batch_bytes)
    )
    store.close()
    return total


def _config(path: Path, extra: str) -> Path:
    path.write_text("[discovery]\nenabled = false\n" + extra)
    return path


def run() -> list[dict[str, Any]]:
    """The rows: drain time and rate, estimated drain at the default byte cap, idle RSS and CPU."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cdir, adir = root / "central", root / "agent"
        _run(
            [
                CENTRAL,
                "school",
                "add",
                "--id",
                "s1",
                "--name",
                "GS Nord",
                "--carrier",
                "Kreis A",
                "--data-dir",
                str(cdir),
            ]
        )
        code = _run([CENTRAL, "enroll-code", "--school", "s1", "--data-dir", str(cdir)])
        central, port = _start(
            [CENTRAL, "serve", "--data-dir", str(cdir), "--host", "127.0.0.1", "--port", "0"], root / "c.log"
        )
        agent = None
        try:
            _run([AGENT, "enroll", "--central", f"http://127.0.0.1:{port}", "--code", code, "--data-dir", str(adir)])
            _fill(adir, BACKLOG)
            wire = _wire_bytes(adir, 500, 262_144)
            config = _config(root / "drain.toml", "[agent]\nsnapshot_interval = 3600\n[sync]\nmax_bytes_per_s = 0\n")
            t0 = time.monotonic()
            agent, _ = _start(
                [AGENT, "run", "--listen", "127.0.0.1:0", "--data-dir", str(adir), "--config", str(config)],
                root / "a.log",
            )
            t_listen = time.monotonic()
            while _acked(adir) < BACKLOG:
                if time.monotonic() - t0 > 300:
                    raise TimeoutError("backlog did not drain in 300 s")
                time.sleep(0.02)
            t_done = time.monotonic()
            _stop(agent)
            agent = None
            drain = t_done - t_listen
            rows += [
                {
                    "name": "drain 10k events to local central (unlimited rate)",
                    "value": round(drain, 2),
                    "unit": "s",
                    "note": f"from agent listening; process start +{t_listen - t0:.2f} s",
                },
                {
                    "name": "drain rate",
                    "value": round(BACKLOG / drain),
                    "unit": "events/s",
                    "note": "batches of 500, gzip, Ed25519, central on SQLite",
                },
                {
                    "name": "backlog on the wire",
                    "value": round(wire / 1024),
                    "unit": "KiB",
                    "note": f"{wire / BACKLOG:.0f} B/event gzipped",
                },
                {
                    "name": "drain 10k at default cap (32 KiB/s)",
                    "value": round(wire / DEFAULT_RATE, 1),
                    "unit": "s",
                    "note": "estimate: wire bytes / max_bytes_per_s",
                },
            ]
            # The same kind of backlog again, now under the default byte-rate cap: is the line spared?
            capped_n = 3000
            _fill(adir, capped_n)
            capped_wire = _wire_bytes(adir, 500, 262_144)
            capped_cfg = _config(root / "capped.toml", "[agent]\nsnapshot_interval = 3600\n")
            agent, _ = _start(
                [AGENT, "run", "--listen", "127.0.0.1:0", "--data-dir", str(adir), "--config", str(capped_cfg)],
                root / "b.log",
            )
            t1 = time.monotonic()
            while _acked(adir) < BACKLOG + capped_n:
                if time.monotonic() - t1 > 300:
                    raise TimeoutError("capped backlog did not drain in 300 s")
                time.sleep(0.05)
            capped = time.monotonic() - t1
            _stop(agent)
            agent = None
            rows.append(
                {
                    "name": f"drain {capped_n} events at default cap",
                    "value": round(capped, 1),
                    "unit": "s",
                    "note": f"{capped_wire / capped / 1024:.1f} KiB/s observed vs cap 32 KiB/s (1 s burst)",
                }
            )
            idle_cfg = _config(root / "idle.toml", "[host]\ninterval = 5\n")
            agent, _ = _start(
                [AGENT, "run", "--listen", "127.0.0.1:0", "--data-dir", str(adir), "--config", str(idle_cfg)],
                root / "i.log",
            )
            proc = psutil.Process(agent.pid)
            time.sleep(5)  # start-up, first snapshot, first sync
            cpu0 = proc.cpu_times()
            window = 30.0
            time.sleep(window)
            cpu1 = proc.cpu_times()
            rss = proc.memory_info().rss
            used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
            rows += [
                {
                    "name": "agent RSS at idle",
                    "value": round(rss / 2**20, 1),
                    "unit": "MiB",
                    "note": "host monitor every 5 s, sync every 30 s, discovery off",
                },
                {
                    "name": "agent CPU at idle",
                    "value": round(100 * used / window, 2),
                    "unit": "%",
                    "note": f"of one core over {window:.0f} s",
                },
            ]
        finally:
            if agent is not None:
                _stop(agent)
            _stop(central)
    return rows


if __name__ == "__main__":
    for row in run():
        sys.stdout.write(f"{row['name']:<50} {row['value']:>10} {row['unit']:<9} {row['note']}\n")
    os._exit(0)
