"""Power-meter adapters for charging cabinets: Shelly Gen2+ RPC, Shelly Gen1, Tasmota, generic HTTP-JSON.

Each adapter fetches one reply (size-capped) and a pure parser turns it into a ``MeterReading``
with normalised units (W, Wh, °C). A reply that is not what the device type sends — missing
fields, strings, NaN, negative power, megabytes — raises ``MeterError`` with a short reason that
the cabinet monitor counts; it never crashes the agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import aiohttp

from agent.monitors.wlan.probes import FetchError, fetch_json, finite_number
from base.config import check_http_url, duration, setting

MAX_REPLY_BYTES = 64 * 1024
MAX_PLAUSIBLE_W = 50_000.0  # a 3-phase 32 A cabinet feed is ~22 kW; beyond this the meter is wrong
NEGATIVE_TOLERANCE_W = 1.0  # meters report a few tenths below zero at idle

MeterKind = Literal["shelly-gen2", "shelly-gen1", "tasmota", "http-json"]
EnergyUnit = Literal["wh", "kwh", "wmin", "mwh"]
KINDS: tuple[str, ...] = get_args(MeterKind)
ENERGY_UNITS = {"wh": 1.0, "kwh": 1000.0, "wmin": 1.0 / 60.0, "mwh": 0.001}


class MeterError(Exception):
    """A meter that could not be read or answered nonsense; ``reason`` is a short counter name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One reading, in W, Wh, V and °C; None where the device does not say."""

    power_w: float
    energy_wh: float | None = None
    switch_on: bool | None = None
    temperature_c: float | None = None
    voltage_v: float | None = None
    errors: tuple[str, ...] = ()


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """How to reach and read one meter: a cabinet's ``meter`` table.

    ``timeout`` is in seconds; ``energy_unit`` is what ``energy_path`` reports (any case in the file).
    The path keys are dotted JSON paths for ``http-json`` meters ('data.0.power', list indices allowed).
    """

    kind: MeterKind = "shelly-gen2"
    url: str = setting("", required=True, check=check_http_url)
    channel: int = setting(0, low=0)
    username: str | None = None
    password: str | None = None
    timeout: float = duration(5.0, old="timeout_s")
    power_path: str = "power"
    energy_path: str | None = None
    energy_unit: EnergyUnit = setting("wh", coerce=_lower)
    switch_path: str | None = None
    temperature_path: str | None = None


# -- pure parsers ---------------------------------------------------------------------------


def _power(value: Any, field: str) -> float:
    if value is None:
        raise MeterError("missing-field", f"reply has no {field}")
    number = finite_number(value)
    if number is None:
        raise MeterError("bad-value", f"{field} is not a finite number: {str(value)[:40]!r}")
    if number < -NEGATIVE_TOLERANCE_W:
        raise MeterError("negative-power", f"{field} is negative ({number:g} W)")
    if number > MAX_PLAUSIBLE_W:
        raise MeterError("implausible", f"{field} is implausible ({number:g} W)")
    return max(0.0, number)


def _optional(value: Any, scale: float = 1.0, minimum: float | None = None) -> float | None:
    number = finite_number(value)
    if number is None or (minimum is not None and number < minimum):
        return None
    return number * scale


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MeterError("bad-shape", f"{what} is not a JSON object")
    return value


def parse_shelly_gen2(data: Any) -> MeterReading:
    """``GET /rpc/Switch.GetStatus?id=N``: apower W, aenergy.total Wh, output, temperature.tC, errors."""
    status = _object(data, "Switch.GetStatus reply")
    energy = status.get("aenergy")
    temperature = status.get("temperature")
    errors = status.get("errors")
    output = status.get("output")
    return MeterReading(
        power_w=_power(status.get("apower"), "apower"),
        energy_wh=_optional(energy.get("total"), minimum=0) if isinstance(energy, Mapping) else None,
        switch_on=output if isinstance(output, bool) else None,
        temperature_c=_optional(temperature.get("tC")) if isinstance(temperature, Mapping) else None,
        voltage_v=_optional(status.get("voltage"), minimum=0),
        errors=tuple(str(e)[:32] for e in errors[:8]) if isinstance(errors, list) else (),
    )


def parse_shelly_gen1(data: Any, channel: int = 0) -> MeterReading:
    """``GET /status``: meters[n].power W, meters[n].total in watt-minutes, relays[n].ison, temperature."""
    status = _object(data, "/status reply")
    meters = status.get("meters")
    if not isinstance(meters, list) or len(meters) <= channel:
        raise MeterError("missing-field", f"reply has no meters[{channel}]")
    meter = _object(meters[channel], f"meters[{channel}]")
    relays = status.get("relays")
    relay = relays[channel] if isinstance(relays, list) and len(relays) > channel else None
    ison = relay.get("ison") if isinstance(relay, Mapping) else None
    errors: list[str] = []
    if status.get("overtemperature") is True:
        errors.append("overtemp")
    if isinstance(relay, Mapping) and relay.get("overpower") is True:
        errors.append("overpower")
    if meter.get("is_valid") is False:
        raise MeterError("bad-value", "meter reports is_valid=false")
    return MeterReading(
        power_w=_power(meter.get("power"), f"meters[{channel}].power"),
        energy_wh=_optional(meter.get("total"), scale=ENERGY_UNITS["wmin"], minimum=0),
        switch_on=ison if isinstance(ison, bool) else None,
        temperature_c=_optional(status.get("temperature")),
        errors=tuple(errors),
    )


def parse_tasmota(data: Any, power_state: Any = None) -> MeterReading:
    """``GET /cm?cmnd=Status%208``: StatusSNS.ENERGY.Power W, Total kWh; POWER from ``cmnd=Power`` if given."""
    status = _object(data, "Status 8 reply")
    sns = _object(status.get("StatusSNS"), "StatusSNS")
    energy = _object(sns.get("ENERGY"), "StatusSNS.ENERGY")
    power = energy.get("Power")
    if isinstance(power, list):  # multi-channel meters report one value per channel
        power = sum(p for p in power if finite_number(p) is not None) if power else None
    switch_on: bool | None = None
    if isinstance(power_state, Mapping):
        state = power_state.get("POWER", power_state.get("POWER1"))
        if state in ("ON", "OFF"):
            switch_on = state == "ON"
    return MeterReading(
        power_w=_power(power, "ENERGY.Power"),
        energy_wh=_optional(energy.get("Total"), scale=ENERGY_UNITS["kwh"], minimum=0),
        switch_on=switch_on,
        voltage_v=_optional(energy.get("Voltage"), minimum=0),
    )


def lookup(data: Any, path: str) -> Any:
    """Follow a dotted path ('StatusSNS.ENERGY.Power', 'meters.0.power'); None when it leads nowhere."""
    node = data
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isascii() and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def parse_generic(data: Any, spec: MeterSpec) -> MeterReading:
    """Any JSON meter: the configured field paths, energy scaled from ``energy_unit`` to Wh."""
    switch = lookup(data, spec.switch_path) if spec.switch_path else None
    if isinstance(switch, str):
        switch = {"on": True, "off": False, "true": True, "false": False}.get(switch.lower())
    elif isinstance(switch, int) and not isinstance(switch, bool) and switch in (0, 1):
        switch = bool(switch)
    return MeterReading(
        power_w=_power(lookup(data, spec.power_path), spec.power_path),
        energy_wh=_optional(lookup(data, spec.energy_path), ENERGY_UNITS[spec.energy_unit], 0)
        if spec.energy_path
        else None,
        switch_on=switch if isinstance(switch, bool) else None,
        temperature_c=_optional(lookup(data, spec.temperature_path)) if spec.temperature_path else None,
    )


# -- the adapter ------------------------------------------------------------------------------


class Meter:
    """Reads one meter over HTTP with the adapter its kind needs."""

    def __init__(self, spec: MeterSpec) -> None:
        if spec.kind not in KINDS:
            raise ValueError(f"unknown meter kind {spec.kind!r}")
        self.spec = spec
        self._base = spec.url.rstrip("/")

    async def read(self, session: aiohttp.ClientSession) -> MeterReading:
        """One reading; MeterError on unreachable, HTTP errors, oversize or nonsense replies."""
        spec = self.spec
        auth = aiohttp.BasicAuth(spec.username, spec.password or "") if spec.username else None
        if spec.kind == "shelly-gen2":
            data = await self._get(session, f"{self._base}/rpc/Switch.GetStatus?id={spec.channel}", auth)
            return parse_shelly_gen2(data)
        if spec.kind == "shelly-gen1":
            return parse_shelly_gen1(await self._get(session, f"{self._base}/status", auth), spec.channel)
        if spec.kind == "tasmota":
            creds = f"&user={spec.username}&password={spec.password or ''}" if spec.username else ""
            data = await self._get(session, f"{self._base}/cm?cmnd=Status%208{creds}", None)
            try:
                state = await self._get(session, f"{self._base}/cm?cmnd=Power{creds}", None)
            except MeterError:
                state = None  # the energy reading is what matters; relay state is a bonus
            return parse_tasmota(data, state)
        return parse_generic(await self._get(session, self._base, auth), spec)

    async def _get(self, session: aiohttp.ClientSession, url: str, auth: aiohttp.BasicAuth | None) -> Any:
        try:
            data, _resp = await fetch_json(
                session, "GET", url, timeout_s=self.spec.timeout, max_bytes=MAX_REPLY_BYTES, auth=auth
            )
        except FetchError as exc:
            raise MeterError(exc.reason, str(exc)) from None
        return data
