"""A central that answers 500, 502, after 30 s, resets connections or answers garbage: nothing is lost.

Between the agent's real sync client and the stand-in central sits a TCP front that misbehaves
in the chosen way, over real sockets, or passes bytes through once "central recovers". While it
misbehaves the outbox keeps every event and no acknowledgement moves; afterwards everything
arrives once, in order, through the agent's own retry loop (capped full-jitter backoff).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.config import SyncSection
from agent.sync.client import TransientError
from base.clock import FakeClock
from tests.agent.fakecentral import FakeCentral, seqs
from tests.agent.test_enroll_sync import Harness, _enrolled, _snap

pytestmark = pytest.mark.timeout(120)

BAD = {
    "500": b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 21\r\n"
    b"Connection: close\r\n\r\n{\"error\": \"internal\"}",
    "502": b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 44\r\nConnection: close\r\n\r\n"
    b"<html><body>\n<h1>502 Bad Gateway</h1></html>",
    "garbage": b"\x00\xff\xfe SSH-2.0-OpenSSH_9.2 \x1b[31m not http at all\r\n\r\n",
    "200 garbage": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n"
    b"Connection: close\r\n\r\n{not json",
    "200 without ack": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n"
    b"Connection: close\r\n\r\n{\"acked\": 99999}",
}


class Front:
    """A TCP front for central: misbehaves as ``mode`` says, or pipes to the real one (mode "ok")."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode = "ok"
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(self.mode, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, mode: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if mode == "ok":
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return
        await reader.readuntil(b"\r\n\r\n")  # the request's head: the client is waiting for an answer now
        if mode == "stall":
            await asyncio.sleep(30)  # longer than the agent's request timeout
        elif mode == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        else:
            writer.write(BAD[mode])
            await writer.drain()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@pytest.fixture
async def front(central: tuple[FakeCentral, str]) -> AsyncIterator[tuple[Front, str]]:
    _fake, url = central
    proxy = Front(int(url.rsplit(":", 1)[1]))
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    yield proxy, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    await proxy.aclose()
    await server.wait_closed()


@pytest.mark.parametrize("mode", ["500", "502", "stall", "reset", "garbage", "200 garbage", "200 without ack"])
async def test_each_misbehaviour_keeps_everything_and_the_agent_recovers(
    central: tuple[FakeCentral, str], front: tuple[Front, str], data_dir: Path, clock: FakeClock, mode: str
) -> None:
    fake, _url = central
    proxy, front_url = front
    identity = await _enrolled(central, data_dir)
    local = SyncSection(max_bytes_per_s=0, backoff_max=0.05, request_timeout=1.0, central_url=front_url)
    async with Harness(data_dir, identity, clock, local) as h:
        h.outbox.add_many([("health.snapshot", _snap(i)) for i in range(8)])
        proxy.mode = mode
        for _ in range(2):
            with pytest.raises(TransientError):
                await h.client.cycle()
        assert h.outbox.acked_seq == 0 and h.outbox.stats().depth == 8, "an acknowledgement moved"
        assert fake.agents[identity.agent_id].events == {} or mode == "ok"
        # Central recovers while the agent's retry loop is waiting: it gets everything, once, in order.
        retrying = asyncio.create_task(h.client.cycle_with_retries())
        await asyncio.sleep(0.2)
        proxy.mode = "ok"
        await asyncio.wait_for(retrying, 30)
        assert h.outbox.stats().depth == 0
    record = fake.only()
    assert seqs(record) == list(range(1, 9)) and record.duplicates == 0
    assert proxy.connections >= 3
