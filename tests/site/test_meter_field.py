"""Meters as they answer in the field (issue #12): Shelly Digest logins, multi-channel Tasmota,
credentials in Tasmota URLs, Shelly metering-only models.

Every sample is served over real HTTP on loopback, byte for byte as the issue quotes it; the
simulator's meter models are read over HTTP as well.
"""

from __future__ import annotations

import asyncio
import math
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web

from agent.monitors.cabinets.meters import Meter, MeterError, MeterReading
from agent.monitors.cabinets.rules import CabinetState, evaluate
from base.agentconfig.cabinets import CabinetConfig, MeterSpec
from base.agentconfig.window import parse_window
from sim.faults import FaultBoard
from sim.meters import METER_MODELS, CabinetModel, MeterServer, digest_valid
from sim.simtime import SimClock

BERLIN = ZoneInfo("Europe/Berlin")
REALM = "shellyplusplugs-a1b2c3d4e5f6"
NONCE = "1694692867"
CHALLENGE = f'Digest qop="auth", realm="{REALM}", nonce="{NONCE}", algorithm=SHA-256'
SWITCH_0 = {
    "id": 0, "source": "init", "output": True, "apower": 412.6, "voltage": 231.2, "current": 1.803,
    "aenergy": {"total": 15234.56, "by_minute": [6876.7, 6876.7, 6876.7], "minute_ts": 1694692860},
    "temperature": {"tC": 41.3, "tF": 106.3},
}

Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serve an aiohttp app on a free loopback port; cleaned up at the end."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def read(spec: MeterSpec) -> MeterReading:
    async with aiohttp.ClientSession() as session:
        return await Meter(spec).read(session)


async def refused(spec: MeterSpec) -> MeterError:
    with pytest.raises(MeterError) as info:
        await read(spec)
    return info.value


# -- 1. Shelly Gen2+ with a password: HTTP Digest, SHA-256 ------------------------------------------


def shelly_with_password(password: str, seen: list[str]) -> web.Application:
    """The issue's sample device: 401 with the Digest challenge until the login is right."""

    async def rpc(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        seen.append(header.split(" ", 1)[0])
        if not digest_valid(header, request.method, request.raw_path, REALM, NONCE, password):
            return web.Response(status=401, headers={"WWW-Authenticate": CHALLENGE})
        if request.path == "/rpc/Switch.GetStatus":
            return web.json_response(SWITCH_0)
        return web.json_response({"switch:0": SWITCH_0, "sys": {"mac": "A1B2C3D4E5F6"}})

    app = web.Application()
    app.router.add_get("/rpc/Shelly.GetStatus", rpc)
    app.router.add_get("/rpc/Switch.GetStatus", rpc)
    return app


async def test_shelly_gen2_with_password_logs_in_with_digest_sha256(serve: Serve) -> None:
    seen: list[str] = []
    base = await serve(shelly_with_password("Lade&Schrank#24", seen))
    reading = await read(MeterSpec("shelly-gen2", base, password="Lade&Schrank#24", timeout=5))
    assert reading.power_w == 412.6 and reading.energy_wh == 15234.56 and reading.switch_on is True
    assert reading.temperature_c == 41.3
    assert "Basic" not in seen  # the password never travels in clear


async def test_shelly_gen2_wrong_or_missing_password_is_a_refused_login(serve: Serve) -> None:
    base = await serve(shelly_with_password("right", []))
    wrong = await refused(MeterSpec("shelly-gen2", base, password="wrong", timeout=5))
    assert wrong.reason == "auth-refused" and wrong.answered and "wrong" not in wrong.message
    missing = await refused(MeterSpec("shelly-gen2", base, timeout=5))
    assert missing.reason == "auth-refused" and "set meter.password" in missing.message


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_the_sample_device_speaks_standard_digest(serve: Serve) -> None:
    """``curl --digest`` reads the sample server too: its check is RFC 7616, not ours alone."""
    base = await serve(shelly_with_password("s3cret", []))
    proc = await asyncio.create_subprocess_exec(
        "curl", "-s", "--max-time", "5", "--digest", "-u", "admin:s3cret", f"{base}/rpc/Switch.GetStatus",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    assert b'"apower": 412.6' in out


# -- 2. Multi-channel Tasmota -------------------------------------------------------------------------


def tasmota(energy: dict[str, Any], relays: dict[str, str], commands: list[str]) -> web.Application:
    async def cm(request: web.Request) -> web.Response:
        command = request.query.get("cmnd", "")
        commands.append(command)
        if command.lower() == "status 8":
            return web.json_response({"StatusSNS": {"Time": "2025-03-03T20:00:00", "ENERGY": energy}})
        relay = command.upper()
        if relay in relays:
            return web.json_response({relay: relays[relay]})
        return web.json_response({"Command": "Unknown"})

    app = web.Application()
    app.router.add_get("/cm", cm)
    return app


TWO_CHANNELS = {
    "TotalStartTime": "2024-09-01T08:00:00", "Total": [2.813, 0.254], "Yesterday": [0.4, 0.1],
    "Today": [0.2, 0.05], "Power": [52, 5], "ApparentPower": [55, 6], "ReactivePower": [5, 1],
    "Factor": [0.95, 0.83], "Voltage": [231, 231], "Current": [0.226, 0.026],
}


async def test_tasmota_reads_the_configured_channel_of_every_array(serve: Serve) -> None:
    commands: list[str] = []
    base = await serve(tasmota(TWO_CHANNELS, {"POWER1": "ON", "POWER2": "OFF"}, commands))
    one = await read(MeterSpec("tasmota", base, channel=1, timeout=5))
    assert (one.power_w, one.energy_wh, one.switch_on, one.voltage_v) == (5.0, pytest.approx(254.0), False, 231)
    zero = await read(MeterSpec("tasmota", base, channel=0, timeout=5))
    assert (zero.power_w, zero.energy_wh, zero.switch_on) == (52.0, pytest.approx(2813.0), True)
    assert "Power2" in commands and "Power1" in commands
    beyond = await refused(MeterSpec("tasmota", base, channel=2, timeout=5))
    assert beyond.reason == "missing-field" and beyond.answered


async def test_tasmota_channel_without_power_in_the_window_is_no_power(serve: Serve) -> None:
    base = await serve(tasmota({**TWO_CHANNELS, "Power": [52, 0]}, {"POWER1": "ON", "POWER2": "ON"}, []))
    reading = await read(MeterSpec("tasmota", base, channel=1, timeout=5))
    cab = CabinetConfig(id="2", name="Ladeschrank 2", meter=MeterSpec("tasmota", base, channel=1),
                        window=parse_window("15:00-07:00"))
    night = datetime(2025, 3, 3, 22, 0, tzinfo=BERLIN).astimezone(UTC)
    bad = {s.key for s in evaluate(cab, reading, None, night, BERLIN, CabinetState()) if s.bad}
    assert bad == {"cabinet-no-power:2"}


async def test_tasmota_single_total_beside_power_arrays_is_no_channel_energy(serve: Serve) -> None:
    base = await serve(tasmota({**TWO_CHANNELS, "Total": 3.067}, {"POWER2": "ON"}, []))
    reading = await read(MeterSpec("tasmota", base, channel=1, timeout=5))
    assert reading.power_w == 5 and reading.energy_wh is None  # 3.067 kWh is both channels together


# -- 3. Credentials in Tasmota URLs; a refused login answered with 200 ---------------------------------


def tasmota_with_password(password: str, received: list[str]) -> web.Application:
    async def cm(request: web.Request) -> web.Response:
        received.append(request.query.get("password", ""))
        if request.query.get("user") != "admin" or request.query.get("password") != password:
            return web.json_response({"WARNING": "Need user=<username>&password=<password>"})
        if request.query.get("cmnd", "").lower() == "status 8":
            return web.json_response({"StatusSNS": {"ENERGY": {"Total": 6.404, "Power": 2629, "Voltage": 226}}})
        return web.json_response({"POWER": "ON"})

    app = web.Application()
    app.router.add_get("/cm", cm)
    return app


@pytest.mark.parametrize("password", ["Lade&Schrank#24", "50%+plus", "ä ö=;/?&user=x", "%41 +"])
async def test_tasmota_password_reaches_the_device_unchanged(serve: Serve, password: str) -> None:
    received: list[str] = []
    base = await serve(tasmota_with_password(password, received))
    reading = await read(MeterSpec("tasmota", base, password=password, timeout=5))
    assert reading.power_w == 2629 and reading.switch_on is True
    assert received == [password, password]


async def test_tasmota_refusing_with_200_is_an_authentication_failure(serve: Serve) -> None:
    base = await serve(tasmota_with_password("right", []))
    for spec in (MeterSpec("tasmota", base, password="wrong", timeout=5), MeterSpec("tasmota", base, timeout=5)):
        error = await refused(spec)
        assert error.reason == "auth-refused" and error.answered and "wrong" not in error.message


# -- 4. Shelly models: every simulated model over HTTP, with and without a password --------------------


def sim_meter(model: str, password: str | None = None) -> tuple[MeterServer, CabinetModel, FaultBoard]:
    clock = SimClock(datetime(2025, 3, 3, 15, 30, tzinfo=BERLIN), speed=0.0)
    faults = FaultBoard()
    cabinet = CabinetModel(1, "Ladeschrank 1", "Raum 12", 24, parse_window("15:00-07:00"), "shelly-gen2",
                           "c4:5b:be:01:02:03", model=model, password=password)
    return MeterServer(cabinet, clock, faults), cabinet, faults


CHARGING_W = 3 + 24 * 12 * math.exp(-1 / 3)  # 30 minutes into the window
READABLE = [name for name, m in METER_MODELS.items() if m.shape != "nometer"]


@pytest.mark.parametrize("password", [None, "Lade&Schrank#24"])
@pytest.mark.parametrize("model", READABLE)
async def test_every_simulated_meter_model_is_read(serve: Serve, model: str, password: str | None) -> None:
    server, _cabinet, faults = sim_meter(model, password)
    base = await serve(server.app)
    m = METER_MODELS[model]
    spec = MeterSpec(m.kind, base, channel=m.channel, password=password, timeout=5)  # type: ignore[arg-type]
    reading = await read(spec)
    assert reading.power_w == pytest.approx(CHARGING_W, abs=1.0)
    if m.shape not in ("pm1", "em"):  # these have no relay
        assert reading.switch_on is True
        faults.set("cabinet-switched-off:1", True)
        assert (await read(spec)).switch_on is False
    if m.shape in ("switch", "em1", "meters"):  # the device's own temperature
        assert reading.temperature_c is not None
    if password is not None:
        error = await refused(MeterSpec(m.kind, base, channel=m.channel, timeout=5))  # type: ignore[arg-type]
        assert error.reason == "auth-refused" and error.answered


async def test_pro_em_50_reads_em1_and_keeps_relay_and_temperature(serve: Serve) -> None:
    server, _cabinet, _faults = sim_meter("shelly-pro-em-50")
    base = await serve(server.app)
    async with aiohttp.ClientSession() as session, session.get(f"{base}/rpc/Shelly.GetStatus") as resp:
        status = await resp.json()
    assert "apower" not in status["switch:0"]  # the sample's shape: the relay measures nothing
    second = await read(MeterSpec("shelly-gen2", base, channel=1, timeout=5))
    assert second.power_w == 52.0 and second.energy_wh == 1234.5 and second.switch_on is None


async def test_pro_3em_has_no_switch_and_is_read_from_em(serve: Serve) -> None:
    server, _cabinet, _faults = sim_meter("shelly-pro-3em")
    base = await serve(server.app)
    async with aiohttp.ClientSession() as session, session.get(f"{base}/rpc/Switch.GetStatus?id=0") as resp:
        assert resp.status == 404  # what the landed agent asked, and called "unreachable"
    reading = await read(MeterSpec("shelly-gen2", base, timeout=5))
    assert reading.power_w == pytest.approx(CHARGING_W, abs=1.0) and reading.switch_on is None


async def test_a_shelly_without_a_meter_is_named_with_the_config_that_works(serve: Serve) -> None:
    server, _cabinet, _faults = sim_meter("shelly-plus-1")
    base = await serve(server.app)
    error = await refused(MeterSpec("shelly-gen2", base, timeout=5))
    assert error.reason == "unsupported-model" and error.answered
    assert "Shelly Plus1 (SNSW-001X16EU)" in error.message and "pm1:N" in error.message
    assert "\n" not in error.message
    cab = CabinetConfig(id="1", name="Ladeschrank 1", meter=MeterSpec("shelly-gen2", base),
                        window=parse_window("15:00-07:00"))
    night = datetime(2025, 3, 3, 22, 0, tzinfo=BERLIN)
    signals = {s.key: s for s in evaluate(cab, None, error, night, BERLIN, CabinetState())}
    assert not signals["cabinet-meter-unreachable:1"].bad
    assert signals["cabinet-meter-unreadable:1"].bad
    assert "Shelly Plus1" in signals["cabinet-meter-unreadable:1"].title
    assert "unreachable" not in signals["cabinet-meter-unreadable:1"].title


@pytest.mark.parametrize(("model", "configured", "working"), [
    ("shelly-plus-plug-s", "shelly-gen1", "shelly-gen2"),
    ("shelly-plug-s", "shelly-gen2", "shelly-gen1"),
])
async def test_the_wrong_shelly_generation_names_the_kind_that_works(
    serve: Serve, model: str, configured: str, working: str
) -> None:
    server, _cabinet, _faults = sim_meter(model)
    base = await serve(server.app)
    error = await refused(MeterSpec(configured, base, timeout=5))  # type: ignore[arg-type]
    assert error.reason == "wrong-kind" and f'meter.kind = "{working}"' in error.message


async def test_a_meter_that_does_not_answer_is_still_unreachable() -> None:
    error = await refused(MeterSpec("shelly-gen2", "http://127.0.0.1:1", password="x", timeout=2))
    assert error.reason == "unreachable" and not error.answered


def test_a_reply_without_components_is_not_a_shelly_status() -> None:
    from agent.monitors.cabinets.meters import parse_shelly_gen2_status

    with pytest.raises(MeterError) as info:
        parse_shelly_gen2_status({"apower": "NaN", "meters": [{"power": -50}]})
    assert info.value.reason == "bad-shape"
