"""The UniFi adapter against the sim's controller over real HTTP (both login styles); WLAN rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agent.monitors.wlan.monitor import WlanMonitor
from agent.monitors.wlan.probes import ProbeResult, ProbeWindow, tcp_probe
from agent.monitors.wlan.unifi import ControllerError, UnifiController, parse_devices
from base.agentconfig.wlan import parse_wlan
from base.errors import ConfigError


def controller(sim: Any, style: str = "auto", password: str | None = None) -> UnifiController:
    return UnifiController(sim.controller_url, "schulwart", password or sim.controller_password, style=style,
                           timeout_s=5)


@pytest.mark.parametrize("style", ["unifi-os", "classic"])
async def test_unifi_login_styles_and_ap_fields(sim_factory, tag: str, style: str) -> None:  # type: ignore[no-untyped-def]
    sim = await sim_factory(school=tag, devices=30, receivers=0, printers=0, aps=3, cabinets=0,
                            controller_style=style)
    client = controller(sim)
    try:
        aps = await client.fetch_aps()
        assert client.detected_style == style
        assert [ap.name for ap in aps] == [ap.name for ap in sim.aps]  # the switch row is not an AP
        first = aps[0]
        assert first.connected and first.state_name == "connected" and first.num_sta == 10
        assert first.satisfaction == 97 and first.uptime_s == 3971849 and first.model == "U6LR"
        assert [(r.band, r.channel) for r in first.radios] == [("2.4 GHz", 1), ("5 GHz", 44)]
        await sim.set_fault("ap-down:2", True)
        sim.unifi.expire_sessions()  # the controller restarted: the adapter logs in again
        aps = await client.fetch_aps()
        assert aps[1].state == 0 and aps[1].state_name == "disconnected" and not aps[1].connected
        assert sim.unifi.logins == 2
    finally:
        await client.close()


async def test_unifi_errors_are_clear(sim_factory, tag: str) -> None:  # type: ignore[no-untyped-def]
    sim = await sim_factory(school=tag, devices=0, receivers=0, printers=0, aps=1, cabinets=0)
    wrong = controller(sim, password="wrong")
    try:
        with pytest.raises(ControllerError) as info:
            await wrong.fetch_aps()
        assert info.value.reason == "login-refused"
    finally:
        await wrong.close()
    client = controller(sim, style="unifi-os")
    try:
        await sim.set_fault("controller-down", True)
        with pytest.raises(ControllerError) as info:
            await client.fetch_aps()
        assert info.value.reason == "http-503"
    finally:
        await client.close()
    gone = UnifiController("http://127.0.0.1:1", "u", "p", timeout_s=2)
    try:
        with pytest.raises(ControllerError) as info:
            await gone.fetch_aps()
        assert info.value.reason == "unreachable"
    finally:
        await gone.close()


def test_parse_devices_skips_malformed_rows() -> None:
    rows = [{"type": "uap", "mac": "AA:BB:CC:00:00:01", "state": 1, "name": "AP 1", "num_sta": "many"},
            {"type": "uap", "state": 1}, "junk", {"type": "usw", "mac": "x", "state": 1},
            {"type": "uap", "mac": "aa:bb:cc:00:00:02", "state": 6, "radio_table_stats": ["x", {"radio": "6e"}]}]
    aps, skipped = parse_devices({"meta": {"rc": "ok"}, "data": rows})
    assert [ap.id for ap in aps] == ["aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02"]
    assert sorted(s.reason for s in skipped) == ["malformed", "malformed", "no-wlan"]
    assert aps[0].num_sta is None and aps[1].state_name == "heartbeat missed"
    assert [r.band for r in aps[1].radios] == ["6 GHz"]
    with pytest.raises(ControllerError):
        parse_devices({"meta": {"rc": "error", "msg": "api.err.LoginRequired"}, "data": []})
    with pytest.raises(ControllerError):
        parse_devices([])


def test_probe_window_loss_and_latency() -> None:
    window = ProbeWindow(4)
    for result in (ProbeResult(True, 10), ProbeResult(False, None, "timeout"), ProbeResult(True, 30),
                   ProbeResult(True, 20), ProbeResult(False, None, "refused")):
        window.add(result)
    # The window keeps the last 4: timeout, 30 ms, 20 ms, refused.
    assert window.loss_pct() == 50.0 and window.consecutive_failures() == 1
    assert window.latency_ms() == (30, 30)
    assert window.summary()["last_error"] == "refused"


async def test_tcp_probe_refused_and_open(sim_factory, tag: str) -> None:  # type: ignore[no-untyped-def]
    sim = await sim_factory(school=tag, devices=0, receivers=0, printers=0, aps=0, cabinets=0)
    ok = await tcp_probe("127.0.0.1", sim.gateway.port, 2)
    assert ok.ok and ok.latency_ms is not None
    await sim.set_fault("gateway-down", True)
    refused = await tcp_probe("127.0.0.1", sim.gateway.port, 2)
    assert not refused.ok and refused.error


async def test_wlan_monitor_against_the_sim(sim_factory, tag: str) -> None:  # type: ignore[no-untyped-def]
    import tomllib

    sim = await sim_factory(school=tag, devices=30, receivers=0, printers=0, aps=3, cabinets=0)
    config = tomllib.loads(sim.agent_config())
    monitor = WlanMonitor(parse_wlan(config), school=tag)
    await monitor.start()
    try:
        now = datetime.now(UTC)
        first = await monitor.collect(now)
        assert not [s.key for s in first.signals if s.bad]
        assert first.snapshot["clients_total"] == 30 and first.snapshot["controller"]["ok"]
        ap2 = sim.aps[1]
        await sim.set_fault("ap-down:2", True)
        await sim.set_fault("dns-down", True)
        await sim.set_fault("ap-overloaded:3", True)
        second = await monitor.collect(now)
        bad = {s.key: s for s in second.signals if s.bad}
        assert set(bad) == {f"ap-down:{ap2.mac}", "dns-unreachable:DNS", f"ap-degraded:{sim.aps[2].mac}"}
        # Probe and controller speak about the same AP: one signal, not two.
        assert sum(1 for s in second.signals if s.key == f"ap-down:{ap2.mac}") == 1
        assert bad["dns-unreachable:DNS"].severity == "critical"
        await sim.set_fault("controller-down", True)
        third = await monitor.collect(now)
        assert {s.key for s in third.signals if s.bad} == {
            f"ap-down:{ap2.mac}", "dns-unreachable:DNS", "controller-unreachable:UniFi",
        }
        for fault in ("ap-down:2", "dns-down", "ap-overloaded:3", "controller-down"):
            await sim.set_fault(fault, False)
        fourth = await monitor.collect(now)
        # Up again; the probe windows still remember the loss, so only "degraded" may linger.
        assert {s.key for s in fourth.signals if s.bad} == {"dns-degraded:DNS", f"ap-degraded:{ap2.mac}"}
    finally:
        await monitor.stop()


def test_parse_wlan_defaults_and_errors() -> None:
    empty = parse_wlan({})
    assert empty.targets == () and empty.controller is None and empty.interval == 30
    cfg = parse_wlan({"wlan": {"dns": "10.0.0.1", "internet": "https://example.org/", "aps": [{"host": "10.0.0.2"}]}})
    kinds = {(t.kind, t.host, t.port, t.url) for t in cfg.targets}
    assert kinds == {("dns", "10.0.0.1", 53, None), ("internet", None, 443, "https://example.org/"),
                     ("ap", "10.0.0.2", 22, None)}
    for bad in ({"wlan": {"aps": [{"name": "x"}]}}, {"wlan": {"gateway": {"host": "x", "port": 0}}},
                {"wlan": {"probes": [{"url": "ftp://x"}]}}, {"wlan": {"interval": "often"}}):
        with pytest.raises(ConfigError):
            parse_wlan(bad)
