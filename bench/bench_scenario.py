"""A whole deployment on this machine: ``schulwart-sim demo --scenario landkreis`` as real processes.

Starts the scenario (central, then per site a simulated school and an enrolled agent, each site
in its own network namespace), reads from its block how long it took until every school had
reported at central, then samples every process of the tree with psutil over a steady window:
the agents' total RSS and CPU, the sims', central's, and central's ingest from its ``/metrics``
counters. CPU is given in % of one core (this machine has two, shared). Needs root for the
namespaces; without it the benchmark says so in one row.

``SCHULWART_BENCH_SCENARIO`` picks another scenario, ``SCHULWART_BENCH_WINDOW_S`` the window (60).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import psutil

from sim.demo_block import DemoBlockError, parse_block, read_block

BIN = Path(sys.executable).parent
SCENARIO = os.environ.get("SCHULWART_BENCH_SCENARIO", "landkreis")
WINDOW_S = float(os.environ.get("SCHULWART_BENCH_WINDOW_S", "60"))
SETTLE_S = 20.0  # after the block: the first snapshots and inventories go out before the window opens
UP_TIMEOUT_S = 600.0
_REPORTING = re.compile(r"^all (\d+) schools report at central ([\d.]+) s after start \(([\d.]+) s after", re.M)
_PROCESSES = re.compile(r"; (\d+) processes\.$", re.M)


@dataclass
class Sample:
    """CPU seconds and RSS bytes per role at one moment."""

    at: float
    cpu: dict[str, float]
    rss: dict[str, int]
    count: dict[str, int]


def _role(proc: psutil.Process) -> str | None:
    try:
        cmd = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    for role, words in (("agent", ("schulwart-agent", " run")), ("sim", ("schulwart-sim", " school")),
                        ("central", ("schulwart-central", " serve"))):  # fmt: skip
        if all(w in cmd for w in words):
            return role
    return None


def _sample(root: int) -> Sample:
    cpu: dict[str, float] = {}
    rss: dict[str, int] = {}
    count: dict[str, int] = {}
    for proc in psutil.Process(root).children(recursive=True):
        role = _role(proc)
        if role is None:
            continue
        try:
            times = proc.cpu_times()
            mem = proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
        cpu[role] = cpu.get(role, 0.0) + times.user + times.system
        rss[role] = rss.get(role, 0) + mem
        count[role] = count.get(role, 0) + 1
    return Sample(time.monotonic(), cpu, rss, count)


def _ingest(dashboard: str, token: str) -> tuple[float, float, float]:
    """(report+state envelopes taken, events stored, seconds spent ingesting) from central's /metrics."""
    request = Request(f"{dashboard}metrics", headers={"Authorization": f"Bearer {token}"})
    with urlopen(request, timeout=5) as resp:  # central's http:// URL from the block
        text = resp.read().decode()
    def total(pattern: str) -> float:
        return sum(float(m.group(1)) for m in re.finditer(pattern + r" ([\d.e+-]+)$", text, re.M))

    return (total(r"^schulwart_central_reports_total\{[^}]*\}"), total(r"^schulwart_central_events_stored_total"),
            total(r"^schulwart_central_ingest_seconds_sum"))  # fmt: skip


def run() -> list[dict[str, Any]]:
    """Rows: processes, time to all-reporting, RSS and CPU per role, central's ingest."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return [{"name": f"scenario {SCENARIO}", "value": "skipped", "unit": "", "note": "needs root and ip"}]
    work = Path(tempfile.mkdtemp(prefix="bench-scenario-"))
    duration = SETTLE_S + WINDOW_S + 30
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN / "schulwart-sim"), "demo", "--scenario", SCENARIO, "--port", "0", "--duration", str(duration),
         "--data-dir", str(work / "data")],
        stdout=subprocess.PIPE, stderr=(work / "demo.log").open("wb"), text=True,
    )  # fmt: skip
    try:
        try:
            block = parse_block(read_block(proc, UP_TIMEOUT_S))
        except (DemoBlockError, queue.Empty):
            tail = (work / "demo.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"scenario {SCENARIO} did not come up: {' | '.join(tail)}") from None
        up_s = time.monotonic() - started
        reporting = _REPORTING.search(block.text)
        processes = _PROCESSES.search(block.text)
        assert reporting and processes, block.text
        at_up, ingest_up = _sample(proc.pid), _ingest(block.dashboard, block.api_token)
        time.sleep(SETTLE_S)
        first, ingest0 = _sample(proc.pid), _ingest(block.dashboard, block.api_token)
        time.sleep(WINDOW_S)
        last, ingest1 = _sample(proc.pid), _ingest(block.dashboard, block.api_token)
        proc.wait(timeout=duration + 120)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    span = last.at - first.at
    mib = 1024 * 1024

    def pct(role: str) -> float:
        return 100.0 * (last.cpu.get(role, 0.0) - first.cpu.get(role, 0.0)) / span

    note = f"{SCENARIO}, steady window {span:.0f} s"
    return [
        {"name": f"{SCENARIO}: processes (agents/sims/central)", "value": int(processes.group(1)),
         "unit": "", "note": f"{last.count.get('agent', 0)}/{last.count.get('sim', 0)}/{last.count.get('central', 0)}"},
        {"name": f"{SCENARIO}: start → every school reports at central", "value": float(reporting.group(2)),
         "unit": "s", "note": f"{reporting.group(1)} schools; block printed after {up_s:.0f} s"},
        {"name": f"{SCENARIO}: agents started → every school reports", "value": float(reporting.group(3)),
         "unit": "s", "note": "before: namespaces, schools and tokens at central, sims, enrollment"},
        {"name": f"{SCENARIO}: CPU of start-up, all processes", "value": sum(at_up.cpu.values()), "unit": "CPU s",
         "note": "imports, enrollment, first inventories"},
        {"name": f"{SCENARIO}: central, start-up: events stored", "value": int(ingest_up[1]), "unit": "",
         "note": f"{int(ingest_up[0])} envelopes, {at_up.cpu.get('central', 0.0):.1f} CPU s in central"},
        {"name": f"{SCENARIO}: agents' total RSS", "value": last.rss.get("agent", 0) / mib, "unit": "MiB",
         "note": f"{last.rss.get('agent', 0) / mib / max(1, last.count.get('agent', 1)):.0f} MiB per agent"},
        {"name": f"{SCENARIO}: agents' total CPU", "value": pct("agent"), "unit": "% of a core", "note": note},
        {"name": f"{SCENARIO}: sims' total RSS", "value": last.rss.get("sim", 0) / mib, "unit": "MiB", "note": ""},
        {"name": f"{SCENARIO}: sims' total CPU", "value": pct("sim"), "unit": "% of a core", "note": note},
        {"name": f"{SCENARIO}: central RSS", "value": last.rss.get("central", 0) / mib, "unit": "MiB", "note": ""},
        {"name": f"{SCENARIO}: central CPU", "value": pct("central"), "unit": "% of a core", "note": note},
        {"name": f"{SCENARIO}: central ingest, envelopes", "value": (ingest1[0] - ingest0[0]) / span,
         "unit": "/s", "note": "accepted reports + states"},
        {"name": f"{SCENARIO}: central ingest, events", "value": (ingest1[1] - ingest0[1]) / span, "unit": "/s",
         "note": "newly stored"},
        {"name": f"{SCENARIO}: central ingest CPU share", "value": 100.0 * (ingest1[2] - ingest0[2]) / span,
         "unit": "% of a core", "note": "time inside verify + store, from its histogram"},
    ]


if __name__ == "__main__":
    for row in run():
        sys.stdout.write(f"{row['name']}\t{row['value']}\t{row['unit']}\t{row['note']}\n")
