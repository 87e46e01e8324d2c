"""WLAN controller adapters behind one small interface; UniFi Network (UniFi OS and classic) first.

UniFi OS (UDM, Cloud Key G2+): ``POST /api/auth/login``, keep the session cookie and the
``x-csrf-token`` header, devices at ``/proxy/network/api/s/{site}/stat/device``. Classic
controller: ``POST /api/login``, devices at ``/api/s/{site}/stat/device``. ``style = "auto"``
detects which one answers (as aiounifi does: ``GET /`` answering 200 means UniFi OS).

Which rows are access points is decided by their radios, not their product line: a UniFi
console that serves WLAN (a UniFi Express or a UDM in mesh/AP mode, ``"type": "udm"``) carries
``radio_table``/``radio_table_stats`` like any ``uap``. Every other row is skipped, counted and
logged once. Sources: the UniFi Network controller's ``stat/device`` reply as the community API
notes (https://ubntwiki.com/products/software/unifi-controller/api) and aiounifi's fixtures show it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from agent.monitors.wlan.probes import FetchError, fetch_json, finite_number
from base.agentconfig.wlan import ControllerConfig

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 8 * 1024 * 1024  # a controller with a few hundred devices answers ~1-2 MB

STATE_NAMES = {
    0: "disconnected", 1: "connected", 2: "pending", 3: "firmware mismatch", 4: "upgrading",
    5: "provisioning", 6: "heartbeat missed", 7: "adopting", 8: "deleting", 9: "inform error",
    10: "adoption failed", 11: "isolated",
}
BANDS = {"ng": "2.4 GHz", "na": "5 GHz", "6e": "6 GHz"}
# How controllers say "your session is gone": UniFi OS 401 (or 403 on a stale CSRF token), the
# classic controller 401 with api.err.LoginRequired, some versions and proxies a redirect to the
# login page or that page itself (HTML, so not JSON), some a 200 with LoginRequired in meta.
_SESSION_REFUSALS = frozenset({"http-401", "http-403", "redirect", "not-json", "login-required"})


class ControllerError(Exception):
    """The controller could not be asked (unreachable, login refused, odd reply)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class RadioStatus:
    """One radio of an AP."""

    name: str
    band: str
    channel: int | None
    num_sta: int | None
    satisfaction: int | None
    channel_utilisation: int | None


@dataclass(frozen=True, slots=True)
class ApStatus:
    """One access point as the controller reports it."""

    id: str
    name: str
    model: str | None
    ip: str | None
    state: int
    num_sta: int | None
    uptime_s: int | None
    satisfaction: int | None
    radios: tuple[RadioStatus, ...] = ()
    type: str | None = None  # the controller's device type: "uap", or "udm"/"ux"/… for a console serving WLAN

    @property
    def connected(self) -> bool:
        """State 1 is the only healthy state."""
        return self.state == 1

    @property
    def state_name(self) -> str:
        """'connected', 'heartbeat missed', …"""
        return STATE_NAMES.get(self.state, f"state {self.state}")


class WlanController(Protocol):
    """What the WLAN monitor needs from any controller (UniFi now; Omada, LANCOM later)."""

    name: str

    @property
    def skipped(self) -> Mapping[str, int]:
        """Rows of the last answer that were not read as APs, per reason (``no-wlan``, ``malformed``)."""

    async def fetch_aps(self) -> list[ApStatus]:
        """Every AP the controller manages; ControllerError when it cannot be asked."""

    async def close(self) -> None:
        """Release the HTTP session."""


def _int(value: Any) -> int | None:
    number = finite_number(value)
    return int(number) if number is not None else None


def _text(value: Any, limit: int = 64) -> str | None:
    return str(value)[:limit] if isinstance(value, (str, int)) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A ``stat/device`` row that is not read as an AP: ``reason`` is ``malformed`` or ``no-wlan``."""

    reason: str
    type: str | None
    model: str | None


def _radio_rows(row: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    for key in ("radio_table_stats", "radio_table"):
        radios = row.get(key)
        if isinstance(radios, list):
            found = [r for r in radios[:8] if isinstance(r, Mapping)]
            if found:
                return found
    return []


def serves_wlan(row: Mapping[str, Any]) -> bool:
    """An access point by what it has, not what it is sold as: ``type == "uap"`` or any radio."""
    return row.get("type") == "uap" or bool(_radio_rows(row))


def parse_devices(data: Any) -> tuple[list[ApStatus], list[SkippedRow]]:
    """The rows that serve WLAN from a ``stat/device`` reply, and the rows skipped (with why).

    ``num_sta`` of an AP is its WLAN clients: the sum over its radios when they say (a console
    also counts wired clients in its own ``num_sta``), else the row's. Raises ControllerError:
    ``login-required`` when the reply says the session is gone (``api.err.LoginRequired``, in
    any status), ``api-error`` for other refusals, ``bad-reply`` for another shape.
    """
    if not isinstance(data, Mapping):
        raise ControllerError("bad-reply", "stat/device reply is not a JSON object")
    meta = data.get("meta")
    if isinstance(meta, Mapping) and meta.get("rc") not in (None, "ok"):
        message = str(meta.get("msg"))[:80]
        reason = "login-required" if "loginrequired" in message.lower() else "api-error"
        raise ControllerError(reason, f"controller says {message}")
    rows = data.get("data")
    if not isinstance(rows, list):
        raise ControllerError("bad-reply", "stat/device reply has no data list")
    aps: list[ApStatus] = []
    skipped: list[SkippedRow] = []
    for row in rows:
        if not isinstance(row, Mapping):
            skipped.append(SkippedRow("malformed", None, None))
            continue
        if not serves_wlan(row):
            skipped.append(SkippedRow("no-wlan", _text(row.get("type"), 16), _text(row.get("model"), 32)))
            continue
        mac = _text(row.get("mac"))
        state = _int(row.get("state"))
        if not mac or state is None:
            skipped.append(SkippedRow("malformed", _text(row.get("type"), 16), _text(row.get("model"), 32)))
            continue
        radios = tuple(
            RadioStatus(
                name=_text(r.get("name")) or "",
                band=BANDS.get(str(r.get("radio")), str(r.get("radio"))[:8]),
                channel=_int(r.get("channel")),
                num_sta=_int(r.get("num_sta")),
                satisfaction=_int(r.get("satisfaction")),
                channel_utilisation=_int(r.get("cu_total")),
            )
            for r in _radio_rows(row)
        )
        radio_clients = [r.num_sta for r in radios if r.num_sta is not None]
        aps.append(
            ApStatus(
                id=mac.lower(),
                name=_text(row.get("name")) or mac.lower(),
                model=_text(row.get("model")),
                ip=_text(row.get("ip")),
                state=state,
                num_sta=sum(radio_clients) if radio_clients else _int(row.get("num_sta")),
                uptime_s=_int(row.get("uptime")),
                satisfaction=_int(row.get("satisfaction")),
                radios=radios,
                type=_text(row.get("type"), 16),
            )
        )
    return aps, skipped


class UnifiController:
    """UniFi Network controller client; logs in on first use and again when the session expires."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        site: str = "default",
        style: str = "auto",
        timeout_s: float = 10.0,
        name: str = "unifi",
    ) -> None:
        if style not in ("auto", "unifi-os", "classic"):
            raise ValueError(f"unknown UniFi login style {style!r}")
        self.name = name
        self._base = url.rstrip("/")
        self._username = username
        self._password = password
        self._site = site
        self._style = style
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._csrf: str | None = None
        self._logged_in = False
        self.detected_style: str | None = None if style == "auto" else style
        self.malformed = 0
        self.skipped: dict[str, int] = {}
        self._logged_skips: set[tuple[str, str | None, str | None]] = set()
        self.relogins = 0

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # unsafe=True: controllers are usually reached by IP address, and the default jar
            # refuses cookies for IP hosts.
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _detect(self) -> str:
        if self.detected_style is not None:
            return self.detected_style
        session = self._get_session()
        try:
            async with session.get(
                f"{self._base}/", allow_redirects=False, ssl=False,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            ) as resp:
                await resp.content.read(4096)
                status = resp.status
        except TimeoutError:
            raise ControllerError("timeout", f"controller {self._base} did not answer") from None
        except aiohttp.ClientError as exc:
            raise ControllerError("unreachable", f"controller {self._base}: {type(exc).__name__}") from None
        self.detected_style = "unifi-os" if status == 200 else "classic"
        return self.detected_style

    async def login(self) -> None:
        """Log in with the detected style, keeping cookie and CSRF token."""
        style = await self._detect()
        path = "/api/auth/login" if style == "unifi-os" else "/api/login"
        body = {"username": self._username, "password": self._password, "rememberMe": True, "remember": True}
        try:
            _data, resp = await fetch_json(
                self._get_session(), "POST", f"{self._base}{path}",
                timeout_s=self._timeout_s, max_bytes=64 * 1024, json_body=body,
            )
        except FetchError as exc:
            reason = "login-refused" if exc.reason in ("http-400", "http-401", "http-403") else exc.reason
            raise ControllerError(reason, f"login to {self._base} failed: {exc}") from None
        self._csrf = resp.headers.get("x-csrf-token") or self._csrf
        self._logged_in = True
        log.info("controller login ok controller=%s style=%s", self.name, style)

    def _devices_path(self) -> str:
        prefix = "/proxy/network" if self.detected_style == "unifi-os" else ""
        # The site name comes from the config: percent-encode it like every value put into a URL.
        return f"{prefix}/api/s/{quote(self._site, safe='')}/stat/device"

    async def fetch_aps(self) -> list[ApStatus]:
        """Every WLAN-serving device with its state, clients and radios.

        When the session is refused, in whatever form (see ``_SESSION_REFUSALS``), logs in
        again once and repeats the request. Raises ControllerError when it cannot be asked.
        """
        for attempt in (1, 2):
            if not self._logged_in:
                await self.login()
            headers = {"X-CSRF-Token": self._csrf} if self._csrf else {}
            try:
                data, resp = await fetch_json(
                    self._get_session(), "GET", f"{self._base}{self._devices_path()}",
                    timeout_s=self._timeout_s, max_bytes=MAX_REPLY_BYTES, headers=headers,
                )
                self._csrf = resp.headers.get("x-updated-csrf-token") or self._csrf
                aps, skipped = parse_devices(data)
            except (FetchError, ControllerError) as exc:
                if exc.reason in _SESSION_REFUSALS and attempt == 1:
                    log.info("controller session refused, logging in again controller=%s form=%s",
                             self.name, exc.reason)
                    self._logged_in = False
                    self.relogins += 1
                    continue
                if isinstance(exc, ControllerError):
                    raise
                raise ControllerError(exc.reason, f"stat/device from {self._base}: {exc}") from None
            self._count_skipped(skipped)
            return aps
        raise ControllerError("login-refused", "session expired and login did not help")

    def _count_skipped(self, skipped: list[SkippedRow]) -> None:
        """Count the rows of this answer that are not APs; log each kind of row once."""
        counts: dict[str, int] = {}
        for row in skipped:
            counts[row.reason] = counts.get(row.reason, 0) + 1
            key = (row.reason, row.type, row.model)
            if key not in self._logged_skips and len(self._logged_skips) < 256:
                self._logged_skips.add(key)
                log.info("controller row skipped controller=%s reason=%s type=%s model=%s",
                         self.name, row.reason, row.type, row.model)
        self.malformed += counts.get("malformed", 0)
        self.skipped = counts


def build_controller(config: ControllerConfig) -> WlanController:
    """The adapter for a ``[wlan.controller]`` table (kind = "unifi")."""
    return UnifiController(
        config.url,
        config.username,
        config.password,
        site=config.site,
        style=config.style,
        timeout_s=config.timeout,
        name=config.name,
    )
