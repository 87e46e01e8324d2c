"""Discovery numbers: announce → in inventory latency, and the discovery process's RSS with 500 devices.

Latency: one process announces services one at a time on IPv4 loopback (no probing, as a
device that already owns its name re-announces) while a DiscoveryMonitor browses with QM
questions. The baseline in the same run is a bare python-zeroconf browser callback on its own
zeroconf instance: the difference is what our pipeline (cache resolve, sanitising, rate limit,
inventory merge) adds.

RSS: ``python -m agent.monitors.discovery`` (the discovery monitor alone, as its own process) measured
idle (the baseline) and after the simulated school (``schulwart-sim school --devices 500``:
500 tablets with two services each, plus receivers, printers and Shelly meters) is inventoried.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from zeroconf import DNSQuestionType, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

from agent.monitors.discovery.config import parse_discovery
from agent.monitors.discovery.monitor import DiscoveryMonitor
from sim.mdns import airplay_services

BIN = Path(sys.executable).parent
SAMPLES = 30
DEVICES = 500


def _row(name: str, value: float, unit: str, note: str) -> dict[str, Any]:
    return {"name": name, "value": round(value, 2), "unit": unit, "note": note}


async def _latency() -> tuple[list[float], list[float]]:
    monitor = DiscoveryMonitor(parse_discovery({"discovery": {"interfaces": ["127.0.0.1"]}}))
    await monitor.start()
    bare = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    seen_bare: dict[str, float] = {}

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        del zeroconf, service_type
        if state_change is ServiceStateChange.Added:
            seen_bare.setdefault(name, time.perf_counter())

    browser = AsyncServiceBrowser(bare.zeroconf, ["_airplay._tcp.local."], handlers=[on_change],
                                  question_type=DNSQuestionType.QM)
    announcer = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    ours: list[float] = []
    baseline: list[float] = []
    tag = os.urandom(3).hex()
    try:
        await asyncio.sleep(0.5)
        for i in range(SAMPLES):
            mac = f"90:DD:5D:{i:02X}:{int(tag[:2], 16):02X}:{int(tag[2:4], 16):02X}"
            [info, _raop] = airplay_services(f"Bench {tag} {i}", f"bench-{tag}-{i}", mac, "127.0.0.1", 7000)
            device_id = f"mac:{mac.lower()}"
            started = time.perf_counter()
            # The first announcement goes out at once; the two repeats follow while we wait.
            broadcast = await announcer.async_register_service(info, cooperating_responders=True)
            deadline = started + 5
            while monitor.tracker.get(device_id) is None and time.perf_counter() < deadline:
                await asyncio.sleep(0.0005)
            if monitor.tracker.get(device_id) is not None:
                ours.append((time.perf_counter() - started) * 1000)
            if info.name in seen_bare:
                baseline.append((seen_bare[info.name] - started) * 1000)
            await broadcast
            await asyncio.sleep(0.05)
    finally:
        await browser.async_cancel()
        await announcer.async_close()
        await bare.async_close()
        await monitor.stop()
    return ours, baseline


class _Lines:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.q: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._pump, args=(proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                self.q.put(json.loads(line))

    def wait(self, predicate: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                record = self.q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if predicate(record):
                return record
        raise TimeoutError("discovery harness did not report in time")


def _rss() -> tuple[float, float, int, float]:
    agent = subprocess.Popen([sys.executable, "-m", "agent.monitors.discovery", "--interface", "127.0.0.1",
                              "--interval", "0.5"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = _Lines(agent)
    sim = None
    try:
        lines.wait(lambda r: r["event"] == "ready", 30)
        idle = [lines.wait(lambda r: r["event"] == "status", 10)["rss_mib"] for _ in range(4)][-1]
        with tempfile.TemporaryDirectory() as tmp:
            started = time.time()
            sim = subprocess.Popen([str(BIN / "schulwart-sim"), "school", "--school", f"b{os.urandom(2).hex()}",
                                    "--devices", str(DEVICES), "--aps", "0", "--data-dir", tmp,
                                    "--log-level", "WARNING"], stdout=subprocess.DEVNULL, text=True)
            status = lines.wait(lambda r: r["event"] == "status" and r["by_class"].get("tablet", {}).get(
                "present", 0) >= DEVICES, 120)
            took = status["t"] - started
            time.sleep(2)
            status = lines.wait(lambda r: r["event"] == "status", 10)
    finally:
        if sim is not None:
            sim.terminate()
            sim.wait(30)
        agent.terminate()
        agent.wait(30)
    return idle, status["rss_mib"], status["devices"], took


def run() -> list[dict[str, Any]]:
    """Benchmark rows: name, value, unit, note."""
    ours, baseline = asyncio.run(_latency())
    idle, loaded, devices, took = _rss()
    p95 = sorted(ours)[int(len(ours) * 0.95) - 1] if ours else float("nan")
    return [
        _row("discovery latency p50 (announce → inventory)", statistics.median(ours) if ours else float("nan"), "ms",
             f"{len(ours)}/{SAMPLES} announcements on loopback, QM browse, cache resolve"),
        _row("discovery latency p95", p95, "ms", "same run"),
        _row("baseline: bare zeroconf browser callback p50", statistics.median(baseline) if baseline else float("nan"),
             "ms", "same announcements, plain AsyncServiceBrowser handler"),
        _row("discovery RSS idle (baseline)", idle, "MiB", "python -m agent.monitors.discovery, no sim running"),
        _row(f"discovery RSS with {DEVICES} tablets", loaded, "MiB",
             f"{devices} devices inventoried (tablets with 2 services + receivers, printers, meters)"),
        _row(f"discovery RSS growth for {DEVICES} tablets", loaded - idle, "MiB", "same run"),
        _row(f"sim start → {DEVICES} tablets inventoried", took, "s", "includes starting the sim process"),
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row['name']:<52} {row['value']:>10} {row['unit']:<4} {row['note']}")
