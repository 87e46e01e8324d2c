"""A real `schulwart-central serve` process: port 0 logged, kill -9 loses nothing acknowledged.

A killed process leaves its writes in the OS page cache, so this test cannot see a weaker
``synchronous`` setting (only a power cut would); tests/central/test_durability.py reads the
setting back instead. What this test does see: an answer given before the transaction
committed, and a restart that cannot open or replay the WAL.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from central.config import DB_FILE
from central.storage.sqlite import SqliteStore
from protocol.keys import generate_private_key, public_key_b64

from .conftest import FakeAgent

BIN = Path(sys.executable).parent / "schulwart-central"
LISTEN_RE = re.compile(r"listening on (http://[\d.]+:(\d+))")


def cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run([BIN, *args, "--data-dir", str(data_dir)], capture_output=True, text=True, check=True)
    return done.stdout.strip()


async def start(data_dir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """Start serve on port 0 and read the real URL from its log line."""
    handle = log.open("ab")
    proc = subprocess.Popen([BIN, "serve", "--port", "0", "--data-dir", str(data_dir)], stderr=handle)
    handle.close()
    for _ in range(200):
        match = LISTEN_RE.search(log.read_text())
        if match and int(match.group(2)) != 0:
            return proc, match.group(1)
        assert proc.poll() is None, log.read_text()
        await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("central did not log its URL: " + log.read_text())


async def test_restart_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cli(data, "school", "add", "--id", "gs-nord", "--name", "GS Nord", "--carrier", "Musterstadt")
    code = cli(data, "enroll-code", "--school", "gs-nord")
    proc, url = await start(data, tmp_path / "first.log")
    key = generate_private_key()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        try:
            resp = await http.post(
                f"{url}/v1/enroll",
                json={"code": code, "public_key": public_key_b64(key), "hostname": "srv", "agent_version": "0.1"},
            )
            assert resp.status == 201
            enrolled = await resp.json()
            agent = FakeAgent(enrolled["agent_id"], enrolled["school_id"], key)
            for first in range(1, 100, 20):
                resp = await http.post(f"{url}/v1/reports", data=agent.report(first, first + 19))
                assert (resp.status, await resp.json()) == (200, {"acked_through": first + 19})
        finally:
            os.kill(proc.pid, signal.SIGKILL)  # no clean shutdown, no checkpoint
            proc.wait(timeout=10)

        log = tmp_path / "second.log"
        proc, url = await start(data, log)
        try:
            resp = await http.post(f"{url}/v1/reports", data=agent.report(81, 100))
            assert (resp.status, await resp.json()) == (200, {"acked_through": 100})
            resp = await http.post(f"{url}/v1/reports", data=agent.report(101, 110))
            assert (resp.status, await resp.json()) == (200, {"acked_through": 110})
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
    store = SqliteStore.open(data / DB_FILE)
    try:
        assert [e.seq for e in await store.get_events(agent.agent_id)] == list(range(1, 111))
    finally:
        await store.close()
    text = log.read_text()
    assert "Traceback" not in text and "central stopping" in text
