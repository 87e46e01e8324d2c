"""Connection limits for the two HTTP servers: a cap per source address and in total, and deadlines.

A pupil on the school LAN can open a thousand connections and send one header byte every 30
seconds. Without limits each one holds a file descriptor until the process runs out (with
systemd's default of 1,024) and the server stops accepting anyone. The guard sits between the
listening socket and aiohttp's protocol:

- a connection beyond ``per_address`` from one address, or beyond ``total``, is answered with
  one short ``503`` and closed at once, so it costs a descriptor for microseconds;
- a connection must deliver a request's headers within ``header_timeout`` seconds of being
  accepted (or of its previous answer, for keep-alive) or it is closed; a request being
  handled is never cut by this deadline (bodies have their own, see :func:`body_deadline`);
- refusals and closes are counted and logged rate-limited (``base.logthrottle``), never one
  line per event.

:class:`GuardedTCPSite` is an aiohttp ``TCPSite`` whose server uses the guard; the app adds
:meth:`ConnectionGuard.middleware` so the guard knows when a request's headers have arrived.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["ConnectionGuard", "ConnectionLimits", "GuardedTCPSite", "install_loop_error_handler"]

log = logging.getLogger(__name__)

_BUSY_BODY = b'{"error":"too_many_connections"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\nRetry-After: 5\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)
# Descriptors kept free for the database, log files, outgoing requests and mDNS sockets.
_FD_RESERVE = 128


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Caps (connections) and deadlines (seconds) for one server."""

    per_address: int = 32
    total: int = 256
    header_timeout: float = 10.0

    def fitted(self) -> ConnectionLimits:
        """These limits, ``total`` lowered to fit the process's open-file limit (RLIMIT_NOFILE)."""
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self
        room = max(16, soft - _FD_RESERVE)
        if self.total <= room:
            return self
        return ConnectionLimits(min(self.per_address, room), room, self.header_timeout)


@dataclass(slots=True)
class _Conn:
    address: str
    busy: int = 0
    served: int = 0  # requests answered on this connection (an idle keep-alive has served some)
    timer: asyncio.TimerHandle | None = None


class ConnectionGuard:
    """Admits, times and counts the connections of one server (see the module docstring).

    Counters: ``refused`` (over a cap), ``timed_out`` (headers not in time), ``open`` (now).
    """

    def __init__(self, limits: ConnectionLimits, *, name: str = "http") -> None:
        self.limits = limits.fitted()
        self.name = name
        self._by_address: dict[str, int] = {}
        self._conns: dict[asyncio.BaseTransport, _Conn] = {}
        self.refused = 0
        self.timed_out = 0

    @property
    def open(self) -> int:
        """Connections currently admitted."""
        return len(self._conns)

    # ------------------------------------------------------------------ admission

    def _admit(self, transport: asyncio.BaseTransport) -> _Conn | None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if len(self._conns) >= self.limits.total or self._by_address.get(address, 0) >= self.limits.per_address:
            self.refused += 1
            log.warning(
                "server=%s connection refused from=%s: over the cap (%d per address, %d in total)",
                self.name,
                address,
                self.limits.per_address,
                self.limits.total,
            )
            return None
        conn = _Conn(address)
        self._conns[transport] = conn
        self._by_address[address] = self._by_address.get(address, 0) + 1
        self._arm(transport, conn)
        return conn

    def _release(self, transport: asyncio.BaseTransport) -> None:
        conn = self._conns.pop(transport, None)
        if conn is None:
            return
        if conn.timer is not None:
            conn.timer.cancel()
        left = self._by_address.get(conn.address, 1) - 1
        if left > 0:
            self._by_address[conn.address] = left
        else:
            self._by_address.pop(conn.address, None)

    def _arm(self, transport: asyncio.BaseTransport, conn: _Conn) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
        loop = asyncio.get_running_loop()
        conn.timer = loop.call_later(self.limits.header_timeout, self._expire, transport)

    def _expire(self, transport: asyncio.BaseTransport) -> None:
        conn = self._conns.get(transport)
        if conn is None or conn.busy:
            return
        self.timed_out += 1
        # An idle keep-alive (it was answered before) is ordinary client behaviour, not a slow
        # client holding a slot: closing it is worth a debug line, not a warning per connection.
        log.log(
            logging.DEBUG if conn.served else logging.WARNING,
            "server=%s connection closed from=%s: no complete request within %g s%s",
            self.name,
            conn.address,
            self.limits.header_timeout,
            f" (idle keep-alive after {conn.served} request(s))" if conn.served else "",
        )
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()  # connection_lost follows and releases it
        else:
            transport.close()

    # ------------------------------------------------------------------ hooks

    def wrap(self, factory: Callable[[], asyncio.BaseProtocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` that puts the guard in front of ``factory``."""

        def make() -> asyncio.Protocol:
            return _GuardedProtocol(self, factory)

        return make

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Marks the connection busy while a request is handled (its headers arrived in time)."""
        transport = request.transport
        conn = self._conns.get(transport) if transport is not None else None
        if conn is None:
            return await handler(request)
        conn.busy += 1
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        try:
            return await handler(request)
        finally:
            conn.busy -= 1
            conn.served += 1
            if not conn.busy and transport is not None and transport in self._conns:
                self._arm(transport, conn)  # keep-alive: the next request's headers get the same deadline


class _GuardedProtocol(asyncio.Protocol):
    """Admits the connection or refuses it, then hands every callback to aiohttp's protocol."""

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.BaseProtocol]) -> None:
        self._guard = guard
        self._factory = factory
        self._inner: Any = None
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._guard._admit(transport) is None:
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(_BUSY)
            transport.close()
            return
        self._transport = transport
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            return bool(self._inner.eof_received())
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None or self._transport is None:
            return
        self._guard._release(self._transport)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class GuardedTCPSite(web.TCPSite):
    """aiohttp's TCPSite with a :class:`ConnectionGuard` between the socket and the server.

    aiohttp has no public hook for the protocol factory; this overrides ``start`` with the
    same ``create_server`` call TCPSite makes, reading its (private) settings. The loopback
    tests in ``tests/test_connguard.py`` fail if a new aiohttp renames them.
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int | None,
        guard: ConnectionGuard,
        *,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool | None = None,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, reuse_port=reuse_port)
        self.guard = guard

    async def start(self) -> None:
        """Register with the runner and listen, every connection passing the guard first."""
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            self.guard.wrap(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )


def install_loop_error_handler(loop: asyncio.AbstractEventLoop) -> None:
    """One log line, no traceback, for errors the event loop reports outside any task.

    asyncio reports a failed ``accept()`` (EMFILE when out of descriptors, ECONNABORTED) through
    the loop's exception handler, which by default logs a full traceback each time: under a
    connection flood that was one traceback per attempt. The line goes through the logging
    filters, so repeats are rate-limited too.
    """

    def handle(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = context.get("message", "event loop error")
        if isinstance(exc, OSError):
            log.error("%s: %s", message, exc)
            return
        _loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
