"""Discovery over real multicast on IPv4 loopback: the simulated school in-process, QM browsing.

Other tests (and other engineers' tests) may announce on loopback at the same time: every name
here carries a per-test tag, and assertions look only at this test's devices.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.monitors.discovery.config import parse_discovery
from agent.monitors.discovery.monitor import DiscoveryMonitor
from agent.monitors.interface import Signal

pytestmark = pytest.mark.usefixtures("fast_mdns")


@pytest.fixture
async def discovery() -> AsyncIterator[Callable[..., Any]]:
    """Start a loopback DiscoveryMonitor; stopped (browsers cancelled, zeroconf closed) afterwards."""
    monitors: list[DiscoveryMonitor] = []

    async def make(**section: Any) -> DiscoveryMonitor:
        monitor = DiscoveryMonitor(parse_discovery({"discovery": {"interfaces": ["127.0.0.1"], **section}}))
        await monitor.start()
        monitors.append(monitor)
        return monitor

    yield make
    for monitor in monitors:
        await monitor.stop()


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> float:
    """Poll until true; returns the seconds it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def expected(sim: Any) -> dict[str, str]:
    return {d["id"]: d["class"] for d in sim.state()["devices"]}


def found(monitor: DiscoveryMonitor, ids: dict[str, str]) -> dict[str, str]:
    return {d.id: d.device_class for d in monitor.tracker.devices() if d.id in ids}


async def test_simulated_school_is_inventoried_with_the_right_classes(sim_factory, discovery, tag) -> None:  # type: ignore[no-untyped-def]
    monitor = await discovery()
    started = time.monotonic()
    sim = await sim_factory(school=tag, devices=12, receivers=2, printers=2, aps=0, cabinets=2)
    want = expected(sim)
    assert sorted(set(want.values())) == ["airplay", "meter", "printer", "tablet"]
    await wait_for(lambda: found(monitor, want) == want, timeout=10)
    assert time.monotonic() - started < 5  # "within seconds", sim start-up included
    report = await monitor.collect(datetime.now(UTC))
    mine = [c for c in report.device_changes if c.device.id in want]
    assert {c.change for c in mine} == {"seen"} and len(mine) == len(want)
    tablet = next(c.device for c in mine if c.device.device_class == "tablet")
    assert tablet.model == "iPad13,4" and "iPad" in tablet.name and len(tablet.services) == 2
    printer = next(c.device for c in mine if c.device.device_class == "printer")
    assert printer.model == "HP LaserJet Pro M404dn"
    assert report.snapshot["mdns"]["rcvbuf_bytes"] >= 4 * 1024 * 1024
    candidates = {c["id"] for c in report.snapshot["meter_candidates"]}
    assert {i for i, k in want.items() if k == "meter"} <= candidates


async def test_receiver_gone_is_confirmed_by_a_probe_and_resolves_on_return(sim_factory, discovery, tag) -> None:  # type: ignore[no-untyped-def]
    monitor = await discovery(missing_after=1, probe_timeout=1)
    sim = await sim_factory(school=tag, devices=0, receivers=2, printers=0, aps=0, cabinets=0)
    receiver = next(d for d in sim.devices if d.kind == "receiver" and d.index == 1)
    other = next(d for d in sim.devices if d.kind == "receiver" and d.index == 2)
    await wait_for(lambda: monitor.tracker.get(receiver.expected_id) is not None)

    def verdict(signals: list[Signal], device_id: str) -> bool:
        return next(s for s in signals if s.key == f"device-missing:{device_id}").bad

    report = await monitor.collect(datetime.now(UTC))
    assert verdict(report.signals, receiver.expected_id) is False

    # Gone from mDNS but still answering on its port: a lost goodbye or a sleepy Bonjour stack, not missing.
    await sim.announcer.unregister(other.services)
    await wait_for(lambda: monitor.tracker.get(other.expected_id).state == "absent")  # type: ignore[union-attr]
    # Really gone: goodbye and the AirPlay port closed.
    await sim.set_fault("receiver-gone:1", True)
    await wait_for(lambda: monitor.tracker.get(receiver.expected_id).state == "absent")  # type: ignore[union-attr]
    early = await monitor.collect(datetime.now(UTC))
    assert verdict(early.signals, receiver.expected_id) is False  # not absent for missing_after yet
    later = await monitor.collect(datetime.now(UTC) + timedelta(seconds=2))
    assert verdict(later.signals, receiver.expected_id) is True
    assert verdict(later.signals, other.expected_id) is False
    bad = next(s for s in later.signals if s.key == f"device-missing:{receiver.expected_id}")
    assert bad.severity == "warning" and bad.category == "device" and bad.subject == receiver.expected_id
    assert receiver.name not in bad.title and bad.details["name"] == receiver.name
    assert any(c.device.id == receiver.expected_id and c.device.state == "missing" for c in later.device_changes)

    await sim.set_fault("receiver-gone:1", False)
    await wait_for(lambda: monitor.tracker.get(receiver.expected_id).state == "present")  # type: ignore[union-attr]
    back = await monitor.collect(datetime.now(UTC) + timedelta(seconds=3))
    assert verdict(back.signals, receiver.expected_id) is False


async def test_injected_clock_stamps_the_inventory(sim_factory, tag) -> None:  # type: ignore[no-untyped-def]
    fixed = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    monitor = DiscoveryMonitor(parse_discovery({"discovery": {"interfaces": ["127.0.0.1"]}}), clock=lambda: fixed)
    await monitor.start()
    try:
        sim = await sim_factory(school=tag, devices=1, receivers=0, printers=0, aps=0, cabinets=0)
        device_id = sim.devices[0].expected_id
        await wait_for(lambda: monitor.tracker.get(device_id) is not None)
        device = monitor.tracker.get(device_id)
        assert device is not None and device.first_seen == fixed
    finally:
        await monitor.stop()


async def test_receiver_without_power_is_found_by_its_liveness_probe(sim_factory, discovery, tag) -> None:  # type: ignore[no-untyped-def]
    # No goodbye: mDNS keeps the receiver's records for up to 75 min. Only probing finds it.
    watched = await discovery(missing_after=1, probe_timeout=0.5, liveness_interval=0.5)
    blind = await discovery(missing_after=1, probe_timeout=0.5, liveness_interval=0)
    sim = await sim_factory(school=tag, devices=0, receivers=1, printers=0, aps=0, cabinets=0)
    receiver = sim.devices[0]
    for monitor in (watched, blind):
        await wait_for(lambda m=monitor: m.tracker.get(receiver.expected_id) is not None)

    def verdict(report: Any) -> bool:
        return next(s for s in report.signals if s.key == f"device-missing:{receiver.expected_id}").bad

    start = datetime.now(UTC)
    assert verdict(await watched.collect(start)) is False
    await sim.set_fault("receiver-unplugged:1", True)
    await watched.collect(start + timedelta(seconds=1))  # liveness probe fails: absent from now
    assert watched.tracker.get(receiver.expected_id).state == "absent"  # type: ignore[union-attr]
    assert watched.tracker.is_live(receiver.expected_id)  # mDNS still believes in it
    later = await watched.collect(start + timedelta(seconds=3))
    assert verdict(later) is True
    for offset in (1, 3):
        report = await blind.collect(start + timedelta(seconds=offset))
        assert verdict(report) is False  # without liveness probes the dead receiver stays "present"

    await sim.set_fault("receiver-unplugged:1", False)
    back = await watched.collect(start + timedelta(seconds=5))
    assert verdict(back) is False
    assert watched.tracker.get(receiver.expected_id).state == "present"  # type: ignore[union-attr]
