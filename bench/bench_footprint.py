"""The agent's footprint side by side with the monitoring agents a school's IT lead already runs.

In one run: Zabbix agent 2, Prometheus' node exporter and Netdata (Debian's packages, installed
with apt when missing, each with its default config; the node exporter is not scraped), a bare
Python that imports only the libraries the agent cannot run without (the *floor*), and two
schulwart agents, each against its own simulated school of 500 tablets, 10 AirPlay receivers,
5 printers, 10 APs behind a UniFi-like controller and 20 charging cabinets (every school in its
own network namespace, enrolled at a real central on this machine):

- ``default``: the agent's default intervals (site monitors 30 to 60 s, host 60 s, snapshot 5 min,
  reports as central's enrollment answer says); only the site's addresses are configured;
- ``short``: the intervals ``schulwart-sim demo`` runs with (site monitors and reports every
  5 s, host and snapshot every 30 s).

Each process (Netdata: its whole tree of plugins) is sampled once a second over ``ROUNDS``
windows of ``WINDOW_S`` seconds after the agents have inventoried their schools: RSS median and
peak, and CPU as % of one core from the process's own CPU time over the window (robust to what
else runs on this shared machine; the load average is given beside it). The agents' start to
their first report accepted by central is timed from their exec. Needs root (namespaces, apt).

``SCHULWART_BENCH_FOOTPRINT_WINDOW_S`` sets the window (300), ``SCHULWART_BENCH_FOOTPRINT_ROUNDS``
the number of windows (1). The window covers the longest default interval (the 5 min snapshot):
shorter windows sample a random phase of the agent's cycle (two runs with 90 s windows on one
quiet machine gave 0.34 % and 0.78 % for the same code). The whole result goes to
``bench/results/footprint-<UTC time>.json``.

For quick runs while working on the agent: ``SCHULWART_BENCH_FOOTPRINT_PEERS=0`` leaves out Zabbix,
the node exporter and Netdata (neither installed nor run), ``SCHULWART_BENCH_FOOTPRINT_SHORT=0`` the
agent at the short intervals; ``SCHULWART_BENCH_FOOTPRINT_MEMDIAG=DIR`` runs the agents with
``SCHULWART_MEMDIAG=DIR`` (see ``agent/memdiag.py``; add ``PYTHONTRACEMALLOC=N`` to the environment
for tracemalloc, which the floor then runs with too) and sends them SIGUSR2 at the end of each
window, so each writes a memory report there. Such runs are not the published figures (those have
peers and both agents).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import Request, urlopen

import psutil

from sim import agent_config, netns
from sim.demo import (
    AGENT,
    AGENT_API_PORT,
    DemoRun,
    DemoSpec,
    NetPlan,
    School,
    enroll_agents,
    make_namespaces,
    prepare_central,
    start_agent,
    start_central,
    start_sim,
)

WINDOW_S = float(os.environ.get("SCHULWART_BENCH_FOOTPRINT_WINDOW_S", "300"))
ROUNDS = int(os.environ.get("SCHULWART_BENCH_FOOTPRINT_ROUNDS", "1"))
WITH_PEERS = os.environ.get("SCHULWART_BENCH_FOOTPRINT_PEERS", "1") != "0"
WITH_SHORT = os.environ.get("SCHULWART_BENCH_FOOTPRINT_SHORT", "1") != "0"
MEMDIAG_DIR = os.environ.get("SCHULWART_BENCH_FOOTPRINT_MEMDIAG", "")
RESULTS = Path(__file__).parent / "results"
NET = NetPlan(prefix="swfp-", subnet="10.234", lock="/run/schulwart-footprint-netns.lock", if_tag="swf")
MIB = 1024 * 1024
# The libraries the agent cannot run without: HTTP client and server, mDNS, host metrics,
# Ed25519 signatures, SQLite. The agent's own RSS target is this floor plus 12 MiB.
FLOOR_IMPORTS = (
    "aiohttp", "aiohttp.web", "zeroconf.asyncio", "psutil", "sqlite3",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
)  # fmt: skip
RSS_TARGET_OVER_FLOOR_MIB = 12.0
CPU_TARGET_PCT = 0.5
SCHOOL_SIZE = {"devices": 500, "receivers": 10, "printers": 5, "aps": 10, "cabinets": 20}
INVENTORY_TIMEOUT_S = 120.0
SYNC_TIMEOUT_S = 120.0
HTTP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Peer:
    """A monitoring agent from Debian, run in the foreground with its package's default config."""

    name: str
    package: str
    argv: tuple[str, ...]


PEERS = (
    Peer("zabbix_agent2", "zabbix-agent2", ("/usr/sbin/zabbix_agent2", "-f", "-c", "/etc/zabbix/zabbix_agent2.conf")),
    Peer("prometheus-node-exporter (not scraped)", "prometheus-node-exporter", ("/usr/bin/prometheus-node-exporter",)),
    Peer("netdata (all its processes)", "netdata", ("/usr/sbin/netdata", "-D")),
)


@dataclass
class Subject:
    """One measured process tree: CPU seconds per pid at the window's start, RSS samples in bytes."""

    name: str
    pid: int
    cpu_start: dict[int, float] = field(default_factory=dict)
    cpu_last: dict[int, float] = field(default_factory=dict)
    rss: list[int] = field(default_factory=list)

    def _tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            raise RuntimeError(f"{self.name} (pid {self.pid}) exited during the benchmark") from None

    def sample(self) -> None:
        """Add one RSS sample (the tree's sum) and remember each process's CPU seconds."""
        total = 0
        for proc in self._tree():
            try:
                times, mem = proc.cpu_times(), proc.memory_info().rss
            except psutil.NoSuchProcess:  # a plugin that ended between listing and reading
                continue
            self.cpu_last[proc.pid] = times.user + times.system
            total += mem
        self.rss.append(total)

    def begin(self) -> None:
        """Start a window: forget the samples, take the CPU seconds so far as the zero."""
        self.rss.clear()
        self.cpu_last.clear()
        self.sample()
        self.cpu_start = dict(self.cpu_last)
        self.rss.clear()

    def cpu_seconds(self) -> float:
        """CPU seconds spent in the window (a process born inside it counts whole)."""
        return sum(cpu - self.cpu_start.get(pid, 0.0) for pid, cpu in self.cpu_last.items())


def _apt_install(packages: list[str]) -> dict[str, str]:
    """Install what is missing; returns package → why it could not be (not in the repos, apt failed)."""
    missing: dict[str, str] = {}
    if not packages:
        return missing
    if os.geteuid() != 0:
        return {p: "not installed, and installing needs root" for p in packages}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600, check=False)
    for package in packages:
        known = subprocess.run(["apt-cache", "show", package], capture_output=True, timeout=60, check=False)
        if known.returncode != 0:
            missing[package] = "not in the configured Debian repositories"
            continue
        done = subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, capture_output=True, text=True,
                              timeout=900, check=False)  # fmt: skip
        if done.returncode != 0:
            missing[package] = f"apt-get install failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    return missing


def _default_interval_site(site_toml: str, school: str) -> str:
    """The sim's site config with every interval (and missing_after) left to the agent's defaults."""
    doc = tomllib.loads(site_toml)
    drop = {"interval", "missing_after"}
    discovery = {k: v for k, v in doc["discovery"].items() if k not in drop}
    wlan = {k: v for k, v in doc["wlan"].items() if k not in drop | {"controller", "aps"}}
    cabinets = {k: v for k, v in doc["cabinets"].items() if k not in drop | {"cabinet"}}
    cabinet_list = [({k: v for k, v in c.items() if k != "meter"}, c["meter"]) for c in doc["cabinets"]["cabinet"]]
    return agent_config.render(
        school=school, discovery=discovery, wlan=wlan, controller=doc["wlan"].get("controller"),
        aps=doc["wlan"].get("aps", []), cabinets=cabinets, cabinet_list=cabinet_list,
    )  # fmt: skip


def _get_json(url: str, token: str) -> Any:
    request = Request(url, headers={"Authorization": f"Bearer {token}"})
    with urlopen(request, timeout=HTTP_TIMEOUT_S) as resp:
        return json.loads(resp.read())


def _reported(central: str, token: str, school_id: str) -> bool | None:
    """True once central holds a report from the school's agent (its first sync went through)."""
    try:
        body = _get_json(f"{central}/v1/schools/{school_id}", token)
    except (URLError, OSError, ValueError):
        return None
    return True if any(a.get("last_report_at") for a in body.get("agents", [])) else None


def _announced(school: School) -> int:
    """How many devices the school's sim announces over mDNS (tablets, receivers, printers, some meters)."""
    state = json.loads((school.dir / "sim" / f"sim-school-{school.id}.json").read_text())
    return sum(1 for device in state["devices"] if device["announced"])


def _inventoried(school: School, expected: int) -> bool | None:
    """True once the school's agent holds ``expected`` devices in its inventory."""
    token = (school.dir / "agent" / "admin-token").read_text().strip()
    try:
        count = int(_get_json(f"http://{school.ip}:{AGENT_API_PORT}/api/v1/status", token)["devices"])
    except (URLError, OSError, ValueError, KeyError):
        return None
    return True if count >= expected else None


def _start_school(run: DemoRun, school: School, spec: DemoSpec, port: int, default_intervals: bool) -> None:
    """The school's sim, then its agent: the sim's intervals, or the site config stripped of them."""
    sim = start_sim(run, school, spec, port)
    if not default_intervals:
        start_agent(run, school, sim, port, discovery=True, spec=spec)
        return
    run.wait_for(f"school {school.id}'s sim", sim.first_json_line)
    site = _default_interval_site((school.dir / "site.toml").read_text(), school.id)
    config = school.dir / "agent.toml"
    config.write_text(f'[sync]\ncentral_url = "http://{school.central_host}:{port}"\n\n'
                      f'[api]\nlisten = "{school.ip}:{AGENT_API_PORT}"\n\n{site}')  # fmt: skip
    run.start(f"{school.id}.agent", school.wrap([AGENT, "run", "--config", str(config),
                                                 "--data-dir", str(school.dir / "agent")]))  # fmt: skip


def _summarise(subject: Subject, windows: list[dict[str, float]]) -> dict[str, Any]:
    rss = [w["rss_median_mib"] for w in windows]
    return {
        "name": subject.name,
        "windows": windows,
        "rss_median_mib": statistics.median(rss),
        "rss_peak_mib": max(w["rss_peak_mib"] for w in windows),
        "cpu_pct": sum(w["cpu_s"] for w in windows) / sum(w["span_s"] for w in windows) * 100,
    }


def _measure(subjects: list[Subject]) -> list[list[dict[str, float]]]:
    """ROUNDS windows; per subject a list of {span_s, cpu_s, cpu_pct, rss_median_mib, rss_peak_mib, load1}."""
    results: list[list[dict[str, float]]] = [[] for _ in subjects]
    for _ in range(ROUNDS):
        for s in subjects:
            s.begin()
        started = time.monotonic()
        load_before = os.getloadavg()[0]
        while time.monotonic() - started < WINDOW_S:
            time.sleep(1.0)
            for s in subjects:
                s.sample()
        span = time.monotonic() - started
        if MEMDIAG_DIR:
            _memdiag([s for s in subjects if s.name.startswith("schulwart-agent")])
        load = (load_before + os.getloadavg()[0]) / 2
        for s, out in zip(subjects, results, strict=True):
            out.append({
                "span_s": span, "cpu_s": s.cpu_seconds(), "cpu_pct": 100 * s.cpu_seconds() / span,
                "rss_median_mib": statistics.median(s.rss) / MIB, "rss_peak_mib": max(s.rss) / MIB, "load1": load,
            })  # fmt: skip
    return results


def _memdiag(agents: list[Subject]) -> None:
    """SIGUSR2 to each agent, then wait (60 s at most) for their reports: with tracemalloc a report takes a while."""
    written = len(list(Path(MEMDIAG_DIR).glob("memdiag-*.txt")))
    for agent in agents:
        os.kill(agent.pid, signal.SIGUSR2)
    deadline = time.monotonic() + 60.0
    while len(list(Path(MEMDIAG_DIR).glob("memdiag-*.txt"))) < written + len(agents) and time.monotonic() < deadline:
        time.sleep(1.0)
    time.sleep(2.0)  # the snapshot file follows the report


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    floor = next(s for s in result["subjects"] if s["name"] == "floor")
    rss_target = floor["rss_median_mib"] + RSS_TARGET_OVER_FLOOR_MIB
    loads = "/".join(f"{w['load1']:.1f}" for w in floor["windows"])
    rows: list[dict[str, Any]] = []
    for s in result["subjects"]:
        per_window = [w["cpu_pct"] for w in s["windows"]]
        medians = "/".join(f"{w['rss_median_mib']:.1f}" for w in s["windows"])
        rss_note = f"peak {s['rss_peak_mib']:.1f}; windows {medians}"
        cpu_note = f"windows {'/'.join(f'{c:.2f}' for c in per_window)}; load {loads}"
        rss_row: dict[str, Any] = {"name": f"{s['name']}: RSS median", "value": round(s["rss_median_mib"], 1),
                                   "unit": "MiB"}  # fmt: skip
        cpu_row: dict[str, Any] = {"name": f"{s['name']}: CPU", "value": round(s["cpu_pct"], 3), "unit": "% of a core"}
        if s["name"] == "floor":
            rss_note += "; baseline: python with aiohttp (client, server), zeroconf, psutil, sqlite3, Ed25519"
        elif s["name"].startswith("schulwart-agent"):
            over = s["rss_median_mib"] - floor["rss_median_mib"]
            missed = s["rss_median_mib"] - rss_target
            rss_note += f"; floor +{over:.1f}" + (f", {missed:.1f} MiB over the target" if missed > 0 else "")
            base = floor["rss_median_mib"]
            rss_row |= {"baseline": round(base, 1), "ratio": round(s["rss_median_mib"] / base, 2),
                        "target": f"≤ {rss_target:.1f} (floor + {RSS_TARGET_OVER_FLOOR_MIB:g})",
                        "met": missed <= 0}  # fmt: skip
            cpu_row |= {"target": f"≤ {CPU_TARGET_PCT}", "met": s["cpu_pct"] <= CPU_TARGET_PCT}
        rows.append(rss_row | {"note": rss_note})
        rows.append(cpu_row | {"note": cpu_note})
    for label, seconds in result["first_sync_s"].items():
        rows.append({"name": f"schulwart-agent ({label}): start → first sync", "value": round(seconds, 2), "unit": "s",
                     "note": "exec → central holds its first report"})  # fmt: skip
    for package, why in result["peers_missing"].items():
        rows.append({"name": package, "value": "not measured", "unit": "", "note": why})
    return rows


def run() -> list[dict[str, Any]]:
    """Rows per measured process: RSS median (MiB) and CPU (% of a core); the agents' start → first sync."""
    if netns.unavailable_reason():
        return [{"name": "agent footprint", "value": "skipped", "unit": "", "note": netns.unavailable_reason()}]
    peers = PEERS if WITH_PEERS else ()
    peers_missing = _apt_install([p.package for p in peers if not Path(p.argv[0]).exists()])
    if MEMDIAG_DIR:
        Path(MEMDIAG_DIR).mkdir(parents=True, exist_ok=True)
        os.environ["SCHULWART_MEMDIAG"] = MEMDIAG_DIR  # the agents inherit it
    work = Path(tempfile.mkdtemp(prefix="bench-footprint-"))
    run_ = DemoRun(log_dir=work, start_timeout=90.0)
    spec = DemoSpec(devices=SCHOOL_SIZE["devices"], port=0)
    schools = [
        School(number, sid, name, "Kreis Bench", (), work / sid, aps=SCHOOL_SIZE["aps"],
               cabinets=SCHOOL_SIZE["cabinets"], receivers=SCHOOL_SIZE["receivers"], printers=SCHOOL_SIZE["printers"])
        for number, sid, name in ((1, "fp-default", "GS Standard"), (2, "fp-short", "GS Kurztakt"))
        if WITH_SHORT or sid != "fp-short"
    ]  # fmt: skip
    labels = {"fp-default": "default intervals", "fp-short": "sim's short intervals"}
    try:
        why = make_namespaces(run_, schools, NET)
        if why:
            raise RuntimeError(f"network namespaces: {why}")
        token = prepare_central(run_, work / "central", schools)
        port = start_central(run_, work / "central", 0, True)
        central = f"http://127.0.0.1:{port}"
        enroll_agents(run_, work / "central", schools, port)
        subjects = [Subject("floor", run_.start("floor", [sys.executable, "-c", f"import {', '.join(FLOOR_IMPORTS)}; "
                                                          "import time; time.sleep(1e9)"]).popen.pid)]  # fmt: skip
        subjects += [Subject(p.name, run_.start(p.package, list(p.argv)).popen.pid)
                     for p in peers if p.package not in peers_missing]  # fmt: skip
        first_sync: dict[str, float] = {}
        for school in schools:  # one after the other: each agent's start is timed on its own
            _start_school(run_, school, spec, port, school.id == "fp-default")
            agent = run_.children[-1]
            started = time.monotonic()
            run_.wait_for(
                f"{school.id}'s first report at central",
                functools.partial(_reported, central, token, school.central_id),
                SYNC_TIMEOUT_S,
            )
            first_sync[labels[school.id]] = time.monotonic() - started
            subjects.append(Subject(f"schulwart-agent ({labels[school.id]})", agent.popen.pid))
        for school in schools:
            run_.wait_for(f"{school.id}'s inventory", functools.partial(_inventoried, school, _announced(school)),
                          INVENTORY_TIMEOUT_S)  # fmt: skip
        measured = _measure(subjects)
        run_.check_children()
    finally:
        run_.teardown()
        for child in run_.children:  # Netdata's plugins share its process group, which we made
            try:
                os.killpg(child.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(work, ignore_errors=True)
    at = datetime.now(UTC)
    result = {
        "at": at.isoformat(timespec="seconds"),
        "window_s": WINDOW_S, "rounds": ROUNDS, "cpus": os.cpu_count(), "school": SCHOOL_SIZE,
        "floor_imports": FLOOR_IMPORTS, "peers_missing": peers_missing, "first_sync_s": first_sync,
        "subjects": [_summarise(s, m) for s, m in zip(subjects, measured, strict=True)],
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"footprint-{at:%Y%m%dT%H%M%SZ}.json").write_text(json.dumps(result, indent=2) + "\n")
    return _rows(result)


if __name__ == "__main__":
    for row in run():
        sys.stdout.write(f"{row['name']}\t{row['value']}\t{row['unit']}\t{row['note']}\n")
