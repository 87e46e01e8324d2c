"""Connection exhaustion from the LAN: caps per address and in total, header deadlines, real sockets.

The flood test runs the agent and central as real processes with RLIMIT_NOFILE set to 1,024
(what systemd gives a unit without LimitNOFILE), opens 1,100 connections from 127.0.0.1 that
trickle header bytes, and asks ``/healthz`` from 127.0.0.2 meanwhile: every answer must come
within 1 s, and the process must still be running afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from agent.store import Store
from base.connguard import ConnectionGuard, ConnectionLimits, GuardedTCPSite
from tests.agent.procs import AGENT, CENTRAL, _env, run

FLOOD = 1100
FILE_LIMIT = 1024


# ---------------------------------------------------------------------------- in-process guard


@contextlib.asynccontextmanager
async def _guarded(limits: ConnectionLimits) -> AsyncIterator[tuple[ConnectionGuard, int]]:
    guard = ConnectionGuard(limits, name="test")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "0")))
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[guard.middleware])
    app.router.add_get("/", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = GuardedTCPSite(runner, "127.0.0.1", 0, guard)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        yield guard, port
    finally:
        await runner.cleanup()


async def _get(port: int, path: str = "/", source: str = "127.0.0.1") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


async def test_per_address_cap_answers_503_and_other_addresses_pass() -> None:
    async with _guarded(ConnectionLimits(per_address=3, total=50, header_timeout=5)) as (guard, port):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        await asyncio.sleep(0.05)
        refused = await _get(port)
        assert refused.startswith(b"HTTP/1.1 503") and b"too_many_connections" in refused
        assert (await _get(port, source="127.0.0.2")).startswith(b"HTTP/1.1 200")
        assert guard.refused == 1
        for _reader, writer in held:
            writer.close()
        await asyncio.sleep(0.05)
        assert (await _get(port)).startswith(b"HTTP/1.1 200")


async def test_total_cap() -> None:
    async with _guarded(ConnectionLimits(per_address=10, total=2, header_timeout=5)) as (_guard, port):
        held = [await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.0.0.{i}", 0)) for i in (3, 4)]
        await asyncio.sleep(0.05)
        assert (await _get(port, source="127.0.0.5")).startswith(b"HTTP/1.1 503")
        for _reader, writer in held:
            writer.close()


async def test_headers_trickling_past_the_deadline_are_cut() -> None:
    async with _guarded(ConnectionLimits(per_address=10, total=50, header_timeout=0.5)) as (guard, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\n")
        closed = False
        for _ in range(40):  # one header byte every 0.1 s, never finishing
            await asyncio.sleep(0.1)
            try:
                writer.write(b"X")
                await writer.drain()
            except ConnectionError:
                closed = True
                break
            if reader.at_eof() or writer.is_closing():
                closed = True
                break
        if not closed:
            closed = await asyncio.wait_for(reader.read(), 2) == b""
        assert closed
        assert guard.timed_out == 1
        assert guard.open == 0


async def test_a_slow_handler_is_not_cut_and_keep_alive_gets_a_new_deadline() -> None:
    async with _guarded(ConnectionLimits(per_address=10, total=50, header_timeout=0.3)) as (guard, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /?s=0.8 HTTP/1.1\r\nHost: x\r\n\r\n")  # handling takes longer than the deadline
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        await reader.readexactly(12)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # the kept-alive connection serves again
        await writer.drain()
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 200")
        await reader.readexactly(12)
        await asyncio.sleep(0.8)  # then idles past the deadline: closed
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
        assert guard.timed_out == 1


# ---------------------------------------------------------------------------- the flood, real processes


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


@contextlib.contextmanager
def _server(kind: str, tmp: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    log = tmp / f"{kind}.log"
    if kind == "agent":
        config = tmp / "agent.toml"
        config.write_text("[discovery]\nenabled = false\n")
        Store.open(tmp / "agent").close()  # an agent with state but not enrolled: `run` needs a database
        args = [AGENT, "run", "--listen", "127.0.0.1:0", "--data-dir", str(tmp / "agent"), "--config", str(config)]
    else:
        run([CENTRAL, "school", "add", "--id", "s1", "--name", "GS", "--carrier", "K", "--data-dir", str(tmp / "c")])
        args = [CENTRAL, "serve", "--data-dir", str(tmp / "c"), "--host", "127.0.0.1", "--port", "0"]
    with log.open("wb") as fh:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=fh, env=_env(), preexec_fn=_limit_files)  # noqa: PLW1509
    try:
        port = 0
        deadline = time.monotonic() + 20
        while not port and time.monotonic() < deadline:
            for line in log.read_text(errors="replace").splitlines():
                if "listening on http://" in line:
                    port = int(line.rsplit(":", 1)[1].split()[0].strip("/"))
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        assert port, log.read_text()
        yield proc, port, log
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)


async def _slowloris(port: int, stop: asyncio.Event, held: list[int]) -> None:
    """One connection that sends a header byte every second and reconnects when it is cut."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        held[0] += 1
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            while not stop.is_set() and not reader.at_eof():
                await asyncio.sleep(1.0)
                writer.write(b"X")
                await writer.drain()
        except OSError:
            pass
        finally:
            held[0] -= 1
            writer.close()
        await asyncio.sleep(0.2)


async def _health(port: int) -> float:
    started = time.monotonic()
    data = await asyncio.wait_for(_get(port, "/healthz", source="127.0.0.2"), 5)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    return time.monotonic() - started


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["agent", "central"])
async def test_1100_slow_connections_leave_healthz_answering_within_1s(kind: str, tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < FLOOD + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    with _server(kind, tmp_path) as (proc, port, log):
        stop = asyncio.Event()
        held = [0]
        attackers = [asyncio.create_task(_slowloris(port, stop, held)) for _ in range(FLOOD)]
        try:
            await asyncio.sleep(3.0)  # every attacker has connected (or been refused) at least once
            times = []
            for _ in range(10):
                times.append(await _health(port))
                await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.gather(*attackers, return_exceptions=True)
        print(f"\n{kind}: {FLOOD} slow connections, healthz max {max(times) * 1000:.0f} ms over {len(times)} checks")
        assert proc.poll() is None, "the server exited under the flood:\n" + log.read_text()[-3000:]
        assert max(times) < 1.0, times
        lines = log.read_text(errors="replace").splitlines()
        assert not any("Too many open files" in line for line in lines)
        assert sum("Traceback" in line for line in lines) <= 1
        assert len(lines) < 200, f"{len(lines)} log lines: repeats are not rate-limited"
