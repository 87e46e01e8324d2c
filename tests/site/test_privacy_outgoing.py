"""What leaves the school carries no raw name, hostname or MAC (issue #12 item 6).

Every incident-producing rule of the site monitors runs with ``share_names = false``: the WLAN
monitor (probes of every kind, the controller, APs and a console) and the cabinet monitor against
the simulated school over real HTTP, the discovery presence rules on devices with pupils' names.
Their signals go through the real incident engine into the real outbox, beside the snapshot
and device events; then every outgoing event (as the sync would send it) is searched for every
raw name, hostname and MAC the test used, in every spelling.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.incidents.engine import IncidentEngine
from agent.monitors.cabinets.meters import MeterReading
from agent.monitors.cabinets.monitor import CabinetMonitor
from agent.monitors.cabinets.rules import CabinetState, evaluate
from agent.monitors.discovery.presence import NotSeenList, missing_signal
from agent.monitors.interface import Device, DeviceChange, Signal
from agent.monitors.wlan.monitor import WlanMonitor
from agent.privacy import Privacy
from agent.store import Store
from agent.store.outbox import Outbox
from base.agentconfig.cabinets import CabinetConfig, MeterSpec, parse_cabinets
from base.agentconfig.window import parse_window
from base.agentconfig.wlan import parse_wlan
from base.clock import FakeClock
from protocol.events import HealthSnapshot

BERLIN = ZoneInfo("Europe/Berlin")
OTHER_MAC = "AA-BB-CC-11-22-33"
TABLET_MAC = "a4:83:e7:0a:0b:0c"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spellings(mac: str) -> set[str]:
    """A MAC as colons, dashes or bare hex, in both cases."""
    hexes = mac.replace(":", "").replace("-", "").lower()
    pairs = [hexes[i:i + 2] for i in range(0, 12, 2)]
    forms = {":".join(pairs), "-".join(pairs), hexes}
    return forms | {f.upper() for f in forms}


async def test_no_raw_identifier_leaves_the_school(  # type: ignore[no-untyped-def]
    sim_factory, tag: str, tmp_path: Path
) -> None:
    sim = await sim_factory(school=tag, devices=12, receivers=0, printers=0, aps=2, console_aps=1, cabinets=4,
                            window="00:00-00:00", days="all",
                            meter_models=["shelly-plus-plug-s", "shelly-plus-1", "tasmota-2ch", "shelly-plug-s"])
    clock = FakeClock()
    store = Store.open(tmp_path)
    outbox = Outbox(store, clock)
    privacy = Privacy(b"p" * 32, share_names=False)
    engine = IncidentEngine(store, outbox, privacy, clock, open_after=1, resolve_after=1, school=tag)
    signals: list[Signal] = []

    # -- WLAN: every kind of probe target, the controller, an AP and a console ---------------------
    ap1, console = sim.aps
    state = sim.state()
    ap_port = {a["index"]: a["port"] for a in state["aps"]}
    wlan_names = {
        "AP Klasse Finn": ap1.mac, "Mesh Aula Mia": console.mac,
    }
    wlan = parse_wlan({"wlan": {
        "interval": 1, "probe_timeout": 1,
        "gateway": {"host": "gw-finn.invalid", "port": 53},
        "dns": {"name": "DNS Hausmeister Paul", "host": "127.0.0.1", "port": closed_port()},
        "internet": f"http://127.0.0.1:{closed_port()}/lena",
        "central": {"name": "Zentrale Ben", "url": f"http://127.0.0.1:{closed_port()}/"},
        "aps": [{"name": name, "host": "127.0.0.1", "port": ap_port[i], "mac": mac}
                for i, (name, mac) in enumerate(wlan_names.items(), 1)],
        "probes": [{"name": "Drucker Emma", "host": "127.0.0.1", "port": closed_port(), "mac": OTHER_MAC}],
        "controller": {"url": sim.controller_url, "username": "schulwart", "password": sim.controller_password,
                       "name": "Controller Jonas", "timeout": 5},
    }})
    monitor = WlanMonitor(wlan, school=tag)
    sections: dict[str, Any] = {}
    try:
        await sim.set_fault("ap-down:1", True)
        await sim.set_fault("ap-overloaded:2", True)
        for _ in range(3):
            report = await monitor.collect(clock.now())
            signals += report.signals
        await sim.set_fault("ap-down:1", False)  # answers again: 3 of 4 probes lost → degraded
        report = await monitor.collect(clock.now())
        signals += report.signals
        sections["wlan"] = report.snapshot
        await sim.set_fault("controller-down", True)
        signals += (await monitor.collect(clock.now())).signals
    finally:
        await monitor.stop()

    # -- Cabinets: the monitor against the sim's meters, and the rule that needs the window's end -----
    cabinet_names = {c["index"]: f"Ladeschrank von Lea {c['index']}" for c in state["cabinets"]}
    cabinets = CabinetMonitor(parse_cabinets({"cabinets": {"cabinet": [
        {"id": f"lea-{c['index']}", "name": cabinet_names[c["index"]], "window": "00:00-00:00", "days": "all",
         "meter": {"kind": c["kind"], "url": c["url"], "channel": c["channel"], "timeout": 2}}
        for c in state["cabinets"]
    ]}}), school=tag)
    try:
        for fault in ("cabinet-no-power:1", "cabinet-overtemp:1", "cabinet-switched-off:3", "meter-down:4"):
            await sim.set_fault(fault, True)
        report = await cabinets.collect(datetime.now(UTC))
        signals += report.signals
        sections["cabinets"] = report.snapshot
    finally:
        await cabinets.stop()
    late = CabinetConfig(id="elias-1", name="Schrank Elias", meter=MeterSpec("shelly-gen2", "http://x"),
                         window=parse_window("15:00-07:00"), room="Raum 3")
    signals += evaluate(late, MeterReading(250.0, switch_on=True), None,
                        datetime(2025, 3, 4, 7, 30, tzinfo=BERLIN), BERLIN, CabinetState())

    # -- Discovery: a receiver gone missing, tablets not seen for days ----------------------------------
    now = clock.now()
    old = now - timedelta(days=9)
    receiver = Device(id="mac:90:dd:5d:8b:4c:23", device_class="airplay", name="Apple TV Klasse Sofia",
                      model="AppleTV6,2", addresses=("10.0.0.7",), services=("_airplay._tcp.local.",),
                      first_seen=old, last_seen=old, state="missing")
    tablet = Device(id=f"mac:{TABLET_MAC}", device_class="tablet", name="Noahs iPad",
                    model="iPad13,4", addresses=("10.0.0.8",), services=("_apple-mobdev2._tcp.local.",),
                    first_seen=old, last_seen=old, state="absent", properties={"host": "Noahs-iPad.local."})
    signals.append(missing_signal(receiver, True, now, old))
    signals.append(NotSeenList(timedelta(days=7), datetime.min.time(), BERLIN).evaluate([tablet], now))

    # -- into the engine and the outbox ---------------------------------------------------------------
    engine.observe([s for s in signals if s.bad])
    outbox.add_event(HealthSnapshot(sections=privacy.snapshot(sections)))
    for device in (receiver, tablet):
        outbox.add_event(privacy.device_event(DeviceChange("seen", device)))

    opened = {s.key.split(":")[0] for s in signals if s.bad}
    assert opened >= {
        "ap-down", "ap-degraded", "gateway-unreachable", "dns-unreachable", "internet-unreachable",
        "central-unreachable", "probe-failed", "controller-unreachable", "cabinet-no-power",
        "cabinet-switched-off", "cabinet-meter-unreachable", "cabinet-meter-unreadable",
        "cabinet-over-temperature", "cabinet-still-charging", "device-missing", "tablets-not-seen",
    }, "every incident-producing rule must have run bad"

    events = [e.to_wire() for e in outbox.batch(1, 100_000, 1 << 30)]
    state_incidents = [engine.wire(i) for i in engine.open_incidents()]  # what the state payload carries
    text = json.dumps([events, state_incidents], ensure_ascii=False)
    raw: set[str] = {
        *wlan_names, ap1.name, console.name, "gw-finn.invalid", "DNS Hausmeister Paul", "Zentrale Ben",
        "Drucker Emma", "Controller Jonas", "/lena", *cabinet_names.values(), "lea-1", "Schrank Elias",
        "elias-1", "Apple TV Klasse Sofia", "Noahs iPad", "Noahs-iPad",
    }
    for mac in (ap1.mac, console.mac, OTHER_MAC, TABLET_MAC, "90:dd:5d:8b:4c:23"):
        raw |= spellings(mac)
    leaked = sorted(r for r in raw if r in text)
    assert not leaked, f"raw identifiers in outgoing events: {leaked}"

    # One thing, one pseudonym: the AP incident's key, subject and snapshot id agree.
    wire = state_incidents
    down = next(i for i in wire if i["subject"] == privacy.device_id(ap1.mac) and i["key"].startswith("ap-down"))
    assert down["key"] == f"ap-down:{privacy.device_id(ap1.mac)}"
    snapshot_ids = {ap["id"] for ap in privacy.snapshot(sections)["wlan"]["aps"]}
    assert down["subject"] in snapshot_ids
    cabinet_incident = next(i for i in wire if i["key"].startswith("cabinet-no-power"))
    assert cabinet_incident["subject"] in privacy.snapshot(sections)["cabinets"]["cabinets"]
    store.close()
