"""A real central process filled over HTTP with a week of signed reports from four schools.

Schools (carrier in brackets):
* ``gs-lindenweg`` (Kreis B): cabinet over temperature (critical, acknowledged on site with a
  note), and its cabinet had no power in the window last night;
* ``gs-am-park`` (Kreis A): an access point down (warning);
* ``gs-nord`` (Kreis A): all well, 3 tablets not seen for 20 days;
* ``xss`` (Kreis A): a school, device model and incident subject named with script payloads;
* ``gs-neu`` (Kreis B): no agent yet.
Incidents carry ``code`` and ``params``, so their titles render in German.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.envelope import sign
from protocol.keys import generate_private_key, public_key_b64
from protocol.schema import REPORT_TYPE, build_report, make_event
from tests.agent.procs import CENTRAL, Proc

BERLIN = ZoneInfo("Europe/Berlin")
PASSWORD = "richtig-geheim-42"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
SCHOOLS = [
    ("gs-lindenweg", "GS Lindenweg", "Kreis B"),
    ("gs-am-park", "GS Am Park", "Kreis A"),
    ("gs-nord", "GS Nord", "Kreis A"),
    ("xss", f"GS {XSS}", "Kreis A"),
    ("gs-neu", "GS Neu", "Kreis B"),
]


@dataclass
class World:
    """The running central and what the tests log in with."""

    url: str
    data_dir: Path
    proc: Proc
    agents: dict[str, str] = field(default_factory=dict)  # school -> agent id

    def close(self) -> None:
        self.proc.terminate()


def cli(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    """Run schulwart-central; its stdout (raises with stderr on failure)."""
    done = subprocess.run(
        [CENTRAL, *args, "--data-dir", str(data_dir)], input=stdin, capture_output=True, text=True, timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args}: {done.stderr}")
    return done.stdout.strip()


def post(url: str, body: bytes | dict[str, Any]) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _cabinets(power: float, in_window: bool, name: str, room: str) -> dict[str, Any]:
    cabinet = {"name": name, "room": room, "slots": 32, "meter": "shelly", "in_window": in_window, "ok": True,
               "power_w": power, "switch_on": True, "temperature_c": 31.0}  # fmt: skip
    return {"cabinets": {"cab-1": cabinet}}


def _week(now: datetime, dead_last_night: bool, name: str, room: str) -> list[tuple[datetime, dict[str, Any]]]:
    """Snapshots every 30 min over 7 days: window 18:00-06:00 local, charging ~400 W then ~40 W."""
    out = []
    start = (now - timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
    last_night = now.astimezone(BERLIN).date() - timedelta(days=1)  # the night shown first on the page
    moment = start
    while moment < now - timedelta(minutes=5):
        local = moment.astimezone(BERLIN)
        in_window = local.hour >= 18 or local.hour < 6
        night = (local - timedelta(hours=12)).date()
        if in_window:
            hours_in = (local.hour - 18) % 24
            power = 420.0 if hours_in < 3 else 38.0
            if dead_last_night and night == last_night:
                power = 0.3
        else:
            power = 2.5
        out.append((moment, {"cabinets": _cabinets(power, in_window, name, room)}))
        moment += timedelta(minutes=30)
    return out


def _current(aps: list[dict[str, Any]], cabinets: dict[str, Any]) -> dict[str, Any]:
    return {
        "wlan": {"aps": aps},
        "cabinets": cabinets,
        "host": {"root": {"path": "/", "percent": 41.0, "free_bytes": 52_000_000_000, "total_bytes": 90_000_000_000},
                 "memory_available_percent": 63.0, "load": [0.4, 0.3, 0.2], "cpu_count": 4, "uptime_s": 3971849},
        "outbox": {"last_seq": 400, "acked_seq": 390, "depth": 10, "oldest_unsent_age_s": 95},
    }  # fmt: skip


def _events(school_id: str, now: datetime) -> list[tuple[datetime, str, dict[str, Any]]]:
    events: list[tuple[datetime, str, dict[str, Any]]] = []
    cab_name, room = ("Schrank 1", "Raum 104") if school_id == "gs-lindenweg" else ("Wagen A", "Flur")
    for at, data in _week(now, school_id == "gs-lindenweg", cab_name, room):
        events.append((at, "health.snapshot", data))
    for n in range(20):
        model = XSS if school_id == "xss" and n == 0 else "iPad (9th generation)"
        events.append((now - timedelta(minutes=30), "device.seen", {"id": f"d-{school_id[:8]}{n:024d}"[:34],
                                                                    "class": "tablet", "model": model}))  # fmt: skip
    if school_id == "gs-nord":
        for n in range(3):
            events.append((now - timedelta(days=20), "device.seen",
                           {"id": f"d-old{n:029d}", "class": "tablet", "model": "iPad (8th generation)"}))  # fmt: skip
    aps = [{"id": "ap1", "name": "AP-Aula", "state": "connected", "num_sta": 23, "uptime_s": 86400 * 12}]
    if school_id == "gs-am-park":
        aps.append({"id": "ap2", "name": "AP-Flur-2", "state": "disconnected", "num_sta": None, "uptime_s": None})
        events.append((now - timedelta(hours=3), "incident.opened", {
            "id": "inc-ap", "key": "ap-down:ap2", "category": "wlan", "severity": "warning",
            "title": "Access point AP-Flur-2 down (controller: disconnected)", "subject": "AP-Flur-2",
            "code": "wlan.ap_down", "params": {"name": "AP-Flur-2", "state": "disconnected"}}))  # fmt: skip
    if school_id == "gs-lindenweg":
        events.append((now - timedelta(hours=5), "incident.opened", {
            "id": "inc-hot", "key": "cabinet-over-temperature:cab-1", "category": "cabinet", "severity": "critical",
            "title": "Cabinet Schrank 1 (Raum 104) over temperature (48.5 °C)", "subject": "Schrank 1",
            "code": "cabinet.over_temperature",
            "params": {"cabinet": "Schrank 1 (Raum 104)", "temperature_c": 48.5}}))  # fmt: skip
        events.append((now - timedelta(hours=4), "incident.acknowledged", {"id": "inc-hot", "by": "A. Weber"}))
        events.append((now - timedelta(hours=4), "note.added",
                       {"id": "inc-hot", "by": "A. Weber", "text": "Lüfter dreht nicht, Ersatz bestellt"}))  # fmt: skip
        events.append((now - timedelta(hours=6), "incident.opened", {
            "id": "inc-old", "key": "cabinet-no-power:cab-1", "category": "cabinet", "severity": "critical",
            "title": "Cabinet Schrank 1 (Raum 104) has no power during its charging window (0.3 W)",
            "subject": "Schrank 1", "code": "cabinet.no_power",
            "params": {"cabinet": "Schrank 1 (Raum 104)", "power_w": 0.3}}))  # fmt: skip
        events.append((now - timedelta(hours=5, minutes=30), "incident.resolved", {"id": "inc-old"}))
    if school_id == "xss":
        events.append((now - timedelta(hours=1), "incident.opened", {
            "id": "inc-xss", "key": "device-missing:x", "category": "device", "severity": "warning",
            "title": f"Printer {XSS} missing", "subject": XSS}))  # fmt: skip
    events.append((now - timedelta(minutes=2), "health.snapshot", _current(aps, _cabinets(2.5, False, cab_name, room))))
    events.sort(key=lambda e: e[0])
    return events


def _enroll(url: str, data_dir: Path, school_id: str) -> tuple[str, Ed25519PrivateKey]:
    code = cli(data_dir, "enroll-code", "--school", school_id)
    key = generate_private_key()
    enrollment = {"code": code, "public_key": public_key_b64(key), "hostname": f"srv-{school_id[:10]}",
                  "agent_version": "0.1.0"}  # fmt: skip
    status, body = post(f"{url}/v1/enroll", enrollment)
    assert status == 201, body
    return str(body["agent_id"]), key


def start_world(base: Path) -> World:
    """Central with schools, users (``hotline`` admin, ``kreis-a`` carrier user), agents and a week of data."""
    data_dir = base / "central"
    for school_id, name, carrier in SCHOOLS:
        cli(data_dir, "school", "add", "--id", school_id, "--name", name, "--carrier", carrier)
    cli(data_dir, "user", "add", "--name", "hotline", "--role", "admin", stdin=PASSWORD + "\n")
    cli(data_dir, "user", "add", "--name", "kreis-a", "--role", "carrier:Kreis A", stdin=PASSWORD + "\n")
    proc = Proc([CENTRAL, "serve", "--port", "0", "--data-dir", str(data_dir)], base / "central.log")
    world = World(f"http://127.0.0.1:{proc.wait_listening()}", data_dir, proc)
    now = datetime.now(UTC)
    for school_id, _, _ in SCHOOLS:
        if school_id == "gs-neu":
            continue
        agent_id, key = _enroll(world.url, data_dir, school_id)
        world.agents[school_id] = agent_id
        events = [make_event(seq, at, kind, data) for seq, (at, kind, data) in enumerate(_events(school_id, now), 1)]
        for first in range(0, len(events), 400):
            batch = events[first : first + 400]
            body = sign(build_report(agent_id, school_id, batch, now), REPORT_TYPE, key)
            status, answer = post(f"{world.url}/v1/reports", body)
            assert status == 200, answer
    return world
