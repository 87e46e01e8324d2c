"""The wiring: one function builds the agent; the technician API's parts never reach back into the runner."""

from __future__ import annotations

import ast
import asyncio
import sqlite3
from pathlib import Path

import aiohttp
import pytest

import agent
from agent.config import AgentConfig, parse_config
from agent.enroll import enroll
from agent.identity import ADMIN_TOKEN_FILE, KEY_FILE
from agent.monitors.host import HostMonitor
from agent.runner import Agent
from agent.store import Store
from agent.wiring import build_agent
from base.clock import SystemClock
from base.errors import ConfigError
from tests.agent.fakecentral import FakeCentral

AGENT_DIR = Path(agent.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module a file imports, wherever the import stands (TYPE_CHECKING blocks and functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", ["techapi/store_view.py", "techapi/metrics.py", "live.py", "sync/client.py"])
def test_parts_do_not_import_the_runner_or_the_wiring(module: str) -> None:
    imported = _imports(AGENT_DIR / module)
    assert "agent.runner" not in imported and "agent.wiring" not in imported, sorted(imported)


def test_only_the_wiring_and_the_launch_know_the_wiring() -> None:
    users = {
        path.relative_to(AGENT_DIR).as_posix()
        for path in AGENT_DIR.rglob("*.py")
        if "agent.wiring" in _imports(path) or "agent.runner" in _imports(path)
    }
    assert users == {"launch.py", "wiring.py"}


def _config() -> AgentConfig:
    return parse_config({"discovery": {"enabled": False}, "sync": {"max_bytes_per_s": 0}})


async def test_not_enrolled_agent_is_built_without_sync_and_serves_its_api(data_dir: Path) -> None:
    built = build_agent(_config(), data_dir, SystemClock(), listen="127.0.0.1:0")
    assert isinstance(built, Agent)
    assert built.sync is None and built.identity is None and built.school == "-"
    assert isinstance(built.monitors[0], HostMonitor)
    assert (data_dir / "privacy-secret").exists()
    stop = asyncio.Event()
    task = asyncio.create_task(built.run(stop))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if built.address is not None:
            break
    assert built.address is not None
    host, port = built.address
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.get(f"http://{host}:{port}/healthz") as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "ok"
        async with session.get(f"http://{host}:{port}/metrics") as resp:
            assert resp.status == 401  # the technician routes are mounted, behind their token
    stop.set()
    assert await asyncio.wait_for(task, 10) is True
    with pytest.raises(sqlite3.ProgrammingError):
        built.store.query("SELECT 1")  # run() closed the store it was handed


async def test_enrolled_agent_gets_a_sync_client_and_its_view_reads_the_live_state(
    central: tuple[FakeCentral, str], data_dir: Path
) -> None:
    fake, url = central
    identity = await enroll(url, fake.code("s9"), data_dir, SystemClock())
    built = build_agent(_config(), data_dir, SystemClock(), listen="127.0.0.1:0")
    try:
        assert built.sync is not None and built.school == "s9"
        built.live.sections["wlan"] = {"aps": [{"name": "ap-1"}]}
        stop = asyncio.Event()
        task = asyncio.create_task(built.run(stop))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if built.address is not None:
                break
        assert built.address is not None
        host, port = built.address
        token = (data_dir / ADMIN_TOKEN_FILE).read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            async with session.get(f"http://{host}:{port}/api/v1/status", headers=headers) as resp:
                assert resp.status == 200
                status = await resp.json()
            async with session.get(f"http://{host}:{port}/metrics", headers={"Authorization": "Bearer nope"}) as resp:
                assert resp.status == 401
            async with session.get(f"http://{host}:{port}/metrics", headers=headers) as resp:
                metrics = await resp.text()
        assert status["identity"]["agent_id"] == identity.agent_id
        assert status["counts"]["aps"] == 1 and status["snapshot"]["wlan"] == {"aps": [{"name": "ap-1"}]}
        assert "schulwart_agent_outbox_last_seq" in metrics and "schulwart_agent_dropped_events" in metrics
        refused = [line for line in metrics.splitlines() if line.startswith("schulwart_agent_auth_failures_total{")]
        assert len(refused) == 1 and refused[0].endswith(" 1.0"), metrics  # counted before the first scrape
        stop.set()
        assert await asyncio.wait_for(task, 10) is True
    finally:
        if built.address is None:
            built.store.close()


async def test_a_wiring_error_closes_the_store_it_opened(
    central: tuple[FakeCentral, str], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = central
    await enroll(url, fake.code(), data_dir, SystemClock())
    (data_dir / KEY_FILE).unlink()
    closed: list[Store] = []
    original = Store.close

    def close(self: Store) -> None:
        closed.append(self)
        original(self)

    monkeypatch.setattr(Store, "close", close)
    with pytest.raises(ConfigError, match="cannot read the agent key"):
        build_agent(_config(), data_dir, SystemClock(), listen="127.0.0.1:0")
    assert len(closed) == 1
