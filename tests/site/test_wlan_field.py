"""WLAN controllers as they answer in the field (issue #12): UniFi consoles serving WLAN, sessions
refused in every form the controllers use. Over real HTTP against the sim's controller."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.monitors.wlan.monitor import WlanMonitor
from agent.monitors.wlan.unifi import UnifiController, parse_devices
from base.agentconfig.wlan import parse_wlan
from sim.unifi import SESSION_REFUSALS

UX_ROW = {  # a UniFi Express used as a mesh AP, as stat/device lists it (personal details replaced)
    "_id": "65a1", "adopted": True, "mac": "80:22:22:22:22:22", "model": "UX", "name": "Express Aula",
    "ip": "10.0.0.9", "type": "udm", "device_mode_override": "mesh", "state": 1, "version": "4.0.13",
    "uptime": 86400, "num_sta": 24, "user-num_sta": 24, "guest-num_sta": 0, "satisfaction": 95,
    "radio_table_stats": [
        {"name": "wifi0", "radio": "ng", "channel": 6, "num_sta": 8, "satisfaction": 96, "cu_total": 30},
        {"name": "wifi1", "radio": "na", "channel": 36, "num_sta": 15, "satisfaction": 94, "cu_total": 12},
    ],
}


def test_a_console_with_radios_is_an_ap_and_its_wlan_clients_count() -> None:
    rows = [UX_ROW, {"type": "usw", "mac": "f0:9f:c2:00:00:01", "model": "US24P250", "state": 1},
            {"type": "udm", "mac": "f0:9f:c2:00:00:02", "model": "UDMPRO", "state": 1}, "junk"]
    aps, skipped = parse_devices({"meta": {"rc": "ok"}, "data": rows})
    assert [(ap.id, ap.type, ap.num_sta) for ap in aps] == [("80:22:22:22:22:22", "udm", 23)]
    assert sorted((s.reason, s.model) for s in skipped) == [("malformed", None), ("no-wlan", "UDMPRO"),
                                                            ("no-wlan", "US24P250")]


def monitor_for(sim: Any, tag: str) -> WlanMonitor:
    config = parse_wlan({"wlan": {"controller": {
        "url": sim.controller_url, "username": "schulwart", "password": sim.controller_password, "timeout": 5,
        "name": "UniFi"}}})
    return WlanMonitor(config, school=tag)


async def test_unifi_express_serving_wlan_is_watched(sim_factory, tag: str, caplog) -> None:  # type: ignore[no-untyped-def]
    sim = await sim_factory(school=tag, devices=46, receivers=0, printers=0, aps=2, cabinets=0, console_aps=1)
    monitor = monitor_for(sim, tag)
    caplog.set_level(logging.INFO, logger="agent.monitors.wlan.unifi")
    try:
        first = await monitor.collect(datetime.now(UTC))
        rows = {ap["name"]: ap for ap in first.snapshot["aps"]}
        assert rows["Express Aula"]["type"] == "udm" and rows["Express Aula"]["num_sta"] == 23
        assert first.snapshot["clients_total"] == 46  # 23 on the AP, 23 on the console
        assert first.snapshot["controller"]["skipped"] == {"no-wlan": 1}  # the switch
        await sim.set_fault("ap-down:2", True)
        second = await monitor.collect(datetime.now(UTC))
        console = sim.aps[1]
        assert {s.key for s in second.signals if s.bad} == {f"ap-down:{console.mac}"}
        await monitor.collect(datetime.now(UTC))
    finally:
        await monitor.stop()
    skip_lines = [r for r in caplog.records if "row skipped" in r.getMessage()]
    assert len(skip_lines) == 1 and "US24P250" in skip_lines[0].getMessage()  # once, not every round


@pytest.mark.parametrize("refusal", SESSION_REFUSALS)
@pytest.mark.parametrize("style", ["unifi-os", "classic"])
async def test_an_expired_session_is_logged_into_again_whatever_the_refusal(  # type: ignore[no-untyped-def]
    sim_factory, tag: str, refusal: str, style: str
) -> None:
    sim = await sim_factory(school=tag, devices=9, receivers=0, printers=0, aps=3, cabinets=0,
                            controller_style=style, session_refusal=refusal)
    client = UnifiController(sim.controller_url, "schulwart", sim.controller_password, timeout_s=5)
    try:
        assert len(await client.fetch_aps()) == 3
        await sim.set_fault("controller-sessions-expire", True)
        assert len(await client.fetch_aps()) == 3
        assert sim.unifi.logins == 2 and client.relogins == 1
    finally:
        await client.close()
