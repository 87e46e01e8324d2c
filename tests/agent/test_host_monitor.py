"""The host monitor with real psutil, and its rules on exact values."""

from __future__ import annotations

import asyncio
import ctypes.util
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from agent.monitors import host
from agent.monitors.host import ClockState, ClockSyncProbe, DiskUse, HostMonitor, HostSnapshot, clock_sync, host_signals
from base.agentconfig import HostSection
from base.clock import FakeClock


async def test_collect_with_real_psutil(data_dir: Path, clock: FakeClock) -> None:
    monitor = HostMonitor(data_dir, HostSection(), clock_offset=lambda: 1.5)
    await monitor.start()
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = monitor.sample

    def spy(offset: float | None) -> HostSnapshot:
        seen.append(threading.get_ident())
        return original(offset)

    monitor.sample = spy  # type: ignore[method-assign]
    report = await monitor.collect(clock.now())
    assert seen and seen[0] != loop_thread  # psutil ran in a worker thread, not on the loop
    snap = report.snapshot
    assert report.section == "host"
    assert 0 <= snap["root"]["percent"] <= 100 and snap["root"]["total_bytes"] > 0
    assert snap["data"]["path"] == str(data_dir)
    assert 0 < snap["memory_available_percent"] <= 100
    assert len(snap["load"]) == 3 and snap["uptime_s"] > 0
    assert snap["agent_rss_bytes"] > 10 * 1024 * 1024
    assert snap["agent_cpu_percent"] >= 0
    assert snap["clock"]["sync"] in ("synced", "unsynced", "unknown")
    assert snap["clock"]["offset_s"] == 1.5
    keys = {s.key for s in report.signals}
    assert {"host-disk:root", "host-memory", "host-clock"} <= keys
    assert all(s.category == "host" and s.at == clock.now() for s in report.signals)
    await monitor.stop()


def test_clock_sync_answers_something() -> None:
    state, source = clock_sync()
    assert state in ("synced", "unsynced", "unknown")
    assert (source is None) == (state == "unknown")


def test_the_kernel_is_asked_without_a_child_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # find_library("c") runs `ldconfig -p`, timedatectl is a child process: neither per round.
    def no_child(*args: object, **kwargs: object) -> object:
        raise AssertionError("a child process was started")

    monkeypatch.setattr(subprocess, "run", no_child)
    monkeypatch.setattr(ctypes.util, "find_library", no_child)
    probe = ClockSyncProbe()
    for _ in range(3):
        assert probe() in (("synced", "adjtimex"), ("unsynced", "adjtimex"))


def test_timedatectl_is_asked_once_per_recheck_when_the_kernel_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel_calls: list[int] = []
    asked: list[int] = []

    def refused() -> None:
        kernel_calls.append(1)
        return None  # as under ProtectClock

    def timedatectl() -> str:
        asked.append(1)
        return "synced" if len(asked) == 1 else "unsynced"

    monkeypatch.setattr(host, "_adjtimex", refused)
    monkeypatch.setattr(host, "_timedatectl", timedatectl)
    now = [0.0]
    probe = ClockSyncProbe(recheck_s=900.0, monotonic=lambda: now[0])
    for t in (0.0, 60.0, 899.0):
        now[0] = t
        assert probe() == ("synced", "timedatectl")
    assert len(asked) == 1
    assert len(kernel_calls) == 1  # a refusal is not asked again
    now[0] = 900.0
    assert probe() == ("unsynced", "timedatectl")
    assert len(asked) == 2


def test_no_answer_anywhere_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "_adjtimex", lambda: None)
    monkeypatch.setattr(host, "_timedatectl", lambda: None)
    assert ClockSyncProbe()() == ("unknown", None)
    assert clock_sync() == ("unknown", None)


def _snapshot(**kw: object) -> HostSnapshot:
    base = HostSnapshot(
        root=DiskUse("/", 50.0, 10**10, 2 * 10**10),
        data=DiskUse("/var/lib/schulwart", 50.0, 10**10, 2 * 10**10),
        data_on_root=False,
        memory_percent=40.0,
        memory_available_percent=60.0,
        load=(0.1, 0.1, 0.1),
        cpu_count=2,
        uptime_s=100.0,
        clock=ClockState("synced", "adjtimex", 0.5),
        agent_rss_bytes=1,
        agent_cpu_percent=0.0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("snapshot", "bad_keys"),
    [
        (_snapshot(), set()),
        (_snapshot(root=DiskUse("/", 90.5, 1, 100)), {"host-disk:root"}),
        (_snapshot(data=DiskUse("/d", 99.0, 1, 100)), {"host-disk:data"}),
        (_snapshot(data=DiskUse("/d", 99.0, 1, 100), data_on_root=True), set()),  # same partition: one rule
        (_snapshot(memory_available_percent=4.0), {"host-memory"}),
        (_snapshot(clock=ClockState("unsynced", None, -900.0)), {"host-clock"}),
        (_snapshot(clock=ClockState("unknown", None, None)), set()),  # no evidence, no incident
    ],
)
def test_rules(snapshot: HostSnapshot, bad_keys: set[str], clock: FakeClock) -> None:
    signals = host_signals(snapshot, HostSection(), clock.now())
    assert {s.key for s in signals if s.bad} == bad_keys


def test_severity_scales(clock: FakeClock) -> None:
    signals = host_signals(
        _snapshot(root=DiskUse("/", 99.0, 1, 100), memory_available_percent=2.0), HostSection(), clock.now()
    )
    by_key = {s.key: s for s in signals}
    assert by_key["host-disk:root"].severity == "critical"
    assert by_key["host-memory"].severity == "critical"


async def test_collect_does_not_block_loop(data_dir: Path, clock: FakeClock) -> None:
    monitor = HostMonitor(data_dir, HostSection())
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    for _ in range(3):
        await monitor.collect(clock.now())
    task.cancel()
    assert ticks > 0
