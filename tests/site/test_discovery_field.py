"""Discovery as devices announce in the field (issue #12), over real multicast on IPv4 loopback:
Macs as AirPlay receivers, probes that cannot be sent, devices without a unique id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.monitors.discovery.config import parse_discovery
from agent.monitors.discovery.monitor import DiscoveryMonitor
from sim.mdns import Announcer, airplay_services, mac_services, printer_services
from sim.network import TcpListener

pytestmark = pytest.mark.usefixtures("fast_mdns")


@pytest.fixture
async def discovery() -> AsyncIterator[Callable[..., Any]]:
    monitors: list[DiscoveryMonitor] = []

    async def make(**section: Any) -> DiscoveryMonitor:
        monitor = DiscoveryMonitor(parse_discovery({"discovery": {"interfaces": ["127.0.0.1"], **section}}))
        await monitor.start()
        monitors.append(monitor)
        return monitor

    yield make
    for monitor in monitors:
        await monitor.stop()


@pytest.fixture
async def announcer() -> AsyncIterator[Announcer]:
    announcer = Announcer("127.0.0.1")
    await announcer.start()
    yield announcer
    await announcer.stop()


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def bad_keys(signals: list[Any], device_id: str) -> list[str]:
    return [s.key for s in signals if s.bad and device_id in s.key]


async def test_a_mac_announcing_airplay_is_not_a_receiver_that_must_stay(  # type: ignore[no-untyped-def]
    sim_factory, discovery, tag: str
) -> None:
    monitor = await discovery(missing_after=1, probe_timeout=0.5)
    sim = await sim_factory(school=tag, devices=0, receivers=1, printers=0, aps=0, cabinets=0, macs=1)
    mac = next(d for d in sim.devices if d.kind == "mac")
    receiver = next(d for d in sim.devices if d.kind == "receiver")
    await wait_for(lambda: all(monitor.tracker.get(d.expected_id) is not None for d in (mac, receiver)))
    laptop = monitor.tracker.get(mac.expected_id)
    assert laptop is not None and laptop.device_class == "other" and laptop.model == "MacBookAir10,1"
    assert len(laptop.services) == 2  # _airplay and _raop, one device
    assert monitor.tracker.get(receiver.expected_id).device_class == "airplay"  # type: ignore[union-attr]
    await sim.set_fault("mac-gone:1", True)  # the teacher takes the laptop home
    await sim.set_fault("receiver-gone:1", True)
    await wait_for(lambda: monitor.tracker.get(mac.expected_id).state == "absent")  # type: ignore[union-attr]
    later = await monitor.collect(datetime.now(UTC) + timedelta(seconds=5))
    assert bad_keys(list(later.signals), mac.expected_id) == []
    assert bad_keys(list(later.signals), receiver.expected_id) == [f"device-missing:{receiver.expected_id}"]


async def test_a_device_still_announced_is_not_missing_when_its_probe_cannot_be_sent(  # type: ignore[no-untyped-def]
    discovery, announcer: Announcer, tag: str
) -> None:
    # Its address has no route from here (a multicast address: connect() fails on this host with
    # ENETUNREACH before anything is sent), so every liveness probe fails locally.
    monitor = await discovery(missing_after=1, probe_timeout=0.5, liveness_interval=0.1)
    uuid = f"{int(time.time() * 1e6) % 10**12:012d}-aaaa-4bbb-8ccc-{tag[1:]:0>12}"
    await announcer.register(printer_services(f"Drucker {tag}", f"printer-{tag}", "224.0.0.1", 631, uuid, "Aula"))
    device_id = f"id:{uuid}"
    await wait_for(lambda: monitor.tracker.get(device_id) is not None)
    now = datetime.now(UTC)
    for step in range(4):
        report = await monitor.collect(now + timedelta(seconds=2 * step))
        assert bad_keys(list(report.signals), device_id) == []
    assert monitor.tracker.get(device_id).state == "present"  # type: ignore[union-attr]
    assert report.snapshot["probes_unsent"] >= 1


async def test_devices_without_a_unique_id_are_neither_merged_nor_split(  # type: ignore[no-untyped-def]
    discovery, announcer: Announcer, tag: str
) -> None:
    # Cheap receivers announce a placeholder deviceid (all zeros) and the RAOP name "000000000000@…".
    monitor = await discovery()
    listeners = [TcpListener("127.0.0.1") for _ in range(2)]
    for listener in listeners:
        await listener.start()
    try:
        for i, listener in enumerate(listeners, 1):
            await announcer.register(airplay_services(f"Beamer {tag}-{i}", f"beamer-{tag}-{i}", "00:00:00:00:00:00",
                                                      "127.0.0.1", listener.port))
        ids = {f"host:beamer-{tag}-{i}" for i in (1, 2)}
        await wait_for(lambda: {d.id for d in monitor.tracker.devices()} >= ids)
        mine = [d for d in monitor.tracker.devices() if tag in d.name or d.id in ids]
        assert sorted(d.id for d in mine) == sorted(ids)  # two devices, not one "mac:00:00:…"
        assert all(len(d.services) == 2 for d in mine)  # each with both of its services
        assert monitor.tracker.get("mac:00:00:00:00:00:00") is None
    finally:
        for listener in listeners:
            await listener.stop()


async def test_mac_services_shape() -> None:
    airplay, raop = mac_services("MacBook", "macbook", "3c:22:fb:01:02:03", "127.0.0.1", 7000)
    assert airplay.properties[b"model"] == b"MacBookAir10,1" and raop.name.startswith("3C22FB010203@")
