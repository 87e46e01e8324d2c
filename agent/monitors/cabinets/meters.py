"""Power-meter adapters for charging cabinets: Shelly Gen2+ RPC, Shelly Gen1, Tasmota, generic HTTP-JSON.

Each adapter fetches one reply (size-capped) and a pure parser turns it into a ``MeterReading``
with normalised units (W, Wh, °C). A reply that is not what the device type sends — missing
fields, strings, NaN, negative power, megabytes — raises ``MeterError`` with a short reason that
the cabinet monitor counts; it never crashes the agent.

Sources for the reply shapes and the login of each kind:

- Shelly Gen2/Gen3/Gen4 RPC (https://shelly-api-docs.shelly.cloud/gen2/): ``Shelly.GetStatus``
  holds one object per component (``switch:N``, ``pm1:N``, ``em1:N``/``em1data:N``,
  ``em:N``/``emdata:N``); with a password set, every call but ``/shelly`` and
  ``Shelly.GetDeviceInfo`` needs HTTP Digest with SHA-256 (RFC 7616), user ``admin``.
- Shelly Gen1 (https://shelly-api-docs.shelly.cloud/gen1/): ``/status`` with ``meters[]``
  (``total`` in watt-minutes) or, on the EM and 3EM, ``emeters[]`` (``total`` in Wh); HTTP Basic.
- Tasmota (https://tasmota.github.io/docs/Commands/): ``/cm?cmnd=Status 8`` and ``Power<n>``;
  the web password goes in the ``user``/``password`` query arguments (user ``admin``), and a
  refused login is answered ``200 {"WARNING": "Need user=<username>&password=<password>"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from agent.monitors.cabinets.reading import MeterError, MeterReading
from agent.monitors.wlan.probes import FetchError, fetch_json, finite_number
from base.agentconfig.cabinets import DEFAULT_USER, ENERGY_UNITS, KINDS, MeterSpec

MAX_REPLY_BYTES = 64 * 1024
MAX_PLAUSIBLE_W = 50_000.0  # a 3-phase 32 A cabinet feed is ~22 kW; beyond this the meter is wrong
NEGATIVE_TOLERANCE_W = 1.0  # meters report a few tenths below zero at idle
# What a Shelly Gen2+ device must have on the configured channel to be read, for the messages.
SHELLY_GEN2_METERING = "switch:N with apower, pm1:N, em1:N or em:N"


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


def _errors(value: Any) -> tuple[str, ...]:
    return tuple(str(e)[:32] for e in value[:8]) if isinstance(value, list) else ()


def login_refusal(data: Any) -> str | None:
    """The device's words when a 200 reply is a refused login, else None.

    Tasmota answers a wrong or missing web password with HTTP 200 and
    ``{"WARNING": "Need user=<username>&password=<password>"}``; any top-level ``WARNING``
    that asks for a user or password is read the same way.
    """
    if not isinstance(data, Mapping):
        return None
    for key, value in data.items():
        if isinstance(key, str) and key.upper() == "WARNING" and isinstance(value, str):
            if "user" in value.lower() or "password" in value.lower():
                return value[:80]
    return None


def parse_shelly_gen2(data: Any) -> MeterReading:
    """``GET /rpc/Switch.GetStatus?id=N`` (or a ``pm1:N`` object): apower W, aenergy.total Wh, output,
    temperature.tC, errors."""
    status = _object(data, "Switch.GetStatus reply")
    energy = status.get("aenergy")
    temperature = status.get("temperature")
    output = status.get("output")
    return MeterReading(
        power_w=_power(status.get("apower"), "apower"),
        energy_wh=_optional(energy.get("total"), minimum=0) if isinstance(energy, Mapping) else None,
        switch_on=output if isinstance(output, bool) else None,
        temperature_c=_optional(temperature.get("tC")) if isinstance(temperature, Mapping) else None,
        voltage_v=_optional(status.get("voltage"), minimum=0),
        errors=_errors(status.get("errors")),
    )


def _metering_channels(status: Mapping[str, Any]) -> list[int]:
    """Channels of a Shelly.GetStatus reply that carry a power reading (for the error message)."""
    found: set[int] = set()
    for key, value in status.items():
        kind, _, index = str(key).partition(":")
        if not index.isdigit() or not isinstance(value, Mapping):
            continue
        if (kind == "switch" and "apower" in value) or kind in ("pm1", "em1", "em"):
            found.add(int(index))
    return sorted(found)


def parse_shelly_gen2_status(data: Any, channel: int = 0) -> MeterReading:
    """``GET /rpc/Shelly.GetStatus``: the metering component of ``channel``, whichever the model has.

    Looked for in this order: ``switch:N`` with ``apower`` (Plus/Pro PM relays, plugs),
    ``pm1:N`` (PM Mini), ``em1:N`` with ``em1data:N.total_act_energy`` (Pro EM, Pro EM-50, Pro 3EM
    in its monophase profile), ``em:N`` with ``total_act_power`` and ``emdata:N.total_act``
    (Pro 3EM, 3EM-63: all phases together). Relay state and temperature come from ``switch:N``
    when the device has one (the Pro EM-50's contactor relay measures nothing itself).
    Units: W, Wh, V, °C. Raises MeterError ``unsupported-model`` when nothing on that channel
    measures power, naming the channels that do.
    """
    status = _object(data, "Shelly.GetStatus reply")
    if not any(":" in str(key) for key in status):
        raise MeterError("bad-shape", "reply has no components (not a Shelly.GetStatus reply)")
    raw_switch = status.get(f"switch:{channel}")
    switch = raw_switch if isinstance(raw_switch, Mapping) else None
    if switch is not None and "apower" in switch:
        return parse_shelly_gen2(switch)
    relay = switch.get("output") if switch is not None else None
    temperature = switch.get("temperature") if switch is not None else None
    switch_on = relay if isinstance(relay, bool) else None
    temperature_c = _optional(temperature.get("tC")) if isinstance(temperature, Mapping) else None
    pm1 = status.get(f"pm1:{channel}")
    if isinstance(pm1, Mapping):
        reading = parse_shelly_gen2(pm1)  # a pm1 status has a switch's metering fields
        return replace(reading, switch_on=switch_on, temperature_c=temperature_c or reading.temperature_c)
    em1 = status.get(f"em1:{channel}")
    if isinstance(em1, Mapping):
        em1data = status.get(f"em1data:{channel}")
        return MeterReading(
            power_w=_power(em1.get("act_power"), f"em1:{channel}.act_power"),
            energy_wh=_optional(em1data.get("total_act_energy"), minimum=0) if isinstance(em1data, Mapping) else None,
            switch_on=switch_on,
            temperature_c=temperature_c,
            voltage_v=_optional(em1.get("voltage"), minimum=0),
            errors=_errors(em1.get("errors")),
        )
    em = status.get(f"em:{channel}")
    if isinstance(em, Mapping):
        emdata = status.get(f"emdata:{channel}")
        return MeterReading(
            power_w=_power(em.get("total_act_power"), f"em:{channel}.total_act_power"),
            energy_wh=_optional(emdata.get("total_act"), minimum=0) if isinstance(emdata, Mapping) else None,
            switch_on=switch_on,
            temperature_c=temperature_c,
            voltage_v=_optional(em.get("a_voltage"), minimum=0),
            errors=_errors(em.get("errors")),
        )
    channels = _metering_channels(status)
    hint = f"set meter.channel to {' or '.join(map(str, channels))}" if channels else "it measures no power"
    raise MeterError("unsupported-model", f"has no power meter on channel {channel} ({hint})")


def parse_shelly_gen1(data: Any, channel: int = 0) -> MeterReading:
    """``GET /status``: ``meters[n]`` (relays and plugs: power W, total in watt-minutes) or ``emeters[n]``
    (Shelly EM, 3EM: power W, total in Wh, voltage V), ``relays[n].ison``, temperature °C.

    Raises MeterError ``unsupported-model`` when the reply has neither list (a Shelly without a meter).
    """
    status = _object(data, "/status reply")
    emeters = status.get("emeters")
    meters: Any
    if isinstance(emeters, list) and emeters:
        field, meters, unit = "emeters", emeters, "wh"
    elif "meters" in status:
        field, meters, unit = "meters", status.get("meters"), "wmin"
    else:
        raise MeterError("unsupported-model", "reply has neither meters nor emeters (this Shelly measures no power)")
    if not isinstance(meters, list) or len(meters) <= channel:
        raise MeterError("missing-field", f"reply has no {field}[{channel}]")
    meter = _object(meters[channel], f"{field}[{channel}]")
    relays = status.get("relays")
    relay = relays[channel] if isinstance(relays, list) and len(relays) > channel else None
    ison = relay.get("ison") if isinstance(relay, Mapping) else None
    errors: list[str] = []
    if status.get("overtemperature") is True:
        errors.append("overtemp")
    if isinstance(relay, Mapping) and relay.get("overpower") is True:
        errors.append("overpower")
    if meter.get("is_valid") is False:
        raise MeterError("bad-value", f"{field}[{channel}] reports is_valid=false")
    return MeterReading(
        power_w=_power(meter.get("power"), f"{field}[{channel}].power"),
        energy_wh=_optional(meter.get("total"), scale=ENERGY_UNITS[unit], minimum=0),
        switch_on=ison if isinstance(ison, bool) else None,
        temperature_c=_optional(status.get("temperature")),
        voltage_v=_optional(meter.get("voltage"), minimum=0),
        errors=tuple(errors),
    )


def parse_tasmota(data: Any, power_state: Any = None, channel: int = 0) -> MeterReading:
    """``GET /cm?cmnd=Status 8``: StatusSNS.ENERGY.Power W, Total kWh, Voltage V; the relay from the
    ``cmnd=Power<channel+1>`` reply (``POWER<n>``, or ``POWER`` on a one-relay device) if given.

    Multi-channel meters report arrays (``"Power": [52, 5]``): every array-valued field is read at
    ``channel``; a single value with ``channel`` > 0 is a MeterError, as is an array without that
    index. A scalar ``Total`` beside an array ``Power`` is the sum over all channels, so it is not
    this channel's energy (None). A refused login (HTTP 200 with ``WARNING``) is ``auth-refused``.
    """
    refusal = login_refusal(data)
    if refusal is not None:
        raise MeterError("auth-refused", f"Tasmota refused the login ({refusal}): set meter.password (user admin)")
    status = _object(data, "Status 8 reply")
    sns = _object(status.get("StatusSNS"), "StatusSNS")
    energy = _object(sns.get("ENERGY"), "StatusSNS.ENERGY")
    power: Any = energy.get("Power")
    per_channel = isinstance(power, list)
    if isinstance(power, list):
        if channel >= len(power):
            raise MeterError("missing-field", f"ENERGY.Power has {len(power)} channels, not channel {channel}")
        power = power[channel]
    elif channel > 0:
        raise MeterError("missing-field", f"ENERGY.Power is one value, not channel {channel}: set meter.channel = 0")

    def at_channel(field: str) -> Any:
        value = energy.get(field)
        if isinstance(value, list):
            return value[channel] if channel < len(value) else None
        return None if per_channel and field == "Total" else value

    switch_on: bool | None = None
    if isinstance(power_state, Mapping):
        names = (f"POWER{channel + 1}", "POWER") if channel == 0 else (f"POWER{channel + 1}",)
        state = next((power_state[n] for n in names if n in power_state), None)
        if isinstance(state, str) and state.upper() in ("ON", "OFF"):
            switch_on = state.upper() == "ON"
    return MeterReading(
        power_w=_power(power, f"ENERGY.Power[{channel}]" if per_channel else "ENERGY.Power"),
        energy_wh=_optional(at_channel("Total"), scale=ENERGY_UNITS["kwh"], minimum=0),
        switch_on=switch_on,
        voltage_v=_optional(at_channel("Voltage"), minimum=0),
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
    refusal = login_refusal(data)
    if refusal is not None:
        raise MeterError("auth-refused", f"the meter refused the login ({refusal})")
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


def describe_shelly(info: Any) -> tuple[int, str] | None:
    """``GET /shelly`` (unauthenticated on every generation) → (generation, "Shelly <app> (<model>)"),
    or None when the reply is not a Shelly's. Gen2+ replies carry ``gen``; Gen1 replies ``type``."""
    if not isinstance(info, Mapping):
        return None
    gen = finite_number(info.get("gen"))
    if gen is not None and gen >= 2:
        app, model = str(info.get("app") or "?")[:32], str(info.get("model") or "?")[:32]
        return int(gen), f"Shelly {app} ({model})"
    kind = info.get("type")
    if isinstance(kind, str) and kind:
        return 1, f"Shelly {kind[:32]}"
    return None


# -- the adapter ------------------------------------------------------------------------------


class Meter:
    """Reads one meter over HTTP with the adapter its kind needs.

    Shelly Gen2+ logs in with HTTP Digest (aiohttp's ``DigestAuthMiddleware``: SHA-256 and
    ``qop=auth`` as RFC 7616 and Shelly's docs describe), Gen1 and ``http-json`` with Basic,
    Tasmota with percent-encoded query arguments. Credentials never appear in a MeterError.
    """

    def __init__(self, spec: MeterSpec) -> None:
        if spec.kind not in KINDS:
            raise ValueError(f"unknown meter kind {spec.kind!r}")
        self.spec = spec
        self._base = str(URL(spec.url.rstrip("/")))  # percent-encoded once, here
        # One middleware per meter: it keeps the device's nonce and counts its uses (nc).
        self._digest: tuple[aiohttp.ClientMiddlewareType, ...] = ()
        if spec.kind == "shelly-gen2" and spec.password:
            self._digest = (aiohttp.DigestAuthMiddleware(spec.user or DEFAULT_USER, spec.password),)

    async def read(self, session: aiohttp.ClientSession) -> MeterReading:
        """One reading; MeterError on unreachable, HTTP errors, refused logins, oversize or nonsense replies."""
        spec = self.spec
        if spec.kind == "shelly-gen2":
            return await self._read_shelly(session, 2)
        if spec.kind == "shelly-gen1":
            return await self._read_shelly(session, 1)
        if spec.kind == "tasmota":
            data = await self._get(session, self._tasmota_url("Status 8"))
            try:
                state = await self._get(session, self._tasmota_url(f"Power{spec.channel + 1}"))
            except MeterError:
                state = None  # the energy reading is what matters; relay state is a bonus
            return parse_tasmota(data, state, spec.channel)
        return parse_generic(await self._get(session, URL(self._base, encoded=True), self._basic()), spec)

    async def _read_shelly(self, session: aiohttp.ClientSession, gen: int) -> MeterReading:
        spec = self.spec
        try:
            if gen == 2:
                data = await self._get(session, URL(f"{self._base}/rpc/Shelly.GetStatus", encoded=True))
                return parse_shelly_gen2_status(data, spec.channel)
            data = await self._get(session, URL(f"{self._base}/status", encoded=True), self._basic())
            return parse_shelly_gen1(data, spec.channel)
        except MeterError as exc:
            if exc.reason not in ("unsupported-model", "http-404"):
                raise
            raise await self._explain(session, gen, exc) from None

    async def _explain(self, session: aiohttp.ClientSession, gen: int, error: MeterError) -> MeterError:
        """Name the model behind an unusable answer, and the setting that works, in one line."""
        try:
            info = await self._get(session, URL(f"{self._base}/shelly", encoded=True))
        except MeterError:
            return error
        described = describe_shelly(info)
        if described is None:
            return error
        actual, model = described
        if (actual >= 2) != (gen >= 2):
            kind = "shelly-gen2" if actual >= 2 else "shelly-gen1"
            return MeterError("wrong-kind", f"{model} is a Gen{actual} device: set meter.kind = \"{kind}\"")
        if error.reason == "unsupported-model":
            supported = SHELLY_GEN2_METERING if gen >= 2 else "meters[N] or emeters[N]"
            return MeterError("unsupported-model", f"{model} {error.message}; readable: {supported}")
        return error

    def _basic(self) -> aiohttp.BasicAuth | None:
        user = self.spec.user
        return aiohttp.BasicAuth(user, self.spec.password or "") if user else None

    def _tasmota_url(self, command: str) -> URL:
        """``/cm`` with every argument percent-encoded (``&``, ``#``, ``+``, ``%`` and spaces in a
        password would otherwise end or change the argument)."""
        args = {"cmnd": command}
        if self.spec.user:
            args |= {"user": self.spec.user, "password": self.spec.password or ""}
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in args.items())
        return URL(f"{self._base}/cm?{query}", encoded=True)

    def _redact(self, text: str) -> str:
        secret = self.spec.password
        if not secret:
            return text
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            text = text.replace(form, "***")
        return text

    async def _get(self, session: aiohttp.ClientSession, url: URL, auth: aiohttp.BasicAuth | None = None) -> Any:
        try:
            data, _resp = await fetch_json(
                session, "GET", url, timeout_s=self.spec.timeout, max_bytes=MAX_REPLY_BYTES, auth=auth,
                middlewares=self._digest,
            )
        except FetchError as exc:
            if exc.reason in ("http-401", "http-403"):
                hint = "check meter.password" if self.spec.password else "it needs a password: set meter.password"
                raise MeterError("auth-refused", f"the meter refused the login ({exc}): {hint}") from None
            raise MeterError(exc.reason, self._redact(str(exc))) from None
        return data
