"""Meter parsers on the real reply shapes and on nonsense; adapters over real HTTP.

The reply shapes follow the Shelly Gen1/Gen2 and Tasmota API docs.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web

from agent.monitors.cabinets.meters import (
    MAX_REPLY_BYTES,
    Meter,
    MeterError,
    MeterSpec,
    parse_generic,
    parse_shelly_gen1,
    parse_shelly_gen2,
    parse_tasmota,
)
from base.agentconfig.window import parse_window
from sim.faults import FaultBoard
from sim.meters import CabinetModel, MeterServer
from sim.simtime import SimClock

GEN2_DOC = {  # Switch.GetStatus example from the Shelly docs
    "id": 0, "source": "WS_in", "output": False, "apower": 0, "voltage": 225.9, "current": 0, "freq": 50,
    "aenergy": {"total": 11.679, "by_minute": [0, 0, 0], "minute_ts": 1654511972},
    "ret_aenergy": {"total": 5.817, "by_minute": [0, 0, 0], "minute_ts": 1654511615},
    "temperature": {"tC": 53.3, "tF": 127.9},
}
GEN1_PLUG_S = {  # Shelly Plug S /status capture
    "wifi_sta": {"connected": True, "ssid": "x", "ip": "192.168.1.2", "rssi": -53},
    "relays": [{"ison": True, "has_timer": False, "overpower": False}],
    "meters": [{"power": 2.21, "is_valid": True, "timestamp": 1680779310, "counters": [2.115, 2.114, 2.142],
                "total": 439237}],
    "temperature": 34.48, "overtemperature": False, "uptime": 18961214,
}
TASMOTA_STATUS8 = {"StatusSNS": {"Time": "2018-11-15T08:54:18", "ENERGY": {
    "TotalStartTime": "2018-11-14T18:39:40", "Total": 6.404, "Yesterday": 5.340, "Today": 1.064, "Power": 2629,
    "ApparentPower": 2645, "ReactivePower": 288, "Factor": 0.99, "Voltage": 226, "Current": 11.677}}}


def test_shelly_gen2_doc_example() -> None:
    r = parse_shelly_gen2(GEN2_DOC)
    assert (r.power_w, r.energy_wh, r.switch_on, r.temperature_c, r.voltage_v) == (0.0, 11.679, False, 53.3, 225.9)


def test_shelly_gen2_plug_without_optional_fields_and_with_errors() -> None:
    r = parse_shelly_gen2({"id": 0, "output": True, "apower": 84.4, "errors": ["overtemp"]})
    assert r.power_w == 84.4 and r.energy_wh is None and r.temperature_c is None and r.errors == ("overtemp",)


def test_shelly_gen1_total_is_watt_minutes() -> None:
    r = parse_shelly_gen1(GEN1_PLUG_S)
    assert r.power_w == 2.21 and r.switch_on is True and r.temperature_c == 34.48
    assert r.energy_wh == pytest.approx(439237 / 60)


def test_shelly_gen1_overtemperature_flag() -> None:
    r = parse_shelly_gen1({**GEN1_PLUG_S, "overtemperature": True})
    assert "overtemp" in r.errors


def test_tasmota_total_is_kwh_and_power_state_from_second_reply() -> None:
    r = parse_tasmota(TASMOTA_STATUS8, {"POWER": "OFF"})
    assert r.power_w == 2629 and r.energy_wh == pytest.approx(6404.0) and r.voltage_v == 226
    assert r.switch_on is False
    assert parse_tasmota(TASMOTA_STATUS8).switch_on is None


def test_generic_field_paths_and_units() -> None:
    spec = MeterSpec(kind="http-json", url="http://x", power_path="data.0.active_power_w",
                     energy_path="data.0.total_kwh", energy_unit="kwh", switch_path="state.power_on",
                     temperature_path="t")
    r = parse_generic({"data": [{"active_power_w": 120.5, "total_kwh": 2.5}], "state": {"power_on": "ON"}, "t": 30},
                      spec)
    assert (r.power_w, r.energy_wh, r.switch_on, r.temperature_c) == (120.5, 2500.0, True, 30.0)


NONSENSE: list[tuple[str, Any, str]] = [
    ("gen2", {"output": True}, "missing-field"),
    ("gen2", {"apower": "12"}, "bad-value"),
    ("gen2", {"apower": math.nan}, "bad-value"),
    ("gen2", {"apower": math.inf}, "bad-value"),
    ("gen2", {"apower": True}, "bad-value"),
    ("gen2", {"apower": -50}, "negative-power"),
    ("gen2", {"apower": 1e9}, "implausible"),
    ("gen2", [1, 2, 3], "bad-shape"),
    ("gen2", "hello", "bad-shape"),
    ("gen1", {"meters": []}, "missing-field"),
    ("gen1", {"meters": [{"power": None}]}, "missing-field"),
    ("gen1", {"meters": ["x"]}, "bad-shape"),
    ("gen1", {"meters": [{"power": 5, "is_valid": False}]}, "bad-value"),
    ("tasmota", {"StatusSNS": "x"}, "bad-shape"),
    ("tasmota", {"StatusSNS": {"ENERGY": {"Power": "2629"}}}, "bad-value"),
    ("tasmota", {}, "bad-shape"),
]


@pytest.mark.parametrize(("kind", "data", "reason"), NONSENSE)
def test_nonsense_is_a_clear_error(kind: str, data: Any, reason: str) -> None:
    parser = {"gen2": parse_shelly_gen2, "gen1": parse_shelly_gen1, "tasmota": parse_tasmota}[kind]
    with pytest.raises(MeterError) as info:
        parser(data)
    assert info.value.reason == reason


def test_small_negative_noise_reads_as_zero() -> None:
    assert parse_shelly_gen2({"apower": -0.4}).power_w == 0.0


# -- over real HTTP ----------------------------------------------------------------------------------


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def test_hostile_meter_replies_over_http() -> None:
    huge = b'{"apower": ' + b"1" * (20 * 1024 * 1024) + b"}"

    async def big(request: web.Request) -> web.StreamResponse:
        return web.Response(body=huge, content_type="application/json")

    async def nan(request: web.Request) -> web.Response:
        return web.Response(text='{"apower": NaN}', content_type="application/json")

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(body=b"\xff\xfe<html>", content_type="text/html")

    async def error(request: web.Request) -> web.Response:
        return web.Response(status=500)

    routes = {"big": big, "nan": nan, "garbage": garbage, "error": error}
    app = web.Application()
    for name, handler in routes.items():
        app.router.add_get(f"/{name}/rpc/Shelly.GetStatus", handler)
    runner, base = await _serve(app)
    try:
        async with aiohttp.ClientSession() as session:
            reasons = {}
            for name in routes:
                with pytest.raises(MeterError) as info:
                    await Meter(MeterSpec("shelly-gen2", f"{base}/{name}", timeout=5)).read(session)
                reasons[name] = info.value.reason
            with pytest.raises(MeterError) as info:
                await Meter(MeterSpec("shelly-gen2", "http://127.0.0.1:1", timeout=2)).read(session)
            reasons["closed"] = info.value.reason
    finally:
        await runner.cleanup()
    assert reasons == {"big": "too-large", "nan": "not-json", "garbage": "not-json", "error": "http-500",
                       "closed": "unreachable"}
    assert MAX_REPLY_BYTES < len(huge)


@pytest.mark.parametrize("kind", ["shelly-gen2", "shelly-gen1", "tasmota"])
async def test_adapters_read_the_simulated_meters(kind: str) -> None:
    tz = ZoneInfo("Europe/Berlin")
    clock = SimClock(datetime(2025, 3, 3, 15, 30, tzinfo=tz), speed=1.0)
    faults = FaultBoard()
    cabinet = CabinetModel(1, "Ladeschrank 1", "Raum 12", 24, parse_window("15:00-07:00"), kind, "c4:5b:be:01:02:03")
    runner, base = await _serve(MeterServer(cabinet, clock, faults).app)
    try:
        async with aiohttp.ClientSession() as session:
            meter = Meter(MeterSpec(kind, base, timeout=5))
            charging = await meter.read(session)
            faults.set("cabinet-switched-off:1", True)
            off = await meter.read(session)
            faults.set("cabinet-switched-off:1", False)
            faults.set("meter-nonsense:1", True)
            with pytest.raises(MeterError):
                await meter.read(session)
    finally:
        await runner.cleanup()
    # 30 minutes into the window: baseline + 24 slots x 12 W x exp(-30/90)
    assert charging.power_w == pytest.approx(3 + 24 * 12 * math.exp(-1 / 3), abs=1.0)
    assert charging.switch_on is True and off.switch_on is False and off.power_w == 0
