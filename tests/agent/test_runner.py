"""The runner in-process: monitors (host + a site monitor on the seam), incidents, snapshots, sync, stop."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent.config import parse_config
from agent.enroll import enroll
from agent.incidents.engine import list_incidents
from agent.monitors.interface import Device, DeviceChange, MonitorReport, Signal
from agent.store import Store
from agent.sync.client import REFUSED_KEY
from agent.wiring import build_agent
from base.clock import SystemClock
from protocol.schema import REPORT_TYPE, STATE_TYPE
from tests.agent.fakecentral import FakeCentral, seqs


@dataclass
class FakeSite:
    """A site monitor as the other engineer's would be: one iPad seen, and an AP that is down."""

    name: str = "fake-site"
    interval_s: float = 0.1
    rounds: int = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def collect(self, now: datetime) -> MonitorReport:
        self.rounds += 1
        changes = []
        if self.rounds == 1:
            ipad = Device("aa:bb:cc:00:00:01", "ipad", "Lenas iPad", "iPad9,1", ("10.0.0.5",), (), now, now)
            changes.append(DeviceChange("seen", ipad))
        down = Signal("ap-down:ap-flur-2", True, "wlan", "warning", "Access point down", "ap-flur-2", now)
        return MonitorReport("wlan", {"aps": 1, "down": 1}, signals=[down], device_changes=changes)


async def test_agent_runs_everything_and_stops_cleanly(central: tuple[FakeCentral, str], data_dir: Path) -> None:
    fake, url = central
    await enroll(url, fake.code(), data_dir, SystemClock())
    config = parse_config(
        {
            "agent": {"snapshot_interval": 0.3},
            "sync": {"report_interval": 0.1, "max_bytes_per_s": 0},
            "host": {"interval": 0.1, "disk_max_percent": 0.1},
            "incidents": {"open_after": 2, "resolve_after": 2},
            "discovery": {"enabled": False},
        }
    )
    agent = build_agent(config, data_dir, SystemClock(), listen="127.0.0.1:0")
    site = FakeSite()
    agent.monitors.append(site)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    for _ in range(100):
        await asyncio.sleep(0.05)
        record = fake.agents.get(next(iter(fake.agents)))
        kinds = [e["kind"] for e in record.events.values()]
        if kinds.count("incident.opened") >= 2 and kinds.count("health.snapshot") >= 2:
            break
    stop.set()
    assert await asyncio.wait_for(task, 10) is True
    record = fake.only()
    assert seqs(record) == list(range(1, len(record.events) + 1))
    # The present goes first: the first envelope central verified is a state, before any report.
    assert record.states and fake.types[0] == STATE_TYPE and REPORT_TYPE in fake.types
    assert record.states[0].last_seq < max(record.events)
    events = [record.events[s] for s in seqs(record)]
    opened = {e["data"]["key"].split(":")[0] for e in events if e["kind"] == "incident.opened"}
    assert {"host-disk", "ap-down"} <= opened
    text = json.dumps(events)
    assert "Lenas" not in text and "aa:bb:cc" not in text and "ap-flur-2" not in text  # pseudonyms only
    seen = [e for e in events if e["kind"] == "device.seen"]
    assert len(seen) == 1 and seen[0]["data"]["class"] == "ipad" and seen[0]["data"]["id"].startswith("d-")
    snapshot = next(e for e in events if e["kind"] == "health.snapshot")["data"]
    assert {"host", "outbox", "counts", "agent"} <= set(snapshot)
    assert snapshot["wlan"] == {"aps": 1, "down": 1} or "wlan" not in snapshot  # first may come before the site round


async def test_a_central_that_refuses_the_reports_opens_the_local_incident(
    central: tuple[FakeCentral, str], data_dir: Path
) -> None:
    """The whole agent, not the sync client alone: the refusal reaches the engine and the store."""
    fake, url = central
    await enroll(url, fake.code(), data_dir, SystemClock())
    fake.fail_next.extend([400] * 3)  # central refuses this agent's reports (a 4xx other than 401/403/409/413)
    config = parse_config(
        {
            "agent": {"snapshot_interval": 0.2},
            "sync": {"report_interval": 0.05, "max_bytes_per_s": 0, "revoked_retry": 60},
            "host": {"interval": 0.1},
            "discovery": {"enabled": False},
        }
    )
    agent = build_agent(config, data_dir, SystemClock(), listen="127.0.0.1:0")
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    keys: set[str] = set()
    for _ in range(100):
        await asyncio.sleep(0.05)
        keys = {i.key for i in list_incidents(agent.store, open_only=True)}
        if REFUSED_KEY in keys:
            break
    stop.set()
    assert await asyncio.wait_for(task, 10) is True
    assert REFUSED_KEY in keys
    store = Store.open(data_dir)  # in the database, where the technician page and central find it
    try:
        (incident,) = [i for i in list_incidents(store) if i.key == REFUSED_KEY]
        assert incident.is_open and incident.severity == "critical" and incident.category == "agent"
    finally:
        store.close()


@dataclass
class StopOnFirstHost:
    """A host monitor whose first report arrives in the same moment as SIGTERM's stop.

    ``yields`` loop turns pass between the stop and the report, so the shutdown's cancel meets
    the snapshot loop in each step of its wait for the first host report.
    """

    halt: asyncio.Event
    yields: int
    name: str = "host"
    interval_s: float = 0.05

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def collect(self, now: datetime) -> MonitorReport:
        if not self.halt.is_set():
            self.halt.set()
            for _ in range(self.yields):
                await asyncio.sleep(0)
        return MonitorReport("host", {})


async def test_a_stop_in_the_moment_of_the_first_host_report_still_stops_the_agent(data_dir: Path) -> None:
    # Python 3.11's asyncio.wait_for returns the inner result and drops a cancel that arrives in
    # the loop turn the awaited event is set: the snapshot loop then went on to its next round
    # (here an hour away) and the agent ignored SIGTERM until killed.
    config = parse_config({"agent": {"snapshot_interval": 3600}, "discovery": {"enabled": False}})
    for yields in range(8):
        agent = build_agent(config, data_dir, SystemClock(), listen="127.0.0.1:0")
        stop = asyncio.Event()
        host = StopOnFirstHost(stop, yields)
        agent.monitors = [m for m in agent.monitors if m.name != "host"] + [host]  # type: ignore[list-item]
        task = asyncio.create_task(agent.run(stop))
        done, _ = await asyncio.wait({task}, timeout=20)
        assert done, f"the agent did not stop (stop {yields} loop turns before the first host report)"
        assert task.result() is True
