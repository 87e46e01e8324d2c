"""Central's signed configuration reaches a running agent over real sockets and changes what it does.

Central runs in-process on 127.0.0.1 over its SQLite file; staff change a school's layer with the
real `schulwart-central config set` command; the agent (built and run as `schulwart-agent run`
does) polls a simulated Shelly meter that reads 0 W. Outside the charging window that is fine;
once central moves the window over "now", the same running agent opens "no power".
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.config import layer_config, parse_config
from agent.enroll import enroll
from agent.identity import load_agent_key, load_identity
from agent.status import status_info
from agent.store import Store
from agent.store.outbox import Outbox
from agent.sync.client import Reconfiguration, StateParts, SyncClient
from agent.sync.transport import AiohttpTransport
from agent.wiring import build_agent
from base.agentconfig.window import parse_window
from base.clock import SystemClock
from central.config import load_config
from central.enrollment import create_code, hash_secret
from central.keystore import load_keystore
from central.storage import open_store
from central.storage.interface import Storage
from central.web.app import create_app, start
from protocol.envelope import sign
from protocol.httpsig import sign_request
from protocol.keys import generate_private_key
from protocol.schema import CONFIG_TYPE, build_config_payload
from sim.faults import FaultBoard
from sim.meters import CabinetModel, MeterServer
from sim.simtime import SimClock

BERLIN = ZoneInfo("Europe/Berlin")
CENTRAL_CLI = str(Path(sys.executable).parent / "schulwart-central")
pytestmark = pytest.mark.timeout(120)


@dataclass
class Central:
    url: str
    data_dir: Path
    store: Storage
    token: str

    def config_set(self, school: str, toml: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CENTRAL_CLI, "config", "set", "--school", school, "--data-dir", str(self.data_dir)],
            input=toml, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    async def school(self, school: str) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(
            f"{self.url}/v1/schools/{school}", headers={"Authorization": f"Bearer {self.token}"}
        ) as resp:
            assert resp.status == 200
            body: dict[str, Any] = await resp.json()
            return body


@pytest.fixture
async def central(tmp_path: Path) -> AsyncIterator[Central]:
    config = load_config(None, tmp_path / "central")
    config.data_dir.mkdir(mode=0o700)
    store = await open_store(config)
    await store.add_school("gs-nord", "GS Nord", "Kreis A", "2026-01-01T00:00:00.000000Z")
    token = "t" * 40
    await store.add_api_token(hash_secret(token), "tests", None, "2026-01-01T00:00:00.000000Z")
    keys = load_keystore(config.data_dir)
    app = create_app(config, store, keys, silence_monitor=False)
    runner, url = await start(app, "127.0.0.1", 0)
    yield Central(url, config.data_dir, store, token)
    await runner.cleanup()
    await store.close()


@pytest.fixture
async def meter() -> AsyncIterator[tuple[str, FaultBoard]]:
    """A simulated Shelly Plus Plug S (Gen2 RPC) and the board that trips its cabinet's breaker."""
    faults = FaultBoard()
    cabinet = CabinetModel(1, "Ladeschrank 1", "Raum 12", 24, parse_window("15:00-07:00"), "shelly-gen2",
                           "c4:5b:be:01:02:03")  # fmt: skip
    server = TestServer(MeterServer(cabinet, SimClock(datetime.now(BERLIN), speed=0.0), faults).app,
                        host="127.0.0.1")  # fmt: skip
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), faults
    await server.close()


def _window(start: timedelta, end: timedelta) -> str:
    now = datetime.now(BERLIN)
    return f"{(now + start):%H:%M}-{(now + end):%H:%M}"


async def _until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)


async def test_a_window_changed_at_central_changes_the_running_agent(
    central: Central, meter: tuple[str, FaultBoard], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    meter_url, faults = meter
    data_dir = tmp_path / "agent"
    keys = load_keystore(central.data_dir)
    code = await create_code(central.store, "gs-nord", timedelta(hours=1), datetime.now(BERLIN), keys)
    await enroll(central.url, code, data_dir, SystemClock())
    local_doc = {
        "discovery": {"enabled": False},
        "sync": {"report_interval": 0.2, "config_interval": 0.2, "max_bytes_per_s": 0},
        "host": {"interval": 30},
        # The school's own hysteresis: central's differs, so this key is an override.
        "incidents": {"open_after": 1, "resolve_after": 1},
        "cabinets": {
            "interval": 0.2,
            "days": "all",
            "cabinet": [{"id": "1", "name": "Ladeschrank 1", "meter": {"url": meter_url, "timeout": 2}}],
        },
    }
    outside = _window(timedelta(hours=2), timedelta(hours=3))
    first = central.config_set("gs-nord", f'[cabinets]\nwindow = "{outside}"\n[incidents]\nopen_after = 5\n')
    assert first.returncode == 0, first.stderr
    agent = build_agent(parse_config(local_doc), data_dir, SystemClock(), listen="127.0.0.1:0",
                        local_doc=local_doc, source="agent.toml")  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))

    async def runs(layer: str) -> bool:  # the version central says the agent runs: config_version 1 + the layer's
        agents = (await central.school("gs-nord"))["agents"]
        return bool(agents[0]["config_version"] == 1 + int(layer))

    async def no_power() -> list[dict[str, Any]]:
        incidents = (await central.school("gs-nord"))["incidents"]
        return [i for i in incidents if i["key"].startswith("cabinet-no-power") and i["state"] == "open"]

    try:
        await _until(lambda: runs(first.stdout))
        faults.set("cabinet-no-power:1", True)  # the breaker trips: 0 W from now on
        await asyncio.sleep(1.5)  # several meter rounds at 0 W, outside central's window: nothing opens
        assert await no_power() == []
        # The school's own hysteresis wins over central's, and central shows the deviation.
        detail = await central.school("gs-nord")
        assert detail["agents"][0]["config_overrides"] == ["incidents.open_after"]
        assert detail["config"] == {"version": 1 + int(first.stdout), "overrides": ["incidents.open_after"]}

        inside = _window(-timedelta(hours=1), timedelta(hours=1))
        second = central.config_set("gs-nord", f'[cabinets]\nwindow = "{inside}"\n[incidents]\nopen_after = 5\n')
        assert second.returncode == 0, second.stderr
        (opened,) = await _until(no_power)  # opened after one round: the local open_after = 1 is in force
        assert opened["severity"] == "critical"
        assert not task.done(), "the agent kept running: no restart"
        assert "monitor=cabinets restarted with the new configuration" in caplog.text
        await _until(lambda: runs(second.stdout))
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) is True


async def test_config_set_refuses_a_bad_key_in_one_line_and_stores_nothing(central: Central) -> None:
    refused = central.config_set("gs-nord", '[cabinets]\nwindow = "late"\n')
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "[cabinets] window" in refused.stderr, refused.stderr
    for toml, key in (("[sync]\nreport_interval = 1\n", "sync"), ("[cabinets]\nintervall = 5\n", "intervall"),
                      ("[host]\ndisk_max_percent = 120\n", "disk_max_percent"), ("[cabinets\n", "TOML")):  # fmt: skip
        out = central.config_set("gs-nord", toml)
        assert out.returncode == 2 and key in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert await central.store.config_history(None) == []
    unknown = central.config_set("gs-sued", "[privacy]\nshare_names = true\n")
    assert unknown.returncode == 2 and "gs-sued" in unknown.stderr


@dataclass
class Replayer:
    """A central-impostor on the path: answers the config route with whatever envelope it is given."""

    envelope: bytes = b""

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(body=self.envelope, content_type="application/json")


async def test_older_replayed_and_foreign_configs_are_refused_with_a_logged_reason(
    central: Central, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.sync.client")
    data_dir = tmp_path / "agent"
    keys = load_keystore(central.data_dir)
    code = await create_code(central.store, "gs-nord", timedelta(hours=1), datetime.now(BERLIN), keys)
    await enroll(central.url, code, data_dir, SystemClock())
    store = Store.open(data_dir)
    identity = load_identity(store)
    assert identity is not None
    key = load_agent_key(data_dir, identity)

    async def fetch() -> bytes:  # the envelope central signs for this agent now, fetched as the agent does
        path = f"/v1/agents/{identity.agent_id}/config"
        headers = sign_request("GET", path, int(datetime.now(BERLIN).timestamp()), key)
        async with aiohttp.ClientSession() as session, session.get(central.url + path, headers=headers) as resp:
            assert resp.status == 200
            return await resp.read()

    assert central.config_set("gs-nord", '[cabinets]\nwindow = "16:00-06:00"\n').returncode == 0
    old = await fetch()
    assert central.config_set("gs-nord", '[cabinets]\nwindow = "17:00-06:00"\n').returncode == 0
    new = await fetch()

    replayer = Replayer()
    app = web.Application()
    app.router.add_get("/v1/agents/{agent_id}/config", replayer.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    applied: list[Any] = []

    def configure(sections: Any) -> Reconfiguration:
        layered = layer_config({}, sections)

        async def apply() -> None:
            applied.append(layered.config.cabinets.window)

        return Reconfiguration(layered.overrides, apply)

    client = SyncClient(
        store, Outbox(store, SystemClock()), identity, key, parse_config({}).sync, SystemClock(),
        transport=AiohttpTransport(str(server.make_url("")).rstrip("/"), SystemClock(), user_agent="t", timeout=5),
        state=lambda: StateParts((), None, ()), configure=configure,
    )  # fmt: skip
    try:
        replayer.envelope = new
        await client.fetch_config()
        held = store.get_setting("central_config")
        assert applied == ["17:00-06:00"] and held["settings"]["sections"]["cabinets"]["window"] == "17:00-06:00"

        replayer.envelope = old  # a rollback: the older version, signed by central, replayed
        await client.fetch_config()
        assert f"config version {held['version'] - 1} refused: older than version {held['version']} held (rollback)" \
            in caplog.text  # fmt: skip

        # The same version signed before the copy held (its issued_at is older): a replay.
        earlier = build_config_payload(identity.agent_id, held["version"], "2020-01-01T00:00:00Z",
                                       {"sections": {"cabinets": {"window": "08:00-09:00"}}})  # fmt: skip
        replayer.envelope = sign(earlier, CONFIG_TYPE, keys.config_key)
        await client.fetch_config()
        assert "a replay" in caplog.text

        # A newer version signed by a key that is not central's configuration key.
        forged = build_config_payload(identity.agent_id, held["version"] + 10, datetime.now(BERLIN),
                                      {"sections": {"cabinets": {"window": "08:00-09:00"}}})  # fmt: skip
        replayer.envelope = sign(forged, CONFIG_TYPE, generate_private_key())
        await client.fetch_config()
        assert "config refused (unknown_key)" in caplog.text
        # Not even central's token-issuer key may sign configuration.
        replayer.envelope = sign(forged, CONFIG_TYPE, keys.token_key)
        await client.fetch_config()
        assert caplog.text.count("config refused (unknown_key)") == 2

        assert applied == ["17:00-06:00"], "nothing refused was applied"
        assert store.get_setting("central_config") == held, "nothing refused was stored"
        shown = status_info(data_dir, store)["central_config"]
        assert shown == {"version": held["version"], "issued_at": held["issued_at"], "sections": ["cabinets"]}
    finally:
        await client._transport.aclose()
        await server.close()
        store.close()
