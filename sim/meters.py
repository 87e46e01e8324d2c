"""Simulated cabinet power meters on real HTTP: Shelly Gen2 RPC, Shelly Gen1 and Tasmota.

Power follows a charging curve on the simulator's clock: inside the cabinet's charging window
the cabinet draws ~12 W per slot, tapering off exponentially as batteries fill; outside it only
the cabinet electronics' few watts. Faults bend the curve or the replies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from agent.monitors.cabinets.window import ChargingWindow
from sim.faults import FaultBoard
from sim.simtime import SimClock

BASELINE_W = 3.0
PER_SLOT_W = 12.0
TAPER_S = 90 * 60.0


@dataclass
class CabinetModel:
    """One simulated cabinet and its meter's state."""

    index: int
    name: str
    room: str
    slots: int
    window: ChargingWindow
    kind: str
    mac: str
    energy_wh: float = 0.0
    _last: datetime | None = None

    def power(self, now: datetime, faults: FaultBoard) -> float:
        """Watts drawn at this simulated time."""
        i = self.index
        if faults.active("cabinet-switched-off", i) or faults.active("cabinet-no-power", i):
            return 0.0
        if faults.active("cabinet-still-charging", i):
            return self.slots * PER_SLOT_W
        current = self.window.current(now)
        if current is None:
            return BASELINE_W
        elapsed = (now - current[0]).total_seconds()
        return BASELINE_W + self.slots * PER_SLOT_W * math.exp(-elapsed / TAPER_S)

    def sample(self, now: datetime, faults: FaultBoard) -> float:
        """Power now, integrating energy since the last sample."""
        watts = self.power(now, faults)
        if self._last is not None and now > self._last:
            self.energy_wh += watts * (now - self._last).total_seconds() / 3600.0
        self._last = now
        return watts


class MeterServer:
    """An aiohttp app that answers like the cabinet's meter kind."""

    def __init__(self, cabinet: CabinetModel, clock: SimClock, faults: FaultBoard) -> None:
        self.cabinet = cabinet
        self._clock = clock
        self._faults = faults
        self.app = web.Application()
        self.app.router.add_get("/rpc/Switch.GetStatus", self._gen2_status)
        self.app.router.add_get("/rpc/Shelly.GetDeviceInfo", self._gen2_info)
        self.app.router.add_get("/shelly", self._shelly)
        self.app.router.add_get("/status", self._gen1_status)
        self.app.router.add_get("/cm", self._tasmota)
        self.app.middlewares.append(self._fault_middleware)

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        i = self.cabinet.index
        if self._faults.active("meter-down", i):
            raise web.HTTPServiceUnavailable(text="meter down")
        if self._faults.active("meter-nonsense", i):
            return web.Response(text='{"apower": "NaN", "meters": [{"power": -50}], "StatusSNS": "x"}',
                                content_type="application/json")
        response: web.StreamResponse = await handler(request)
        return response

    def _reading(self) -> tuple[float, bool, float, list[str]]:
        i = self.cabinet.index
        watts = self.cabinet.sample(self._clock.now(), self._faults)
        hot = self._faults.active("cabinet-overtemp", i)
        temperature = 85.0 if hot else 38.0 + watts / 40.0
        return watts, not self._faults.active("cabinet-switched-off", i), temperature, ["overtemp"] if hot else []

    def _wrong_kind(self, kind: str) -> None:
        if self.cabinet.kind != kind:
            raise web.HTTPNotFound()

    async def _gen2_status(self, request: web.Request) -> web.Response:
        self._wrong_kind("shelly-gen2")
        if request.query.get("id", "0") != "0":
            return web.json_response({"code": -105, "message": "Argument 'id', value 1 not found!"}, status=404)
        watts, on, temperature, errors = self._reading()
        ts = int(self._clock.now().timestamp())
        body: dict[str, Any] = {
            "id": 0, "source": "init", "output": on, "apower": round(watts, 1), "voltage": 230.4,
            "current": round(watts / 230.4, 3), "freq": 50.0, "pf": 0.97 if watts > 0 else 0,
            "aenergy": {"total": round(self.cabinet.energy_wh, 3),
                        "by_minute": [round(watts * 1000 / 60, 3)] * 3, "minute_ts": ts},
            "ret_aenergy": {"total": 0.0, "by_minute": [0, 0, 0], "minute_ts": ts},
            "temperature": {"tC": round(temperature, 1), "tF": round(temperature * 9 / 5 + 32, 1)},
        }
        if errors:
            body["errors"] = errors
        return web.json_response(body)

    async def _gen2_info(self, request: web.Request) -> web.Response:
        self._wrong_kind("shelly-gen2")
        mac = self.cabinet.mac.replace(":", "").upper()
        return web.json_response({
            "name": self.cabinet.name, "id": f"shellyplusplugs-{mac.lower()}", "mac": mac, "slot": 0,
            "model": "SNPL-00112EU", "gen": 2, "fw_id": "20240430-105751/1.3.1-gd8534ee", "ver": "1.3.1",
            "app": "PlusPlugS", "auth_en": False, "auth_domain": None,
        })

    async def _shelly(self, request: web.Request) -> web.Response:
        mac = self.cabinet.mac.replace(":", "").upper()
        if self.cabinet.kind == "shelly-gen1":
            return web.json_response({"type": "SHPLG-S", "mac": mac, "auth": False,
                                      "fw": "20230913-114008/v1.14.0-gcb84623", "longid": 1,
                                      "num_outputs": 1, "num_meters": 1})
        return await self._gen2_info(request)

    async def _gen1_status(self, request: web.Request) -> web.Response:
        self._wrong_kind("shelly-gen1")
        watts, on, temperature, errors = self._reading()
        ts = int(self._clock.now().timestamp())
        return web.json_response({
            "wifi_sta": {"connected": True, "ssid": "Schule-IoT", "ip": request.host.split(":")[0], "rssi": -53},
            "cloud": {"enabled": False, "connected": False}, "mqtt": {"connected": False},
            "time": self._clock.now().strftime("%H:%M"), "serial": 1, "has_update": False,
            "mac": self.cabinet.mac.replace(":", "").upper(),
            "relays": [{"ison": on, "has_timer": False, "overpower": False}],
            "meters": [{"power": round(watts, 2), "is_valid": True, "timestamp": ts,
                        "counters": [round(watts, 3)] * 3, "total": int(self.cabinet.energy_wh * 60)}],
            "temperature": round(temperature, 2), "overtemperature": bool(errors),
            "update": {"status": "idle", "has_update": False, "new_version": "", "old_version": ""},
            "ram_total": 50832, "ram_free": 40404, "fs_size": 233681, "fs_free": 171684, "uptime": 18961,
        })

    async def _tasmota(self, request: web.Request) -> web.Response:
        self._wrong_kind("tasmota")
        command = request.query.get("cmnd", "").strip().lower()
        watts, on, _temperature, _errors = self._reading()
        if command == "power":
            return web.json_response({"POWER": "ON" if on else "OFF"})
        if command != "status 8":
            return web.json_response({"Command": "Unknown"})
        now = self._clock.now()
        return web.json_response({"StatusSNS": {"Time": now.strftime("%Y-%m-%dT%H:%M:%S"), "ENERGY": {
            "TotalStartTime": "2024-09-01T08:00:00", "Total": round(self.cabinet.energy_wh / 1000, 3),
            "Yesterday": 1.2, "Today": round(self.cabinet.energy_wh / 1000, 3), "Power": round(watts),
            "ApparentPower": round(watts * 1.02), "ReactivePower": round(watts * 0.1),
            "Factor": 0.98 if watts else 0.0, "Voltage": 230 if on else 0, "Current": round(watts / 230, 3),
        }}})
