"""WLAN controller adapters behind one small interface; UniFi Network (UniFi OS and classic) first.

UniFi OS (UDM, Cloud Key G2+): ``POST /api/auth/login``, keep the session cookie and the
``x-csrf-token`` header, devices at ``/proxy/network/api/s/{site}/stat/device``. Classic
controller: ``POST /api/login``, devices at ``/api/s/{site}/stat/device``. ``style = "auto"``
detects which one answers (as aiounifi does: ``GET /`` answering 200 means UniFi OS).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from agent.monitors.wlan.config import ControllerConfig
from agent.monitors.wlan.probes import FetchError, fetch_json, finite_number

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 8 * 1024 * 1024  # a controller with a few hundred devices answers ~1-2 MB

STATE_NAMES = {
    0: "disconnected", 1: "connected", 2: "pending", 3: "firmware mismatch", 4: "upgrading",
    5: "provisioning", 6: "heartbeat missed", 7: "adopting", 8: "deleting", 9: "inform error",
    10: "adoption failed", 11: "isolated",
}
BANDS = {"ng": "2.4 GHz", "na": "5 GHz", "6e": "6 GHz"}


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

    async def fetch_aps(self) -> list[ApStatus]:
        """Every AP the controller manages; ControllerError when it cannot be asked."""

    async def close(self) -> None:
        """Release the HTTP session."""


def _int(value: Any) -> int | None:
    number = finite_number(value)
    return int(number) if number is not None else None


def _text(value: Any, limit: int = 64) -> str | None:
    return str(value)[:limit] if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def parse_devices(data: Any) -> tuple[list[ApStatus], int]:
    """APs (``type == "uap"``) from a ``stat/device`` reply; also how many entries were malformed."""
    if not isinstance(data, Mapping):
        raise ControllerError("bad-reply", "stat/device reply is not a JSON object")
    meta = data.get("meta")
    if isinstance(meta, Mapping) and meta.get("rc") not in (None, "ok"):
        raise ControllerError("api-error", f"controller says {str(meta.get('msg'))[:80]}")
    rows = data.get("data")
    if not isinstance(rows, list):
        raise ControllerError("bad-reply", "stat/device reply has no data list")
    aps: list[ApStatus] = []
    malformed = 0
    for row in rows:
        if not isinstance(row, Mapping) or row.get("type") != "uap":
            malformed += not isinstance(row, Mapping)
            continue
        mac = _text(row.get("mac"))
        state = _int(row.get("state"))
        if not mac or state is None:
            malformed += 1
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
            for r in (row.get("radio_table_stats") or [])[:8]
            if isinstance(r, Mapping)
        )
        aps.append(
            ApStatus(
                id=mac.lower(),
                name=_text(row.get("name")) or mac.lower(),
                model=_text(row.get("model")),
                ip=_text(row.get("ip")),
                state=state,
                num_sta=_int(row.get("num_sta")),
                uptime_s=_int(row.get("uptime")),
                satisfaction=_int(row.get("satisfaction")),
                radios=radios,
            )
        )
    return aps, malformed


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
        return f"{prefix}/api/s/{self._site}/stat/device"

    async def fetch_aps(self) -> list[ApStatus]:
        """Every AP with its state, clients and radios; re-logs in once on 401."""
        for attempt in (1, 2):
            if not self._logged_in:
                await self.login()
            headers = {"X-CSRF-Token": self._csrf} if self._csrf else {}
            try:
                data, resp = await fetch_json(
                    self._get_session(), "GET", f"{self._base}{self._devices_path()}",
                    timeout_s=self._timeout_s, max_bytes=MAX_REPLY_BYTES, headers=headers,
                )
            except FetchError as exc:
                if exc.reason == "http-401" and attempt == 1:
                    self._logged_in = False
                    continue
                raise ControllerError(exc.reason, f"stat/device from {self._base}: {exc}") from None
            self._csrf = resp.headers.get("x-updated-csrf-token") or self._csrf
            aps, malformed = parse_devices(data)
            self.malformed += malformed
            return aps
        raise ControllerError("login-refused", "session expired and login did not help")


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
