"""A UniFi-Network-like controller on real HTTP: UniFi OS or classic login, ``stat/device`` with APs.

Reply shapes follow aiounifi's real fixtures (hyphenated keys, ``radio_table_stats``). Reads need
the session cookie; on UniFi OS they also need the ``X-CSRF-Token`` the login handed out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sim.faults import FaultBoard

_LOGIN_REQUIRED = {"meta": {"rc": "error", "msg": "api.err.LoginRequired"}, "data": []}
# How a controller refuses a read whose session is gone: UniFi OS answers 401 (403 when only the
# CSRF token is stale), the classic controller 401 with LoginRequired; behind some proxies and in
# some versions it is a redirect to the login page, the login page itself, or LoginRequired with 200.
SESSION_REFUSALS = ("401", "403", "redirect", "login-required-200", "html-200")


@dataclass
class SimAp:
    """One simulated access point."""

    index: int
    name: str
    mac: str
    ip: str
    clients: int
    model: str = "U6LR"
    console: bool = False  # a UniFi Express console serving WLAN as a mesh AP ("type": "udm")


class UnifiServer:
    """aiohttp app of a UniFi controller in the chosen login style."""

    def __init__(
        self, aps: list[SimAp], faults: FaultBoard, *, password: str, style: str = "unifi-os",
        username: str = "schulwart", site: str = "default", session_refusal: str = "401",
    ) -> None:
        if style not in ("unifi-os", "classic"):
            raise ValueError(f"unknown controller style {style!r}")
        if session_refusal not in SESSION_REFUSALS:
            raise ValueError(f"unknown session refusal {session_refusal!r}")
        self.session_refusal = session_refusal
        self.aps = aps
        self.style = style
        self.username = username
        self.password = password
        self.site = site
        self._faults = faults
        self._sessions: dict[str, str] = {}  # session cookie → csrf token
        self.logins = 0
        self.app = web.Application(client_max_size=64 * 1024)
        self.app.middlewares.append(self._fault_middleware)
        self.app.router.add_get("/", self._root)
        prefix = "/proxy/network" if style == "unifi-os" else ""
        self.app.router.add_post("/api/auth/login" if style == "unifi-os" else "/api/login", self._login)
        self.app.router.add_get(f"{prefix}/api/s/{{site}}/stat/device", self._stat_device)
        self._cookie = "TOKEN" if style == "unifi-os" else "unifises"

    def expire_sessions(self) -> None:
        """Forget every session, as a controller restart does."""
        self._sessions.clear()

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._faults.active("controller-down"):
            raise web.HTTPServiceUnavailable(text="controller down")
        response: web.StreamResponse = await handler(request)
        return response

    async def _root(self, request: web.Request) -> web.Response:
        if self.style == "unifi-os":
            return web.Response(text="<html><title>UniFi OS</title></html>", content_type="text/html")
        raise web.HTTPFound("/manage")

    async def _login(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"meta": {"rc": "error", "msg": "api.err.Invalid"}, "data": []}, status=400)
        if not isinstance(body, dict) or body.get("username") != self.username or body.get(
            "password"
        ) != self.password:
            return web.json_response({"meta": {"rc": "error", "msg": "api.err.Invalid"}, "data": []}, status=401)
        session = secrets.token_hex(16)
        csrf = secrets.token_hex(16)
        self._sessions[session] = csrf
        self.logins += 1
        response = web.json_response({"meta": {"rc": "ok"}, "data": []})
        response.set_cookie(self._cookie, session, httponly=True, path="/")
        response.headers["X-CSRF-Token"] = csrf
        return response

    async def _stat_device(self, request: web.Request) -> web.Response:
        session = request.cookies.get(self._cookie)
        csrf = self._sessions.get(session or "")
        if csrf is None or (self.style == "unifi-os" and request.headers.get("X-CSRF-Token") != csrf):
            return self._refuse()
        if request.match_info["site"] != self.site:
            return web.json_response({"meta": {"rc": "error", "msg": "api.err.NoSiteContext"}, "data": []},
                                     status=400)
        rows: list[dict[str, Any]] = [self._ap_row(ap) for ap in self.aps]
        rows.append({"_id": "sw1", "mac": "f0:9f:c2:00:00:01", "type": "usw", "model": "US24P250",
                     "name": "Switch Keller", "state": 1, "adopted": True})
        return web.json_response({"meta": {"rc": "ok"}, "data": rows})

    def _refuse(self) -> web.Response:
        form = self.session_refusal
        if form == "redirect":
            raise web.HTTPFound("/login?redirect=%2Fmanage")
        if form == "html-200":
            return web.Response(text="<html><title>UniFi OS</title><body>login</body></html>", content_type="text/html")
        if form == "login-required-200":
            return web.json_response(_LOGIN_REQUIRED)
        return web.json_response(_LOGIN_REQUIRED, status=int(form))

    def _ap_row(self, ap: SimAp) -> dict[str, Any]:
        down = self._faults.active("ap-down", ap.index)
        busy = self._faults.active("ap-overloaded", ap.index)
        clients = 0 if down else (60 if busy else ap.clients)
        satisfaction = 30 if busy else 97
        ng = clients // 3
        row = self._uap_row(ap, down, clients, satisfaction, ng)
        if ap.console:
            # A UniFi Express serving WLAN as a mesh AP: a console ("udm") with radios; its own
            # num_sta also counts its wired client.
            row |= {"type": "udm", "model": "UX", "device_mode_override": "mesh", "num_sta": clients + 1,
                    "user-num_sta": clients + 1, "wan1": {"up": False}, "gateway_mac": ap.mac}
        return row

    def _uap_row(self, ap: SimAp, down: bool, clients: int, satisfaction: int, ng: int) -> dict[str, Any]:
        return {
            "_id": f"ap{ap.index}", "_uptime": 3971849, "adopted": True, "mac": ap.mac, "model": ap.model,
            "name": ap.name, "ip": ap.ip, "type": "uap", "state": 0 if down else 1, "version": "6.6.77.15402",
            "uptime": 0 if down else 3971849, "last_seen": 1588175726, "num_sta": clients,
            "user-num_sta": clients, "guest-num_sta": 0, "satisfaction": -1 if down else satisfaction,
            "system-stats": {"cpu": "3.1", "mem": "27.4", "uptime": "3971849"},
            "radio_table_stats": [
                {"name": "wifi0", "radio": "ng", "channel": 1, "num_sta": ng, "user-num_sta": ng,
                 "guest-num_sta": 0, "satisfaction": satisfaction, "state": "RUN", "cu_total": 21,
                 "tx_packets": 30, "tx_retries": 16, "tx_power": 6},
                {"name": "wifi1", "radio": "na", "channel": 44, "num_sta": clients - ng,
                 "user-num_sta": clients - ng, "guest-num_sta": 0, "satisfaction": satisfaction,
                 "state": "RUN", "cu_total": 12, "tx_packets": 2902, "tx_retries": 121, "tx_power": 17},
            ],
        }
