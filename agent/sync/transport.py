"""How the sync client talks to central: one seam that turns every HTTP answer into one typed outcome.

The client decides what to do; this module only says what central answered. Every answer
of ``POST /v1/reports`` is classified here and nowhere else:

=========================================  ==============================================
central's answer                           outcome
=========================================  ==============================================
``200 {"acked_through": N}``               :class:`Accepted` (``state`` when a state payload)
``200`` without a usable ``acked_through``  :class:`RetryLater` (not an acceptance)
``409 {"error": "sequence_conflict"}``     :class:`Conflict` (``expected_seq`` when given)
``409 {"expected_seq": N}``                :class:`Gap`
``401`` / ``403``                          :class:`Refused`, ``revoked`` true
``413`` and every other status             :class:`Refused` (``too_large`` for 413)
``5xx``, timeouts, network errors          :class:`RetryLater`
=========================================  ==============================================

``GET /v1/agents/{id}/config`` answers become :class:`Fetched` (200, with its ETag),
:class:`NotModified` (304), :class:`Refused` (4xx) or :class:`RetryLater` (5xx, network).

:class:`AiohttpTransport` is the real one: gzip, the byte-rate cap on the wire, the
User-Agent, the request timeout, a cap on the answer's size and the clock offset read from
the answer's ``Date`` header. Tests hand the client their own :class:`Transport`.
"""

from __future__ import annotations

import asyncio
import email.utils
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from agent.config import SyncSection
from agent.identity import Identity
from base.clock import Clock
from protocol.encoding import loads_strict
from protocol.errors import ProtocolError

MAX_ANSWER_BYTES = 64 * 1024
MAX_CONFIG_BYTES = 256 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer
_GZIP_LEVEL = 6


@dataclass(frozen=True, slots=True)
class Accepted:
    """Central stored the payload and holds this agent's history through ``acked_through`` (a seq, ≥ 0)."""

    acked_through: int
    state: str | None = None


@dataclass(frozen=True, slots=True)
class Gap:
    """Central wants the history to go on from ``expected_seq`` (≥ 1), not from where the batch began."""

    expected_seq: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class Conflict:
    """Central holds a seq of the batch with other content; ``expected_seq`` is its next seq, when it says."""

    expected_seq: int | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Refused:
    """Central will not take this payload as it is: a 4xx (or an unexpected status) with its ``error``."""

    status: int
    error: str = ""

    @property
    def revoked(self) -> bool:
        """401/403: central does not know or no longer trusts this agent's key."""
        return self.status in (401, 403)

    @property
    def too_large(self) -> bool:
        """413: the request was too large for central."""
        return self.status == 413


@dataclass(frozen=True, slots=True)
class RetryLater:
    """The network, a timeout, a 5xx or an unreadable 200: nothing was decided, try again.

    ``status`` is central's HTTP status when there was an answer, None when there was none.
    """

    reason: str
    status: int | None = None


Outcome = Accepted | Gap | Conflict | Refused | RetryLater


@dataclass(frozen=True, slots=True)
class Fetched:
    """``200`` to a config fetch: the envelope bytes and the ETag to send as ``If-None-Match`` next time."""

    body: bytes
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class NotModified:
    """``304`` to a config fetch: the configuration held is central's current one."""


ConfigAnswer = Fetched | NotModified | Refused | RetryLater


class Transport(Protocol):
    """The line to central, as the sync client sees it."""

    @property
    def clock_offset(self) -> float | None:
        """Seconds this host's clock is ahead of central's (from the last dated answer); None before one."""

    async def post(self, envelope: bytes) -> Outcome:
        """Send one signed report or state envelope (``POST /v1/reports``); never raises for an answer."""

    async def fetch_config(self, agent_id: str, headers: Mapping[str, str]) -> ConfigAnswer:
        """``GET /v1/agents/{agent_id}/config`` with ``headers`` (the request signature, If-None-Match)."""

    async def aclose(self) -> None:
        """Release connections; the transport may be used again afterwards (it reconnects)."""


class TokenBucket:
    """A byte-rate cap: ``take(n)`` waits until n bytes fit; rate 0 means unlimited."""

    def __init__(self, rate: float, burst: float, clock: Clock) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.clock = clock
        self._tokens = self.burst
        self._stamp = clock.monotonic()

    def delay_for(self, n: int) -> float:
        """Take n bytes now; the seconds to wait before sending them (debt is allowed, then paid)."""
        if self.rate <= 0:
            return 0.0
        now = self.clock.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def take(self, n: int) -> None:
        """Wait until n more bytes are allowed on the line."""
        delay = self.delay_for(n)
        if delay > 0:
            await asyncio.sleep(delay)


def classify(status: int, raw: bytes) -> Outcome:
    """The outcome of central's answer to ``POST /v1/reports``: HTTP ``status`` and (at most capped) body."""
    if status >= 500:
        return RetryLater(f"central answered {status}", status)
    doc = _json_or_none(raw)
    error = error_text(doc if doc is not None else raw)
    if status == 200:
        acked = doc.get("acked_through") if isinstance(doc, dict) else None
        if type(acked) is not int or acked < 0:
            return RetryLater("central's 200 carries no acked_through", status)
        state = doc.get("state") if isinstance(doc, dict) else None
        return Accepted(acked, state if isinstance(state, str) else None)
    if status == 409:
        expected = doc.get("expected_seq") if isinstance(doc, dict) else None
        seq = expected if type(expected) is int and expected >= 1 else None
        reason = doc.get("error") if isinstance(doc, dict) else None
        if reason == "sequence_conflict":
            return Conflict(seq, error)
        if seq is not None:
            return Gap(seq, error)
    return Refused(status, error)


def error_text(doc: Any) -> str:
    """Central's ``error`` for a log line or an alert: at most 200 characters, whatever the body was."""
    if isinstance(doc, (bytes, bytearray)):
        parsed = _json_or_none(bytes(doc))
        if parsed is None:
            # A proxy's HTML page has line breaks; a log line must stay one line.
            return " ".join(bytes(doc[:200]).decode("utf-8", "replace").split())
        doc = parsed
    if isinstance(doc, dict):
        return str(doc.get("error", doc))[:200]
    return str(doc)[:200]


def _json_or_none(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return loads_strict(raw)
    except ProtocolError:
        return None


class AiohttpTransport:
    """The real line: one aiohttp session, opened on first use and closed by :meth:`aclose`.

    ``timeout`` (seconds) bounds each request as a whole; ``max_bytes_per_s`` caps gzip bytes
    on the wire (0: unlimited, bursts of one second's worth).
    """

    def __init__(
        self,
        base_url: str,
        clock: Clock,
        *,
        user_agent: str,
        timeout: float,
        max_bytes_per_s: int = 0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._clock = clock
        self._user_agent = user_agent
        self._timeout = timeout
        self._bucket = TokenBucket(max_bytes_per_s, max(max_bytes_per_s, 1), clock)
        self._session: aiohttp.ClientSession | None = None
        self._clock_offset: float | None = None

    @classmethod
    def for_agent(cls, identity: Identity, local: SyncSection, clock: Clock) -> AiohttpTransport:
        """The transport an enrolled agent uses, from its identity and the [sync] section."""
        # [sync] central_url lets an operator follow a moved central without enrolling again.
        return cls(
            local.central_url.rstrip("/") or identity.central_url,
            clock,
            user_agent=f"schulwart-agent/{identity.agent_id}",
            timeout=local.request_timeout,
            max_bytes_per_s=local.max_bytes_per_s,
        )

    @property
    def clock_offset(self) -> float | None:
        """Seconds this host's clock is ahead of central's, from the last report answer's ``Date``."""
        return self._clock_offset

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers={"User-Agent": self._user_agent},
            )
        return self._session

    async def aclose(self) -> None:
        """Close the session (idempotent); a later request opens a new one."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def post(self, envelope: bytes) -> Outcome:
        """Gzip, wait for the byte-rate cap, POST, classify; network errors and timeouts are RetryLater."""
        # zlib with wbits 31 writes the gzip format; the gzip module would stay loaded for this one
        # call (0.07 MiB of the agent's steady RSS).
        body = zlib.compress(envelope, _GZIP_LEVEL, wbits=_GZIP_WBITS)
        await self._bucket.take(len(body))
        session = self._open()
        try:
            async with session.post(
                f"{self.base_url}/v1/reports",
                data=body,
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            ) as resp:
                raw = await resp.content.read(MAX_ANSWER_BYTES)
                self._note_date(resp.headers.get("Date"))
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return RetryLater(f"{type(exc).__name__}: {exc}")
        return classify(status, raw)

    async def fetch_config(self, agent_id: str, headers: Mapping[str, str]) -> ConfigAnswer:
        """``GET /v1/agents/{agent_id}/config``: Fetched (body capped), NotModified, Refused or RetryLater.

        The answer's ``Date`` is noted too: a refused signature time is corrected at the next fetch.
        """
        session = self._open()
        try:
            async with session.get(f"{self.base_url}/v1/agents/{agent_id}/config", headers=dict(headers)) as resp:
                raw = await resp.content.read(MAX_CONFIG_BYTES)
                self._note_date(resp.headers.get("Date"))
                status, etag = resp.status, resp.headers.get("ETag")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return RetryLater(str(exc))
        if status == 200:
            return Fetched(raw, etag)
        if status == 304:
            return NotModified()
        if status >= 500:
            return RetryLater(f"central answered {status}", status)
        return Refused(status, error_text(raw))

    def _note_date(self, header: str | None) -> None:
        if not header:
            return
        try:
            server = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return
        if server.tzinfo is None:
            return
        self._clock_offset = round((self._clock.now() - server).total_seconds(), 1)
