"""The aiohttp transport against a real local aiohttp server (real sockets): every answer, one outcome."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.config import SyncSection
from agent.identity import Identity
from agent.sync.transport import (
    MAX_ANSWER_BYTES,
    Accepted,
    AiohttpTransport,
    Conflict,
    Fetched,
    Gap,
    NotModified,
    Outcome,
    Refused,
    RetryLater,
    classify,
)
from base.clock import FakeClock

ENVELOPE = b'{"payloadType":"application/vnd.schulwart.report+json","payload":"e30=","signatures":[]}'


@dataclass
class Answer:
    status: int = 200
    body: bytes = b'{"acked_through": 0}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Central:
    """Answers whatever the test sets; remembers what it was sent."""

    answer: Answer = field(default_factory=Answer)
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        # aiohttp's server undoes Content-Encoding: gzip; the header says it was there.
        self.seen.append((request.path, dict(request.headers), await request.read()))
        if self.answer.delay:
            await asyncio.sleep(self.answer.delay)
        return web.Response(status=self.answer.status, body=self.answer.body, headers=self.answer.headers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/reports", self.handle)
        app.router.add_get("/v1/agents/{agent_id}/config", self.handle)
        return app


@pytest.fixture
async def central() -> AsyncIterator[tuple[Central, str]]:
    fake = Central()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def transport(central: tuple[Central, str], clock: FakeClock) -> AsyncIterator[AiohttpTransport]:
    _fake, url = central
    line = AiohttpTransport(url, clock, user_agent="schulwart-agent/a-1", timeout=1.0)
    yield line
    await line.aclose()


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


CASES: list[tuple[int, bytes, Outcome]] = [
    (200, _json({"acked_through": 7}), Accepted(7)),
    (200, _json({"acked_through": 0, "state": "accepted"}), Accepted(0, state="accepted")),
    (200, _json({"ok": True}), RetryLater("central's 200 carries no acked_through", 200)),
    (200, _json({"acked_through": -1}), RetryLater("central's 200 carries no acked_through", 200)),
    (200, _json({"acked_through": True}), RetryLater("central's 200 carries no acked_through", 200)),
    (200, b"<html>captive portal</html>", RetryLater("central's 200 carries no acked_through", 200)),
    (409, _json({"error": "sequence_gap", "expected_seq": 12}), Gap(12, "sequence_gap")),
    (409, _json({"error": "sequence_conflict", "expected_seq": 3}), Conflict(3, "sequence_conflict")),
    (409, _json({"error": "sequence_conflict"}), Conflict(None, "sequence_conflict")),
    (409, _json({"error": "sequence_gap", "expected_seq": 0}), Refused(409, "sequence_gap")),
    (409, _json({"error": "odd"}), Refused(409, "odd")),
    (413, _json({"error": "too_large"}), Refused(413, "too_large")),
    (401, _json({"error": "unknown_key"}), Refused(401, "unknown_key")),
    (403, _json({"error": "revoked_key"}), Refused(403, "revoked_key")),
    (400, _json({"error": "bad_envelope"}), Refused(400, "bad_envelope")),
    (404, b"not here", Refused(404, "not here")),
    (407, b"<html>\n<body>proxy\r\nauth</body>", Refused(407, "<html> <body>proxy auth</body>")),
    (422, b"", Refused(422, "")),
    (500, _json({"error": "internal"}), RetryLater("central answered 500", 500)),
    (502, b"bad gateway", RetryLater("central answered 502", 502)),
    (503, b"", RetryLater("central answered 503", 503)),
]


@pytest.mark.parametrize(("status", "body", "expected"), CASES)
async def test_every_answer_becomes_one_outcome(
    central: tuple[Central, str], transport: AiohttpTransport, status: int, body: bytes, expected: Outcome
) -> None:
    fake, _url = central
    fake.answer = Answer(status, body)
    outcome = await transport.post(ENVELOPE)
    assert outcome == expected
    assert classify(status, body) == expected  # the one place, with or without a socket in between


def test_revoked_and_too_large_are_told_apart() -> None:
    assert Refused(401).revoked and Refused(403).revoked and not Refused(400).revoked
    assert Refused(413).too_large and not Refused(413).revoked and not Refused(400).too_large


async def test_the_request_is_gzip_json_with_the_user_agent(
    central: tuple[Central, str], transport: AiohttpTransport
) -> None:
    fake, _url = central
    await transport.post(ENVELOPE)
    path, headers, body = fake.seen[0]
    assert path == "/v1/reports" and body == ENVELOPE
    assert headers["Content-Encoding"] == "gzip" and headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "schulwart-agent/a-1"
    assert int(headers["Content-Length"]) == len(gzip.compress(ENVELOPE, compresslevel=6))


async def test_clock_offset_comes_from_the_date_header(
    central: tuple[Central, str], transport: AiohttpTransport
) -> None:
    fake, _url = central
    assert transport.clock_offset is None
    fake.answer = Answer(headers={"Date": "Sat, 01 Mar 2025 07:59:50 GMT"})  # the fake clock says 08:00:00
    await transport.post(ENVELOPE)
    assert transport.clock_offset == 10.0
    fake.answer = Answer(status=503, headers={"Date": "Sat, 01 Mar 2025 08:00:03 GMT"})
    assert isinstance(await transport.post(ENVELOPE), RetryLater)
    assert transport.clock_offset == -3.0  # any dated answer counts, a 5xx too
    fake.answer = Answer(headers={"Date": "not a date"})
    await transport.post(ENVELOPE)
    assert transport.clock_offset == -3.0


async def test_a_huge_answer_is_cut_at_the_cap(central: tuple[Central, str], transport: AiohttpTransport) -> None:
    fake, _url = central
    fake.answer = Answer(body=_json({"acked_through": 1, "pad": "x" * (2 * MAX_ANSWER_BYTES)}))
    outcome = await transport.post(ENVELOPE)
    assert outcome == RetryLater("central's 200 carries no acked_through", 200)  # cut JSON is not an answer


async def test_a_slow_central_is_a_timeout(central: tuple[Central, str], transport: AiohttpTransport) -> None:
    fake, _url = central
    fake.answer = Answer(delay=3.0)
    outcome = await transport.post(ENVELOPE)
    assert isinstance(outcome, RetryLater) and outcome.status is None and "Timeout" in outcome.reason


async def test_no_central_is_retry_later(clock: FakeClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        line = AiohttpTransport(f"http://127.0.0.1:{port}", clock, user_agent="t", timeout=2.0)
        try:
            outcome = await line.post(ENVELOPE)
            config = await line.fetch_config("a-1", {})
        finally:
            await line.aclose()
    assert isinstance(outcome, RetryLater) and outcome.status is None
    assert isinstance(config, RetryLater) and config.status is None


async def test_config_answers(central: tuple[Central, str], transport: AiohttpTransport) -> None:
    fake, _url = central
    fake.answer = Answer(body=b"signed config bytes", headers={"ETag": '"t1"'})
    assert await transport.fetch_config("a-1", {"Signature": "sw=:x:"}) == Fetched(b"signed config bytes", '"t1"')
    path, headers, _body = fake.seen[-1]
    assert path == "/v1/agents/a-1/config" and headers["Signature"] == "sw=:x:"  # the client's headers go along
    fake.answer = Answer(status=304)
    assert await transport.fetch_config("a-1", {}) == NotModified()
    fake.answer = Answer(status=404, body=_json({"error": "unknown_agent"}))
    assert await transport.fetch_config("a-1", {}) == Refused(404, "unknown_agent")
    fake.answer = Answer(status=503)
    assert await transport.fetch_config("a-1", {}) == RetryLater("central answered 503", 503)


async def test_close_is_idempotent_and_the_line_reopens(
    central: tuple[Central, str], transport: AiohttpTransport
) -> None:
    assert await transport.post(ENVELOPE) == Accepted(0)
    await transport.aclose()
    await transport.aclose()
    assert await transport.post(ENVELOPE) == Accepted(0)


async def test_byte_rate_cap_paces_the_wire(central: tuple[Central, str]) -> None:
    _fake, url = central
    clock = FakeClock()
    line = AiohttpTransport(url, clock, user_agent="t", timeout=2.0, max_bytes_per_s=1000)
    try:
        noise = _json({"n": [str(i * 7919 % 10007) for i in range(400)]})
        size = len(gzip.compress(noise, compresslevel=6))
        assert size > 1000
        started = asyncio.get_running_loop().time()
        await line.post(noise)  # the first second's burst is spent, the rest is debt paid by waiting
        assert asyncio.get_running_loop().time() - started >= (size - 1000) / 1000 * 0.9
    finally:
        await line.aclose()


def test_for_agent_follows_a_moved_central(clock: FakeClock) -> None:
    ident = Identity("a-9", "s", None, None, "https://old.example", "k", "k", "id", "2025-01-01T00:00:00Z")
    assert AiohttpTransport.for_agent(ident, SyncSection(), clock).base_url == "https://old.example"
    moved = AiohttpTransport.for_agent(ident, SyncSection(central_url="https://new.example/"), clock)
    assert moved.base_url == "https://new.example"
