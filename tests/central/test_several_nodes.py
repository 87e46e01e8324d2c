"""Two `schulwart-central serve` nodes on one PostgreSQL database behind a real HAProxy; one is SIGKILLed.

Agents (sim.fleet: one Ed25519 key each, the real wire protocol) send batches through the
load balancer throughout. What central acknowledged must be stored, nothing twice, and the
agents must carry on through the surviving node.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import psycopg
import pytest

from central.storage.postgres import PostgresStore
from sim.fleet import SimAgent
from tests.contract.conftest import CENTRAL, Server, clean_env
from tests.pg import REQUIRED
from tests.pg import Server as PgServer

from .conftest import db_section

pytestmark = pytest.mark.slow

AGENTS = 24
BATCH = 10
T_ENROLLED = "2026-11-30T08:00:00.000000Z"
RUN_S = 20.0  # agents send for this long; the kill comes at a third of it
HAPROXY_CFG = """
global
    maxconn 2000
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # A request that met a dead node goes to the other one (the body is buffered for that).
    option http-buffer-request
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
frontend central_in
    bind 127.0.0.1:{front}
    default_backend central_nodes
backend central_nodes
    balance roundrobin
    option httpchk GET /healthz
    server a 127.0.0.1:{a} check inter 300ms fall 2 rise 1
    server b 127.0.0.1:{b} check inter 300ms fall 2 rise 1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def haproxy_bin() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if found is None:
        if REQUIRED:
            pytest.fail("haproxy missing (make system-deps installs Debian's package)")
        pytest.skip("haproxy missing (make system-deps installs Debian's package)")
    return found


def wait_http(url: str, timeout: float = 20.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout} s")
        time.sleep(0.1)


async def test_a_node_killed_mid_load_loses_nothing_and_stores_nothing_twice(
    tmp_path: Path, pg_server: PgServer, haproxy_bin: str
) -> None:
    url = pg_server.new_schema()
    nodes = [tmp_path / "a", tmp_path / "b"]
    toml = tmp_path / "central.toml"
    toml.write_text(db_section(url))
    added = subprocess.run(
        [CENTRAL, "school", "add", "--id", "gs-1", "--name", "GS 1", "--carrier", "K", "--data-dir", str(nodes[0]),
         "--config", str(toml)], capture_output=True, text=True, check=False, env=clean_env(), timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    shutil.copytree(nodes[0] / "keys", nodes[1] / "keys")  # every node signs with the same keys
    # Identities go straight into the database: enrollment is not what this test is about.
    agents = [SimAgent.new("gs-1") for _ in range(AGENTS)]
    store = await PostgresStore.open(url)
    async with store.transaction() as tx:
        for agent in agents:
            await tx.add_agent(agent.agent_id, "gs-1", agent.keyid, agent.public_raw, "srv", "0.1.0", T_ENROLLED)

    ports = [free_port(), free_port()]
    servers = [
        Server([CENTRAL, "serve", "--data-dir", str(d), "--config", str(toml), "--host", "127.0.0.1", "--port", str(p)])
        for d, p in zip(nodes, ports, strict=True)
    ]
    front = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.format(front=front, a=ports[0], b=ports[1]))
    proxy = subprocess.Popen([haproxy_bin, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{front}"
        wait_http(f"{base}/healthz")
        deadline = time.monotonic() + RUN_S

        async def drive(agent: SimAgent, session: aiohttp.ClientSession) -> None:
            while time.monotonic() < deadline:
                await agent.send(session, base, BATCH, deadline=deadline + 30)
                await asyncio.sleep(0.05)

        async def kill_one() -> tuple[int, int]:
            await asyncio.sleep(RUN_S / 3)
            before = sum(a.acked for a in agents)
            servers[0].proc.send_signal(signal.SIGKILL)
            servers[0].proc.wait(10)
            return before, sum(a.acked for a in agents)

        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector) as session:
            killed, _ = await asyncio.gather(kill_one(), asyncio.gather(*(drive(a, session) for a in agents)))
        acked_at_kill, _ = killed
    finally:
        proxy.terminate()
        proxy.wait(10)
        for server in servers:
            server.stop()
        await store.close()

    total_acked = sum(a.acked for a in agents)
    assert acked_at_kill > 0, "no batch was acknowledged before the kill"
    assert total_acked > acked_at_kill + AGENTS * BATCH, "the agents did not carry on through the other node"
    with psycopg.connect(url, autocommit=True) as conn:
        for agent in agents:
            rows = conn.execute("SELECT seq FROM events WHERE agent_id=%s ORDER BY seq", (agent.agent_id,))
            seqs = [r[0] for r in rows]
            # Every agent finished its last batch: central holds exactly what it acknowledged, once.
            assert agent.acked == agent.produced, (agent.agent_id, agent.acked, agent.produced)
            assert seqs == list(range(1, agent.acked + 1)), agent.agent_id
            (acked_seq,) = conn.execute("SELECT acked_seq FROM agents WHERE agent_id=%s", (agent.agent_id,)).fetchone()  # type: ignore[misc]
            assert acked_seq == agent.acked
