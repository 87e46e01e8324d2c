"""Simulated cabinet power meters on real HTTP: Shelly Gen2+ RPC, Shelly Gen1 and Tasmota, by model.

Power follows a charging curve on the simulator's clock: inside the cabinet's charging window
the cabinet draws ~12 W per slot, tapering off exponentially as batteries fill; outside it only
the cabinet electronics' few watts. Faults bend the curve or the replies.

Each model (``METER_MODELS``) answers in its own shape: a Shelly plug's ``switch:0``, a PM Mini's
``pm1:0``, a Pro EM-50's ``em1:N`` beside a ``switch:0`` without a meter, a Pro 3EM's ``em:0``,
a Plus 1 without any meter, Gen1 ``meters``/``emeters``, and one- or two-channel Tasmota. With a
password the meter wants the login its firmware wants: Digest SHA-256 on Gen2+ (RFC 7616, as the
Shelly Gen2 docs describe it), Basic on Gen1, ``user``/``password`` query arguments on Tasmota
(refused with HTTP 200 and a ``WARNING``, as Tasmota does).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from base.agentconfig.window import ChargingWindow
from sim.faults import FaultBoard
from sim.simtime import SimClock

BASELINE_W = 3.0
PER_SLOT_W = 12.0
TAPER_S = 90 * 60.0
OTHER_CHANNEL_W = 52.0  # what the other channel of a two-channel meter draws (not the cabinet)
SHELLY_USER = "admin"


@dataclass(frozen=True)
class MeterModel:
    """A meter model the sim can play: the agent's meter kind and channel, and the reply shape."""

    kind: str
    channel: int
    shape: str
    app: str = ""
    model: str = ""
    description: str = ""


METER_MODELS: dict[str, MeterModel] = {
    "shelly-plus-plug-s": MeterModel("shelly-gen2", 0, "switch", "PlusPlugS", "SNPL-00112EU",
                                     "Shelly Plus Plug S: switch:0 with apower"),
    "shelly-pm-mini": MeterModel("shelly-gen2", 0, "pm1", "MiniPMG3", "S3PM-001PCEU16",
                                 "Shelly PM Mini Gen3: pm1:0, no relay"),
    "shelly-pro-em-50": MeterModel("shelly-gen2", 0, "em1", "ProEM", "SPEM-002CEBEU50",
                                   "Shelly Pro EM-50: em1:0/em1:1, switch:0 (contactor) without apower"),
    "shelly-pro-3em": MeterModel("shelly-gen2", 0, "em", "Pro3EM", "SPEM-003CEBEU",
                                 "Shelly Pro 3EM: em:0 (total_act_power), no switch"),
    "shelly-plus-1": MeterModel("shelly-gen2", 0, "nometer", "Plus1", "SNSW-001X16EU",
                                "Shelly Plus 1: a relay without a meter (the agent names it unsupported)"),
    "shelly-plug-s": MeterModel("shelly-gen1", 0, "meters", model="SHPLG-S",
                                description="Shelly Plug S (Gen1): meters[0], total in watt-minutes"),
    "shelly-em": MeterModel("shelly-gen1", 0, "emeters", model="SHEM",
                            description="Shelly EM (Gen1): emeters[0], total in Wh"),
    "tasmota": MeterModel("tasmota", 0, "tasmota", description="Tasmota plug: one ENERGY channel"),
    "tasmota-2ch": MeterModel("tasmota", 1, "tasmota-2ch",
                              description="Tasmota two-channel meter: ENERGY arrays, the cabinet on channel 1"),
}
DEFAULT_MODELS = {"shelly-gen2": "shelly-plus-plug-s", "shelly-gen1": "shelly-plug-s", "tasmota": "tasmota"}

_DIGEST_PAIR = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def digest_challenge(realm: str, nonce: str) -> str:
    """The ``WWW-Authenticate`` value of a Shelly Gen2+ device (Shelly docs, RFC 7616)."""
    return f'Digest qop="auth", realm="{realm}", nonce="{nonce}", algorithm=SHA-256'


def digest_valid(authorization: str, method: str, uri: str, realm: str, nonce: str, password: str) -> bool:
    """Check an ``Authorization: Digest …`` header as RFC 7616 §3.4.1 computes it (SHA-256, qop=auth).

    ``uri`` is the request-target as sent (path and raw query).
    """
    scheme, _, rest = authorization.partition(" ")
    if scheme.lower() != "digest":
        return False
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _DIGEST_PAIR.finditer(rest)}
    if params.get("algorithm", "").upper() != "SHA-256" or params.get("qop") != "auth":
        return False
    if (params.get("username"), params.get("realm"), params.get("nonce"), params.get("uri")) != (
        SHELLY_USER, realm, nonce, uri
    ):
        return False

    def h(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    ha1, ha2 = h(f"{SHELLY_USER}:{realm}:{password}"), h(f"{method}:{uri}")
    expected = h(f"{ha1}:{nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}:auth:{ha2}")
    return hmac.compare_digest(expected, params.get("response", ""))


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
    model: str = ""  # a METER_MODELS name; default: the usual model of ``kind``
    password: str | None = None  # the device's login (user admin); None: open

    def __post_init__(self) -> None:
        self.model = self.model or DEFAULT_MODELS[self.kind]
        self.kind = METER_MODELS[self.model].kind

    @property
    def meter_model(self) -> MeterModel:
        """The model this cabinet's meter plays."""
        return METER_MODELS[self.model]

    @property
    def device_id(self) -> str:
        """The Shelly device id (``<app>-<mac>``), also its Digest realm."""
        return f"shelly{self.meter_model.app.lower()}-{self.mac.replace(':', '').lower()}"

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
        self.app.router.add_get("/rpc/Shelly.GetStatus", self._gen2_full_status)
        self.app.router.add_get("/rpc/Shelly.GetDeviceInfo", self._gen2_info)
        self.app.router.add_get("/shelly", self._shelly)
        self.app.router.add_get("/status", self._gen1_status)
        self.app.router.add_get("/cm", self._tasmota)
        self.app.middlewares.append(self._fault_middleware)
        self.app.middlewares.append(self._auth_middleware)

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Shelly's login: Digest on Gen2+ RPC (not GetDeviceInfo), Basic on Gen1 (not /shelly)."""
        password = self.cabinet.password
        open_paths = ("/shelly", "/rpc/Shelly.GetDeviceInfo", "/cm")
        if password is None or request.path in open_paths:
            response: web.StreamResponse = await handler(request)
            return response
        header = request.headers.get("Authorization", "")
        if self.cabinet.kind == "shelly-gen1":
            expected = "Basic " + base64.b64encode(f"{SHELLY_USER}:{password}".encode()).decode()
            if not hmac.compare_digest(header, expected):
                raise web.HTTPUnauthorized(headers={"WWW-Authenticate": f'Basic realm="{self.cabinet.device_id}"'})
        else:
            realm, nonce = self.cabinet.device_id, str(int(self._clock.now().timestamp()))
            if not digest_valid(header, request.method, request.raw_path, realm, nonce, password):
                raise web.HTTPUnauthorized(headers={"WWW-Authenticate": digest_challenge(realm, nonce)})
        response = await handler(request)
        return response

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

    def _wrong_kind(self, kind: str, shape: str | None = None) -> None:
        if self.cabinet.kind != kind or (shape is not None and self.cabinet.meter_model.shape != shape):
            raise web.HTTPNotFound()

    def _switch(self, with_meter: bool) -> dict[str, Any]:
        watts, on, temperature, errors = self._reading()
        ts = int(self._clock.now().timestamp())
        body: dict[str, Any] = {
            "id": 0, "source": "init", "output": on,
            "temperature": {"tC": round(temperature, 1), "tF": round(temperature * 9 / 5 + 32, 1)},
        }
        if with_meter:
            body |= {
                "apower": round(watts, 1), "voltage": 230.4, "current": round(watts / 230.4, 3), "freq": 50.0,
                "pf": 0.97 if watts > 0 else 0,
                "aenergy": {"total": round(self.cabinet.energy_wh, 3),
                            "by_minute": [round(watts * 1000 / 60, 3)] * 3, "minute_ts": ts},
                "ret_aenergy": {"total": 0.0, "by_minute": [0, 0, 0], "minute_ts": ts},
            }
        if errors:
            body["errors"] = errors
        return body

    async def _gen2_status(self, request: web.Request) -> web.Response:
        self._wrong_kind("shelly-gen2", "switch")
        if request.query.get("id", "0") != "0":
            return web.json_response({"code": -105, "message": "Argument 'id', value 1 not found!"}, status=404)
        return web.json_response(self._switch(with_meter=True))

    async def _gen2_full_status(self, request: web.Request) -> web.Response:
        """``Shelly.GetStatus``: the components of the model (Shelly Gen2 docs, per component)."""
        self._wrong_kind("shelly-gen2")
        shape = self.cabinet.meter_model.shape
        mac = self.cabinet.mac.replace(":", "").upper()
        body: dict[str, Any] = {
            "sys": {"mac": mac, "restart_required": False, "uptime": 18961, "cfg_rev": 12},
            "wifi": {"sta_ip": request.host.split(":")[0], "status": "got ip", "rssi": -58},
            "cloud": {"connected": False}, "mqtt": {"connected": False},
        }
        if shape == "switch":
            body["switch:0"] = self._switch(with_meter=True)
        elif shape == "nometer":
            body["switch:0"] = self._switch(with_meter=False)
            body["input:0"] = {"id": 0, "state": False}
        else:
            watts, _on, _temperature, _errors = self._reading()
            energy = round(self.cabinet.energy_wh, 2)
            if shape == "pm1":
                body["pm1:0"] = {"id": 0, "voltage": 230.1, "current": round(watts / 230.1, 3),
                                 "apower": round(watts, 1), "freq": 50.0,
                                 "aenergy": {"total": energy, "by_minute": [0, 0, 0], "minute_ts": 0},
                                 "ret_aenergy": {"total": 0.0, "by_minute": [0, 0, 0], "minute_ts": 0}}
            elif shape == "em1":
                body["switch:0"] = self._switch(with_meter=False)
                for index, (power, total) in enumerate(((watts, energy), (OTHER_CHANNEL_W, 1234.5))):
                    body[f"em1:{index}"] = {"id": index, "current": round(power / 229.8, 3), "voltage": 229.8,
                                            "act_power": round(power, 1), "aprt_power": round(power * 1.05, 1),
                                            "pf": 0.95, "freq": 50.0, "calibration": "factory"}
                    body[f"em1data:{index}"] = {"id": index, "total_act_energy": total, "total_act_ret_energy": 0.0}
            elif shape == "em":
                third = round(watts / 3, 2)
                body["em:0"] = {"id": 0, "a_current": round(third / 231, 3), "a_voltage": 231.0,
                                "a_act_power": third, "b_current": round(third / 230, 3), "b_voltage": 230.0,
                                "b_act_power": third, "c_current": round(third / 229, 3), "c_voltage": 229.0,
                                "c_act_power": third, "n_current": None, "total_current": round(watts / 230, 3),
                                "total_act_power": round(watts, 2), "total_aprt_power": round(watts * 1.05, 2)}
                body["emdata:0"] = {"id": 0, "total_act": energy, "total_act_ret": 0.0}
                body["temperature:0"] = {"id": 0, "tC": 41.2, "tF": 106.2}
        return web.json_response(body)

    async def _gen2_info(self, request: web.Request) -> web.Response:
        self._wrong_kind("shelly-gen2")
        model = self.cabinet.meter_model
        mac = self.cabinet.mac.replace(":", "").upper()
        return web.json_response({
            "name": self.cabinet.name, "id": self.cabinet.device_id, "mac": mac, "slot": 0,
            "model": model.model, "gen": 2, "fw_id": "20240430-105751/1.3.1-gd8534ee", "ver": "1.3.1",
            "app": model.app, "auth_en": self.cabinet.password is not None,
            "auth_domain": self.cabinet.device_id if self.cabinet.password else None,
        })

    async def _shelly(self, request: web.Request) -> web.Response:
        mac = self.cabinet.mac.replace(":", "").upper()
        if self.cabinet.kind == "shelly-gen1":
            emeter = self.cabinet.meter_model.shape == "emeters"
            return web.json_response({"type": self.cabinet.meter_model.model, "mac": mac,
                                      "auth": self.cabinet.password is not None,
                                      "fw": "20230913-114008/v1.14.0-gcb84623", "longid": 1,
                                      "num_outputs": 1, "num_meters": 0 if emeter else 1,
                                      **({"num_emeters": 2} if emeter else {})})
        if self.cabinet.kind != "shelly-gen2":
            raise web.HTTPNotFound()
        return await self._gen2_info(request)

    async def _gen1_status(self, request: web.Request) -> web.Response:
        self._wrong_kind("shelly-gen1")
        watts, on, temperature, errors = self._reading()
        ts = int(self._clock.now().timestamp())
        if self.cabinet.meter_model.shape == "emeters":  # Shelly EM: two clamps, total in Wh
            meters: dict[str, Any] = {"emeters": [
                {"power": round(power, 2), "reactive": 0.0, "voltage": 230.2, "is_valid": True,
                 "total": round(total, 1), "total_returned": 0.0}
                for power, total in ((watts, self.cabinet.energy_wh), (OTHER_CHANNEL_W, 1234.5))
            ]}
        else:
            meters = {"meters": [{"power": round(watts, 2), "is_valid": True, "timestamp": ts,
                                  "counters": [round(watts, 3)] * 3, "total": int(self.cabinet.energy_wh * 60)}]}
        return web.json_response({
            "wifi_sta": {"connected": True, "ssid": "Schule-IoT", "ip": request.host.split(":")[0], "rssi": -53},
            "cloud": {"enabled": False, "connected": False}, "mqtt": {"connected": False},
            "time": self._clock.now().strftime("%H:%M"), "serial": 1, "has_update": False,
            "mac": self.cabinet.mac.replace(":", "").upper(),
            "relays": [{"ison": on, "has_timer": False, "overpower": False}],
            **meters,
            "temperature": round(temperature, 2), "overtemperature": bool(errors),
            "update": {"status": "idle", "has_update": False, "new_version": "", "old_version": ""},
            "ram_total": 50832, "ram_free": 40404, "fs_size": 233681, "fs_free": 171684, "uptime": 18961,
        })

    async def _tasmota(self, request: web.Request) -> web.Response:
        self._wrong_kind("tasmota")
        password = self.cabinet.password
        if password is not None and not (
            hmac.compare_digest(request.query.get("user", ""), SHELLY_USER)
            and hmac.compare_digest(request.query.get("password", ""), password)
        ):
            # Tasmota refuses a login with HTTP 200 (its web server's HandleHttpCommand).
            return web.json_response({"WARNING": "Need user=<username>&password=<password>"})
        command = request.query.get("cmnd", "").strip().lower()
        watts, on, _temperature, _errors = self._reading()
        two = self.cabinet.meter_model.shape == "tasmota-2ch"
        if command in ("power", "power1", "power2") and (two or command != "power2"):
            relay = 2 if command == "power2" else 1
            state = "ON" if (on if (relay == 2) == two else True) else "OFF"
            return web.json_response({f"POWER{relay}" if two else "POWER": state})
        if command != "status 8":
            return web.json_response({"Command": "Unknown"})
        now = self._clock.now()
        total = round(self.cabinet.energy_wh / 1000, 3)

        def per(other: Any, mine: Any) -> Any:
            return [other, mine] if two else mine

        return web.json_response({"StatusSNS": {"Time": now.strftime("%Y-%m-%dT%H:%M:%S"), "ENERGY": {
            "TotalStartTime": "2024-09-01T08:00:00", "Total": per(2.813, total),
            "Yesterday": per(0.4, 1.2), "Today": per(0.2, total), "Power": per(OTHER_CHANNEL_W, round(watts)),
            "ApparentPower": per(55, round(watts * 1.02)), "ReactivePower": per(5, round(watts * 0.1)),
            "Factor": per(0.95, 0.98 if watts else 0.0), "Voltage": per(230, 230 if on else 0),
            "Current": per(0.226, round(watts / 230, 3)),
        }}})
