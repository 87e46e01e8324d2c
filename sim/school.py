"""The simulated school: devices on mDNS, meters, APs, a controller, faults, and the matching agent config."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from zeroconf import ServiceInfo

from agent.monitors.discovery.presence import SchoolCalendar
from base.agentconfig.window import parse_window
from sim import agent_config
from sim.faults import FaultBoard, FaultError, parse_fault
from sim.mdns import (
    Announcer,
    airplay_services,
    mac_services,
    printer_services,
    send_flood,
    shelly_services,
    tablet_services,
)
from sim.meters import METER_MODELS, CabinetModel, MeterServer
from sim.network import TcpListener
from sim.simtime import SimClock
from sim.unifi import SimAp, UnifiServer

log = logging.getLogger(__name__)

_PUPILS = ("Lena", "Finn", "Mia", "Ben", "Emma", "Paul", "Hannah", "Jonas", "Lea", "Elias", "Sofia", "Noah",
           "Marie", "Luis", "Emilia", "Felix", "Clara", "Anton", "Ida", "Theo")
_ROOMS = ("Raum 12", "Aula", "Raum 3", "Musikraum", "Raum 7", "Lehrerzimmer", "Bibliothek", "Raum 21")
_METER_MODELS = ("shelly-plus-plug-s", "shelly-plug-s", "tasmota")


@dataclass
class SchoolSpec:
    """What to simulate."""

    school: str = "sim"
    interface: str = "127.0.0.1"
    devices: int = 30
    receivers: int = 3
    printers: int = 2
    aps: int = 3
    cabinets: int = 3
    faults: list[str] = field(default_factory=list)
    window: str = "15:00-07:00"
    days: str = "mon-fri"
    timezone: str = "Europe/Berlin"
    start: datetime | None = None
    speed: float = 1.0
    controller_style: str = "unifi-os"
    seed: int | None = None
    agent_interface: str | None = None
    agent_interval_s: float = 10.0
    missing_after: str = "2m"
    central_url: str | None = None
    control_port: int = 0
    # Extra AirPlay receivers announced with exactly these names: anything on a school
    # network can announce any name, markup included (the technician page must cope).
    extra_receiver_names: list[str] = field(default_factory=list)
    # Meter models (sim.meters.METER_MODELS) the cabinets take in turn; empty: plug, Gen1 plug, Tasmota.
    meter_models: list[str] = field(default_factory=list)
    # The meters' login (user admin): Digest on Shelly Gen2+, Basic on Gen1, query arguments on Tasmota.
    meter_password: str | None = None
    # How many of the APs are UniFi consoles serving WLAN (type "udm", mesh mode), e.g. a UniFi Express.
    console_aps: int = 0
    # How the controller refuses an expired session (sim.unifi.SESSION_REFUSALS).
    session_refusal: str = "401"
    # Macs that announce themselves as AirPlay receivers (macOS 12+): laptops, not fixed receivers.
    macs: int = 0
    # The tablets go home with the pupils (1:1): announced only in school hours on school days
    # (sim clock), and the written agent config says so.
    take_home: bool = False
    school_hours: str = "07:30-15:00"


@dataclass
class SimDevice:
    """One device the sim announces, with the id and class the agent should find."""

    kind: str
    index: int
    name: str
    expected_id: str
    expected_class: str
    services: list[ServiceInfo]
    listener: TcpListener | None = None
    announced: bool = True


class SimSchool:
    """Everything of one simulated school, started and stopped together."""

    def __init__(self, spec: SchoolSpec) -> None:
        self.spec = spec
        self._rng = random.Random(spec.seed if spec.seed is not None else spec.school)
        tz = ZoneInfo(spec.timezone)
        self.clock = SimClock(spec.start.astimezone(tz) if spec.start else datetime.now(tz), spec.speed)
        self.faults = FaultBoard()
        self.faults.subscribe(self._on_fault)
        self.announcer = Announcer(spec.interface)
        self.devices: list[SimDevice] = []
        self.cabinets: list[CabinetModel] = []
        self.aps: list[SimAp] = []
        self._ap_listeners: dict[int, TcpListener] = {}
        self.gateway = TcpListener(spec.interface)
        self.dns = TcpListener(spec.interface)
        self.controller_password = secrets.token_urlsafe(12)
        self._runners: list[web.AppRunner] = []
        self.meter_urls: dict[int, str] = {}
        self.controller_url: str | None = None
        self.control_url: str | None = None
        self.unifi: UnifiServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()
        self._calendar: SchoolCalendar | None = None

    # -- building ---------------------------------------------------------------------------------

    def _mac(self, prefix: str) -> str:
        return prefix + ":" + ":".join(f"{self._rng.randrange(256):02x}" for _ in range(3))

    async def _serve(self, app: web.Application, port: int = 0) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.spec.interface, port)
        await site.start()
        self._runners.append(runner)
        bound = runner.addresses[-1][1]
        return f"http://{self.spec.interface}:{bound}"

    async def start(self) -> None:
        """Start every server, announce every device, apply the start faults."""
        s = self.spec
        tag = s.school
        ip = s.interface
        await self.announcer.start()
        window = parse_window(s.window, s.days)
        models = s.meter_models or list(_METER_MODELS)
        for i in range(1, s.cabinets + 1):
            model = models[(i - 1) % len(models)]
            cabinet = CabinetModel(i, f"Ladeschrank {i}", _ROOMS[(i - 1) % len(_ROOMS)], 16 + 8 * (i % 3),
                                   window, METER_MODELS[model].kind, self._mac("c4:5b:be"), model=model,
                                   password=s.meter_password)
            self.cabinets.append(cabinet)
            self.meter_urls[i] = await self._serve(MeterServer(cabinet, self.clock, self.faults).app)
            kind = cabinet.kind
            if kind.startswith("shelly"):
                mac = cabinet.mac.replace(":", "")
                gen = 2 if kind == "shelly-gen2" else 1
                dev_id = cabinet.device_id if gen == 2 else f"shellyplug-s-{mac.upper()}"
                port = int(self.meter_urls[i].rsplit(":", 1)[1])
                self.devices.append(SimDevice(
                    "meter", i, dev_id, f"id:{dev_id.lower()}", "meter",
                    shelly_services(dev_id, f"{dev_id}-{tag}", ip, port, gen),
                ))
        for i in range(1, s.aps + 1):
            listener = TcpListener(ip)
            await listener.start()
            self._ap_listeners[i] = listener
            clients = s.devices // max(1, s.aps)
            console = i > s.aps - s.console_aps
            self.aps.append(SimAp(i, f"{'Express' if console else 'AP'} {_ROOMS[(i - 1) % len(_ROOMS)]}",
                                  self._mac("80:2a:a8"), ip, clients, model="UX" if console else "U6LR",
                                  console=console))
        self.unifi = UnifiServer(self.aps, self.faults, password=self.controller_password, style=s.controller_style,
                                 session_refusal=s.session_refusal)
        self.controller_url = await self._serve(self.unifi.app)
        await self.gateway.start()
        await self.dns.start()
        for i in range(1, s.receivers + 1):
            await self._add_receiver(i, f"{_ROOMS[(i - 1) % len(_ROOMS)]} Apple TV {tag}-{i}")
        for i, name in enumerate(s.extra_receiver_names, start=s.receivers + 1):
            await self._add_receiver(i, name)
        for i in range(1, s.macs + 1):
            listener = TcpListener(ip)
            await listener.start()
            mac = self._mac("3c:22:fb").upper()
            name = f"MacBook Air von {_PUPILS[(i + 3) % len(_PUPILS)]} ({tag}-{i})"
            self.devices.append(SimDevice(
                "mac", i, name, f"mac:{mac.lower()}", "other",
                mac_services(name, f"macbook-{tag}-{i}", mac, ip, listener.port), listener,
            ))
        for i in range(1, s.printers + 1):
            listener = TcpListener(ip)
            await listener.start()
            uuid = f"{self._rng.getrandbits(128):032x}"
            uuid = f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}"
            name = f"Drucker {_ROOMS[(i + 4) % len(_ROOMS)]} {tag}-{i}"
            self.devices.append(SimDevice(
                "printer", i, name, f"id:{uuid}", "printer",
                printer_services(name, f"printer-{tag}-{i}", ip, listener.port, uuid, _ROOMS[(i + 4) % len(_ROOMS)]),
                listener,
            ))
        for i in range(1, s.devices + 1):
            mac = self._mac("a4:83:e7")
            pupil = _PUPILS[(i - 1) % len(_PUPILS)]
            name = f"{pupil}s iPad ({tag}-{i})"
            self.devices.append(SimDevice(
                "tablet", i, name, f"mac:{mac}", "tablet",
                tablet_services(name, f"{pupil}s-iPad-{tag}-{i}", mac, ip),
            ))
        if s.take_home:
            self._calendar = SchoolCalendar.parse(s.school_hours, [s.days], [], ZoneInfo(s.timezone))
            for device in self.devices:
                device.announced = device.kind != "tablet" or self._calendar.in_school_hours(self.clock.now())
            task = asyncio.create_task(self._tablets_follow_school_hours())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await self.announcer.register([info for device in self.devices if device.announced for info in device.services])
        app = web.Application(client_max_size=16 * 1024)
        app.router.add_get("/faults", self._get_faults)
        app.router.add_post("/faults", self._post_faults)
        app.router.add_get("/state", self._get_state)
        self.control_url = await self._serve(app, s.control_port)
        for fault in s.faults:
            await self.set_fault(fault, True)
        log.info(
            "sim school started school=%s interface=%s devices=%d cabinets=%d aps=%d control=%s",
            tag, ip, len(self.devices), len(self.cabinets), len(self.aps), self.control_url,
        )

    async def _tablets_follow_school_hours(self) -> None:
        """Take-home tablets arrive when school begins and leave (mDNS goodbye) when it ends."""
        assert self._calendar is not None
        while True:
            # A minute of sim time, but at least 50 ms of real time however fast the clock runs.
            await asyncio.sleep(max(0.05, 60.0 / max(self.spec.speed, 1e-3)))
            at_school = self._calendar.in_school_hours(self.clock.now())
            tablets = [d for d in self.devices if d.kind == "tablet" and d.announced != at_school]
            if tablets:
                log.info("sim school=%s take-home tablets %s: %d", self.spec.school,
                         "arrive" if at_school else "go home", len(tablets))  # fmt: skip
            async with self._lock:
                for device in tablets:
                    await self._set_gone(device, not at_school)

    async def _add_receiver(self, index: int, name: str) -> None:
        listener = TcpListener(self.spec.interface)
        await listener.start()
        mac = self._mac("90:dd:5d").upper()
        self.devices.append(SimDevice(
            "receiver", index, name, f"mac:{mac.lower()}", "airplay",
            airplay_services(name, f"appletv-{self.spec.school}-{index}", mac, self.spec.interface, listener.port),
            listener,
        ))

    async def stop(self) -> None:
        """Goodbyes on mDNS, then close every server."""
        for task in list(self._tasks):
            task.cancel()
        await self.announcer.stop()
        for runner in self._runners:
            await runner.cleanup()
        for listener in [*self._ap_listeners.values(), self.gateway, self.dns]:
            await listener.stop()
        for device in self.devices:
            if device.listener is not None:
                await device.listener.stop()

    # -- faults -----------------------------------------------------------------------------------

    def _on_fault(self, fault: str, active: bool) -> None:
        log.info("sim fault school=%s fault=%s active=%s", self.spec.school, fault, active)

    async def set_fault(self, fault: str, active: bool, count: int = 5000) -> None:
        """Switch a fault and make the network follow (listeners, mDNS goodbyes)."""
        name, index = parse_fault(fault)
        if name == "controller-sessions-expire":
            if active and self.unifi is not None:
                self.unifi.expire_sessions()
            return
        if name == "flood":
            if active:
                # One-shot and slow (seconds): run it beside the control request, keep a reference.
                task = asyncio.create_task(send_flood(self.spec.interface, count, seed=self._rng.randrange(1 << 30)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return
        async with self._lock:
            self.faults.set(fault, active)
            if name == "ap-down" and index in self._ap_listeners:
                listener = self._ap_listeners[index]
                await (listener.stop() if active else listener.start())
            elif name in ("receiver-gone", "printer-gone", "mac-gone"):
                kind = {"receiver-gone": "receiver", "printer-gone": "printer", "mac-gone": "mac"}[name]
                for device in self.devices:
                    if device.kind == kind and device.index == index:
                        await self._set_gone(device, active)
            elif name == "receiver-unplugged":
                # No goodbye: its mDNS records stay in every cache for up to their TTL.
                for device in self.devices:
                    if device.kind == "receiver" and device.index == index and device.listener:
                        await (device.listener.stop() if active else device.listener.start())
            elif name == "gateway-down":
                await (self.gateway.stop() if active else self.gateway.start())
            elif name == "dns-down":
                await (self.dns.stop() if active else self.dns.start())

    async def _set_gone(self, device: SimDevice, gone: bool) -> None:
        if gone and device.announced:
            await self.announcer.unregister(device.services)
            device.announced = False
            if device.listener:
                await device.listener.stop()
        elif not gone and not device.announced:
            if device.listener:
                await device.listener.start()
            await self.announcer.register(device.services)
            device.announced = True

    # -- control API ------------------------------------------------------------------------------

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": self.faults.list()})

    async def _post_faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("fault"), str):
            return web.json_response({"error": 'expected {"fault": "...", "active": true}'}, status=400)
        active = body.get("active", True)
        count = body.get("count", 5000)
        if not isinstance(active, bool) or isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return web.json_response({"error": "active must be a boolean, count a non-negative integer"}, status=400)
        try:
            await self.set_fault(body["fault"], active, min(count, 100_000))
        except FaultError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"faults": self.faults.list()})

    async def _get_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    def state(self) -> dict[str, Any]:
        """What the sim runs and what the agent should find (expected ids and classes)."""
        return {
            "school": self.spec.school,
            "interface": self.spec.interface,
            "control": self.control_url,
            "controller": self.controller_url,
            "faults": self.faults.list(),
            "sim_time": self.clock.now().isoformat(),
            "devices": [
                {"kind": d.kind, "index": d.index, "name": d.name, "id": d.expected_id, "class": d.expected_class,
                 "announced": d.announced}
                for d in self.devices
            ],
            "cabinets": [
                {"index": c.index, "id": str(c.index), "name": c.name, "kind": c.kind, "model": c.model,
                 "channel": c.meter_model.channel, "url": self.meter_urls[c.index]}
                for c in self.cabinets
            ],
            "aps": [{"index": a.index, "name": a.name, "mac": a.mac, "port": self._ap_listeners[a.index].port}
                    for a in self.aps],
        }

    # -- the agent's side -------------------------------------------------------------------------

    def agent_config(self) -> str:
        """The agent's [discovery], [wlan] and [cabinets] sections for this school."""
        s = self.spec
        interval = s.agent_interval_s
        wlan: dict[str, Any] = {
            "interval": interval,
            "probe_timeout": 2.0,
            "gateway": {"name": "Gateway", "host": s.interface, "port": self.gateway.port},
            "dns": {"name": "DNS", "host": s.interface, "port": self.dns.port},
        }
        if s.central_url:
            wlan["central"] = {"name": "Central", "url": s.central_url.rstrip("/") + "/healthz"}
        return agent_config.render(
            school=s.school,
            discovery={
                "interfaces": [s.agent_interface or s.interface],
                "interval": min(interval, 5.0),
                "missing_after": s.missing_after,
                "timezone": s.timezone,
                "tablets_go_home": s.take_home or None,
                "school_hours": s.school_hours if s.take_home else None,
                "school_days": [s.days] if s.take_home else None,
            },
            wlan=wlan,
            controller={
                "kind": "unifi", "name": "UniFi", "url": self.controller_url, "username": "schulwart",
                "password": self.controller_password, "site": "default", "style": "auto",
            },
            aps=[
                {"name": ap.name, "host": s.interface, "port": self._ap_listeners[ap.index].port, "mac": ap.mac}
                for ap in self.aps
            ],
            cabinets={"interval": interval, "timezone": s.timezone},
            cabinet_list=[
                (
                    {"id": str(c.index), "name": c.name, "room": c.room, "slots": c.slots, "window": s.window,
                     "days": s.days},
                    {"kind": c.kind, "url": self.meter_urls[c.index], "channel": c.meter_model.channel,
                     "password": c.password},
                )
                for c in self.cabinets
            ],
        )

    def write_state(self, path: Path) -> None:
        """The sim's state as JSON (control URL, expected devices) for scripts and tests."""
        path.write_text(json.dumps(self.state(), indent=2))
