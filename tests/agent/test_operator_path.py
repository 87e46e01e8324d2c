"""Issue 14 on the agent, as real processes against a real central: the effective status (finding 6),
discovery's default interface (finding 7), the code's key pin and plain http (finding 8), one
formatter for local and remote output (finding 9), and --version from one place.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from agent.enroll import plain_http_outside_loopback
from agent.identity import KEY_FILE
from agent.monitors.discovery.config import parse_discovery
from agent.monitors.discovery.interfaces import choose_interfaces, host_interfaces
from agent.monitors.discovery.monitor import DiscoveryMonitor
from agent.store import Store
from agent.store.outbox import Outbox
from agent.sync.client import report_envelope
from base.cli import format_moment
from base.clock import FakeClock
from base.errors import ConfigError
from base.version import version
from protocol.envelope import verify
from protocol.keys import generate_private_key, keyid, public_key_b64
from protocol.schema import REPORT_TYPE, parse_report
from tests.agent.procs import AGENT, CENTRAL, Central, Proc, run, write_config

ROOT = Path(__file__).resolve().parents[2]
CODE_RE = re.compile(r"[A-Za-z0-9_-]{24}\.[A-Za-z0-9_-]{22}")


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Central]:
    c = Central(tmp_path)
    c.start()
    yield c
    if c.proc is not None:
        c.stop()


def _enrolled(central: Central, where: Path) -> Path:
    run([AGENT, "enroll", "--central", central.url, "--code", central.code(), "--data-dir", str(where)])
    return where


# ------------------------------------------------------------------ finding 6


def test_status_shows_the_central_url_in_use(central: Central, tmp_path: Path) -> None:
    data = _enrolled(central, tmp_path / "a")
    moved = write_config(tmp_path / "moved.toml", '[sync]\ncentral_url = "https://schulwart.kreis.example/"\n')
    info = json.loads(run([AGENT, "status", "--json", "--data-dir", str(data), "--config", str(moved)]).stdout)
    assert info["identity"]["central_url"] == "https://schulwart.kreis.example"
    assert info["identity"]["central_url_from"] == "config"
    assert info["identity"]["enrolled_central_url"] == central.url
    assert info["version"] == version()
    text = run([AGENT, "status", "--data-dir", str(data), "--config", str(moved)]).stdout
    assert "central    https://schulwart.kreis.example ([sync] central_url; enrolled at" in text
    plain = json.loads(run([AGENT, "status", "--json", "--data-dir", str(data)]).stdout)
    assert plain["identity"]["central_url"] == central.url and plain["identity"]["central_url_from"] == "enrollment"


# ------------------------------------------------------------------ finding 7


def _default_route_interface() -> str | None:
    """The default route's interface, read independently of the code under test (`ip route`)."""
    try:
        out = subprocess.run(["ip", "-4", "route", "show", "default"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    match = re.search(r"\bdev (\S+)", out.stdout)
    return match.group(1) if match else None


def test_discovery_listens_on_the_default_routes_interface_only(tmp_path: Path) -> None:
    name = _default_route_interface()
    if name is None:
        pytest.skip("this host has no default route")
    ours = next(i for i in host_interfaces() if i.name == name)
    choice = choose_interfaces(())
    assert choice.mode == "default-route" and choice.names == (name,) and choice.addresses == ours.ipv4
    assert "127.0.0.1" not in choice.addresses
    monitor = DiscoveryMonitor(parse_discovery({}))
    assert monitor.interfaces.addresses == ours.ipv4, "the default is no longer every interface"
    assert choose_interfaces(parse_discovery({"discovery": {"interfaces": ["all"]}}).interfaces).addresses == ()
    assert choose_interfaces(parse_discovery({"discovery": {"interfaces": ["lo"]}}).interfaces).names == ("lo",)
    with pytest.raises(ConfigError, match="alone"):
        parse_discovery({"discovery": {"interfaces": ["all", "lo"]}})


def test_status_lists_the_interfaces_discovery_ignores(central: Central, tmp_path: Path) -> None:
    if _default_route_interface() is None:
        pytest.skip("this host has no default route")
    data = _enrolled(central, tmp_path / "a")
    config = tmp_path / "agent.toml"
    config.write_text("")
    info = json.loads(run([AGENT, "status", "--json", "--data-dir", str(data), "--config", str(config)]).stdout)
    discovery = info["discovery"]
    assert discovery["mode"] == "default-route" and discovery["listening"] == [_default_route_interface()]
    assert "lo" in [i["name"] for i in discovery["ignored"]]
    text = run([AGENT, "status", "--data-dir", str(data), "--config", str(config)]).stdout
    assert "not listening on lo 127.0.0.1" in text


# ------------------------------------------------------------------ finding 8


@contextmanager
def key_swapping_proxy(target: str) -> Iterator[str]:
    """An HTTP server in front of central that hands the agent an attacker's keys in the enrollment answer."""
    started = threading.Event()
    holder: dict[str, object] = {}

    async def forward(request: web.Request) -> web.Response:
        headers = {"Content-Type": "application/json"}
        async with (
            ClientSession() as session,
            session.post(f"{target}/v1/enroll", data=await request.read(), headers=headers) as resp,
        ):
            body = await resp.json()
        body["central_public_key"] = public_key_b64(generate_private_key())
        body["token_public_key"] = public_key_b64(generate_private_key())
        return web.json_response(body, status=resp.status)

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/v1/enroll", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
        holder["stop"] = asyncio.Event()
        started.set()
        await holder["stop"].wait()  # type: ignore[attr-defined]
        await runner.cleanup()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield str(holder["url"])
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)  # type: ignore[attr-defined]
        thread.join(10)


def test_an_answer_with_other_keys_than_the_codes_pin_is_refused(central: Central, tmp_path: Path) -> None:
    code = central.code()
    assert CODE_RE.fullmatch(code), code
    data = tmp_path / "a"
    with key_swapping_proxy(central.url) as proxy:
        out = run([AGENT, "enroll", "--central", proxy, "--code", code, "--data-dir", str(data)], check=False)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "do not match the pin" in out.stderr
    assert not data.exists(), "nothing may be written from an answer that failed the pin"
    bare = run([AGENT, "enroll", "--central", central.url, "--code", code.partition(".")[0], "--data-dir",
                str(data)], check=False)  # fmt: skip
    assert bare.returncode == 2 and "carries no pin" in bare.stderr and not data.exists()
    good = run([AGENT, "enroll", "--central", central.url, "--code", central.code(), "--data-dir", str(data)])
    assert "warning" not in good.stderr  # plain http to loopback: nothing crosses a network
    assert (data / KEY_FILE).exists()


def test_plain_http_outside_loopback_is_warned_about(tmp_path: Path) -> None:
    assert plain_http_outside_loopback("http://10.1.2.3:8400")
    assert plain_http_outside_loopback("http://central.kreis.example")
    assert not plain_http_outside_loopback("http://127.0.0.1:8400")
    assert not plain_http_outside_loopback("http://[::1]:8400")
    assert not plain_http_outside_loopback("http://localhost:8400")
    assert not plain_http_outside_loopback("https://central.kreis.example")
    fast = write_config(tmp_path / "fast.toml", "[sync]\nrequest_timeout = 1\n")
    out = run([AGENT, "enroll", "--central", "http://203.0.113.7:9", "--code", "x" * 24 + "." + "A" * 22,
               "--data-dir", str(tmp_path / "a"), "--config", str(fast)], check=False)  # fmt: skip
    lines = out.stderr.splitlines()
    assert out.returncode == 2 and lines[0].startswith("warning: http://203.0.113.7:9 is plain http"), out.stderr
    assert len(lines) == 2 and lines[1].startswith("schulwart-agent: error: ")  # unreachable, or a proxy's refusal


# ------------------------------------------------------------------ finding 9


def _add_device(data: Path, name: str, last_seen: str) -> None:
    store = Store.open(data)
    try:
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO inventory (id, device_class, name, model, addresses, services, first_seen, last_seen,"
                " state, properties) VALUES (?, 'tablet', ?, 'iPad13,4', '[\"10.0.0.7\"]', '[]', ?, ?, 'present',"
                " '{}')",
                ("dev-1", name, last_seen, last_seen),
            )
    finally:
        store.close()


def _table_rows(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line) for line in text.splitlines()]


def test_local_and_remote_output_share_one_formatter(central: Central, tmp_path: Path) -> None:
    data = _enrolled(central, tmp_path / "a")
    seen = "2026-11-30T08:36:03.920049Z"
    _add_device(data, "Lenas iPad\nFAKE  ROW", seen)
    config = write_config(tmp_path / "agent.toml", '[api]\nlisten = "127.0.0.1:0"\n')
    agent = Proc([AGENT, "run", "--data-dir", str(data), "--config", str(config)], tmp_path / "agent.log")
    try:
        url = f"http://127.0.0.1:{agent.wait_listening()}"
        remote = ["--url", url, "--token-file", str(data / "admin-token")]
        local_devices = run([AGENT, "devices", "--data-dir", str(data)]).stdout
        remote_devices = run([AGENT, "remote", "devices", *remote]).stdout
        english = {**os.environ, "LANG": "en_US.UTF-8", "LC_ALL": ""}
        german = {**os.environ, "LANG": "de_DE.UTF-8", "LC_ALL": ""}
        empties = {
            (lang, where): subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout.strip()
            for lang, env in (("en", english), ("de", german))
            for where, argv in (("local", [AGENT, "incidents", "--data-dir", str(data)]),
                                ("remote", [AGENT, "remote", "incidents", *remote]))
        }  # fmt: skip
    finally:
        agent.terminate()
    moment = format_moment(seen)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", moment)
    for text in (local_devices, remote_devices):
        rows = _table_rows(text)
        assert len(rows) == 2, text  # the newline in the name did not make a row
        assert moment in rows[1] and "Lenas iPad\\nFAKE  ROW" in text and "T08:36" not in text
    assert empties[("en", "local")] == empties[("en", "remote")] == "no incidents"
    assert empties[("de", "local")] == empties[("de", "remote")] == "keine Vorfälle"


def test_counts_read_right_and_the_help_shows_a_real_code(central: Central, tmp_path: Path) -> None:
    data = _enrolled(central, tmp_path / "a")
    store = Store.open(data)
    Outbox(store, FakeClock()).add_many([("health.snapshot", {"host": {"cpu": 0.1}})])
    store.close()
    out = run([AGENT, "export", "--out", str(tmp_path / "b.bundle"), "--data-dir", str(data)])
    assert "exported 1 event (seq 1..1) in 1 report to" in out.stderr, out.stderr
    help_text = run([AGENT, "enroll", "--help"]).stdout
    example = re.search(r"--code (\S+)", help_text)
    assert example is not None and CODE_RE.fullmatch(example.group(1)), help_text


def test_click_is_a_declared_dependency() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(re.match(r"click\b", d) for d in deps)


def test_version_comes_from_one_place() -> None:
    for program in (AGENT, CENTRAL, str(Path(sys.executable).parent / "schulwart-sim")):
        out = run([program, "--version"])
        assert out.stdout == f"{Path(program).name} {version()}\n"


def test_every_report_carries_the_agents_version() -> None:
    from agent.identity import Identity
    from agent.store.outbox import QueuedEvent

    key = generate_private_key()
    identity = Identity("ag-1", "gs", None, None, "http://c", public_key_b64(key), public_key_b64(key),
                        keyid(key), "2026-11-30T00:00:00Z")  # fmt: skip
    event = QueuedEvent(1, "2026-11-30T00:00:00Z", "health.snapshot", '{"host": {}}', 20)
    envelope = report_envelope(identity, key, [event], datetime(2026, 11, 30, tzinfo=UTC))
    verified = verify(envelope, {keyid(key): key.public_key()}, {REPORT_TYPE})
    assert parse_report(verified.payload).extra["agent_version"] == version()
