"""One monitor's failure never stops the agent: it is contained, counted and raised as a host incident.

The agent runs in-process (real SQLite file, real loopback sockets); the WLAN controller is the
simulator's UniFi server, whose JSON escapes an AP name "AP \\ud800 evil" exactly as a real
controller would send it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.config import parse_config
from agent.incidents.engine import list_incidents
from agent.live import MONITOR_FAILING_PREFIX
from agent.monitors.interface import MonitorReport
from agent.runner import Agent
from agent.wiring import build_agent
from base.clock import SystemClock
from sim.faults import FaultBoard
from sim.unifi import SimAp, UnifiServer


def _config(extra: dict[str, Any] | None = None) -> Any:
    return parse_config(
        {
            "agent": {"snapshot_interval": 0.2},
            "host": {"interval": 0.2},
            "incidents": {"open_after": 2, "resolve_after": 2},
            "discovery": {"enabled": False},
            **(extra or {}),
        }
    )


async def _until(check: Callable[[], bool], task: asyncio.Task[bool], seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        assert not task.done(), f"the agent stopped: {task.result() if not task.cancelled() else 'cancelled'}"
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _snapshots(agent: Agent) -> list[dict[str, Any]]:
    rows = agent.store.query("SELECT data FROM outbox WHERE kind = 'health.snapshot' ORDER BY seq")
    return [json.loads(r[0]) for r in rows]


async def test_controller_naming_an_ap_with_a_lone_surrogate_leaves_the_agent_running(
    aiohttp_server: Any, data_dir: Path
) -> None:
    aps = [
        SimAp(1, "AP \ud800 evil", "80:2a:a8:00:00:01", "127.0.0.1", 5),
        SimAp(2, "AP Flur", "80:2a:a8:00:00:02", "127.0.0.1", 3),
    ]
    unifi = UnifiServer(aps, FaultBoard(), password="pw", style="classic")
    server = await aiohttp_server(unifi.app)
    config = _config(
        {
            "wlan": {
                "interval": 0.2,
                "controller": {
                    "kind": "unifi",
                    "url": str(server.make_url("")).rstrip("/"),
                    "username": "schulwart",
                    "password": "pw",
                    "style": "classic",
                    "timeout": "2s",
                },
            }
        }
    )
    agent = build_agent(config, data_dir, SystemClock(), listen="127.0.0.1:0")
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))

    def rejected_twice_and_snapshotted() -> bool:
        wlan = agent.live.sections.get("wlan", {})
        controller = wlan.get("controller") or {}
        later = [s for s in _snapshots(agent) if (s.get("wlan") or {}).get("controller", {}).get("rejected_replies")]
        return controller.get("rejected_replies", 0) >= 2 and len(later) >= 2

    await _until(rejected_twice_and_snapshotted, task)
    controller = agent.live.sections["wlan"]["controller"]
    assert controller["ok"] is False and controller["error"].startswith("not-json")
    assert "evil" not in json.dumps(_snapshots(agent))  # the reply was refused whole, at the door
    stop.set()
    assert await asyncio.wait_for(task, 10) is True  # stopped on request, not on its own


@dataclass
class BrokenMonitor:
    """A monitor whose collect raises, or whose section cannot be written as JSON."""

    mode: str
    name: str = "broken"
    interval_s: float = 0.05
    rounds: int = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def collect(self, now: datetime) -> MonitorReport:
        self.rounds += 1
        if self.mode == "raise":
            raise RuntimeError("driver bug")
        return MonitorReport("broken", {"name": "x\udc80y", "load": float("inf")})


@dataclass
class HealthyMonitor:
    name: str = "healthy"
    interval_s: float = 0.05
    rounds: int = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def collect(self, now: datetime) -> MonitorReport:
        self.rounds += 1
        return MonitorReport("healthy", {"rounds": self.rounds})


async def _run_with(monitor: BrokenMonitor, data_dir: Path) -> None:
    agent = build_agent(_config(), data_dir, SystemClock(), listen="127.0.0.1:0")
    healthy = HealthyMonitor()
    agent.monitors.extend([monitor, healthy])
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    key = MONITOR_FAILING_PREFIX + "broken"

    def incident_open() -> bool:
        return any(i.key == key for i in list_incidents(agent.store, open_only=True))

    await _until(incident_open, task)
    await _until(lambda: len(_snapshots(agent)) >= 2, task)
    incident = next(i for i in list_incidents(agent.store, open_only=True) if i.key == key)
    assert incident.category == "host" and incident.title == "Monitor broken failing"
    assert agent.live.counters.monitor_errors["broken"] >= 2
    rounds = healthy.rounds
    await _until(lambda: healthy.rounds > rounds + 2, task)  # the others keep running
    assert "broken" not in _snapshots(agent)[-1]  # the unwritable section never reached a snapshot
    stop.set()
    assert await asyncio.wait_for(task, 10) is True


async def test_a_raising_monitor_opens_monitor_failing_and_the_others_run(data_dir: Path) -> None:
    await _run_with(BrokenMonitor("raise"), data_dir)


async def test_a_monitor_with_an_unwritable_section_is_refused_and_counted(data_dir: Path) -> None:
    await _run_with(BrokenMonitor("unwritable"), data_dir)


async def test_failing_incident_resolves_when_the_monitor_recovers(data_dir: Path) -> None:
    agent = build_agent(_config(), data_dir, SystemClock(), listen="127.0.0.1:0")
    monitor = BrokenMonitor("raise")
    agent.monitors.append(monitor)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    key = MONITOR_FAILING_PREFIX + "broken"
    await _until(lambda: any(i.key == key for i in list_incidents(agent.store, open_only=True)), task)
    monitor.mode = "ok-now"

    async def good(now: datetime) -> MonitorReport:
        return MonitorReport("broken", {"fine": True})

    monitor.collect = good  # type: ignore[method-assign]
    await _until(lambda: not any(i.key == key for i in list_incidents(agent.store, open_only=True)), task)
    stop.set()
    assert await asyncio.wait_for(task, 10) is True
