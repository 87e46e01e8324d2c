"""The mDNS side of discovery: python-zeroconf browsing and resolving, hardened against floods.

Browser callbacks only note (type, name, change) in a bounded dict; one worker task resolves
from zeroconf's cache (records usually arrive as additionals), falls back to a bounded pool
of network resolves, rate-limits per host and hands sanitised ``Observation``s on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zeroconf import (
    BadTypeInNameException,
    DNSQuestionType,
    InterfaceChoice,
    IPVersion,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf import Error as ZeroconfError
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from agent.monitors.discovery.hostlimit import HostRateLimiter
from agent.monitors.discovery.observation import Observation
from agent.monitors.discovery.sanitize import (
    MAX_ADDRESSES,
    MAX_HOST_CHARS,
    clean_properties,
    clean_text,
    instance_label,
)

log = logging.getLogger(__name__)

MAX_SERVICE_NAME_CHARS = 255


@dataclass(frozen=True, slots=True)
class BrowserSettings:
    """How the browser listens and how much it lets through."""

    school: str = "school"
    interfaces: tuple[str, ...] = ()
    ip_version: str = "v4"
    question_type: str = "qm"
    rcvbuf_bytes: int = 4 * 1024 * 1024
    max_pending: int = 4096
    resolve_timeout_ms: int = 3000
    resolve_concurrency: int = 8
    max_resolve_queue: int = 256
    host_rate_per_s: float = 2.0
    host_burst: float = 32.0
    address_rate_per_s: float = 50.0
    address_burst: float = 3000.0


@dataclass(slots=True)
class BrowserStats:
    """Counters the discovery snapshot reports (all monotonic)."""

    events: int = 0
    dropped_events: int = 0
    resolved: int = 0
    unresolved: int = 0
    resolve_queue_full: int = 0
    malformed: int = 0
    rate_limited: int = 0
    removed: int = 0


ObservationSink = Callable[[Observation], None]
RemovalSink = Callable[[str], None]


class MdnsBrowser:
    """Browse the given service types on the configured interfaces and feed observations to sinks."""

    def __init__(
        self,
        settings: BrowserSettings,
        service_types: Sequence[str],
        on_observation: ObservationSink,
        on_removed: RemovalSink,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._types = list(service_types)
        self._on_observation = on_observation
        self._on_removed = on_removed
        self._clock_s = clock_s
        self._aiozc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._pending: dict[tuple[str, str], ServiceStateChange] = {}
        self._resolve_queue: deque[tuple[str, str]] = deque()
        self._wake = asyncio.Event()
        self._resolve_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._host_limiter = HostRateLimiter(settings.host_rate_per_s, settings.host_burst)
        self._address_limiter = HostRateLimiter(settings.address_rate_per_s, settings.address_burst)
        self.stats = BrowserStats()
        self._socket_inodes: list[int] = []
        self.rcvbuf_bytes: int | None = None

    @property
    def zeroconf(self) -> Zeroconf | None:
        """The running Zeroconf instance (for active probes and tests)."""
        return self._aiozc.zeroconf if self._aiozc else None

    async def start(self) -> None:
        """Open the multicast sockets, raise their receive buffers, start browsing."""
        s = self._settings
        interfaces: list[str] | InterfaceChoice = list(s.interfaces) if s.interfaces else InterfaceChoice.All
        ip_version = IPVersion.All if s.ip_version == "all" else IPVersion.V4Only
        self._aiozc = AsyncZeroconf(interfaces=interfaces, ip_version=ip_version)
        await self._aiozc.zeroconf.async_wait_for_start()
        self._raise_rcvbuf()
        self._tasks.append(asyncio.create_task(self._work(), name="mdns-worker"))
        for index in range(max(1, s.resolve_concurrency)):
            self._tasks.append(asyncio.create_task(self._resolver(), name=f"mdns-resolver-{index}"))
        question = DNSQuestionType.QU if s.question_type == "qu" else DNSQuestionType.QM
        self._browser = AsyncServiceBrowser(
            self._aiozc.zeroconf,
            self._types,
            handlers=[self._on_change],
            question_type=None if s.question_type == "auto" else question,
        )
        log.info(
            "discovery started school=%s interfaces=%s types=%d rcvbuf=%s",
            s.school, ",".join(s.interfaces) or "all", len(self._types), self.rcvbuf_bytes,
        )

    async def stop(self) -> None:
        """Cancel the browser and the workers, close zeroconf."""
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._aiozc is not None:
            await self._aiozc.async_close()
            self._aiozc = None

    def pending(self) -> int:
        """Events and resolutions not yet handled."""
        return len(self._pending) + len(self._resolve_queue)

    def socket_inodes(self) -> list[int]:
        """Inodes of zeroconf's sockets, to find their drop counters in /proc/net/udp."""
        return list(self._socket_inodes)

    # -- zeroconf callback (runs in the event loop: O(1), never blocks) --------------------

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        del zeroconf
        self.stats.events += 1
        key = (service_type, name[:MAX_SERVICE_NAME_CHARS])
        if key not in self._pending and len(self._pending) >= self._settings.max_pending:
            self.stats.dropped_events += 1
            return
        if state_change is ServiceStateChange.Updated and key in self._pending:
            return  # a pending Added covers the update; a pending Removed must not be undone by it
        self._pending[key] = state_change
        self._wake.set()

    # -- worker ----------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            handled = 0
            while self._pending:
                key = next(iter(self._pending))
                change = self._pending.pop(key)
                self._handle(key, change)
                handled += 1
                if handled % 64 == 0:
                    await asyncio.sleep(0)  # let zeroconf read its sockets during a flood

    def _handle(self, key: tuple[str, str], change: ServiceStateChange) -> None:
        service_type, name = key
        if change is ServiceStateChange.Removed:
            self.stats.removed += 1
            self._on_removed(name)
            return
        zc = self.zeroconf
        if zc is None:
            return
        if not _still_announced(zc, service_type, name):
            # A goodbye leaves its records in the cache for one second with TTL 1; an update
            # arriving in that second must not bring the service back.
            self.stats.removed += 1
            self._on_removed(name)
            return
        try:
            info = AsyncServiceInfo(service_type, name)
            complete = info.load_from_cache(zc)
        except (BadTypeInNameException, ZeroconfError, ValueError, UnicodeError) as exc:
            self.stats.malformed += 1
            log.debug("discovery malformed school=%s name=%r error=%s", self._settings.school, name[:80], exc)
            return
        if complete:
            self._accept(info)
            return
        if len(self._resolve_queue) >= self._settings.max_resolve_queue:
            self.stats.resolve_queue_full += 1
            return
        self._resolve_queue.append(key)
        self._resolve_wake.set()

    async def _resolver(self) -> None:
        question = DNSQuestionType.QU if self._settings.question_type == "qu" else DNSQuestionType.QM
        while True:
            if not self._resolve_queue:
                self._resolve_wake.clear()
                await self._resolve_wake.wait()
                continue
            service_type, name = self._resolve_queue.popleft()
            zc = self.zeroconf
            if zc is None:
                return
            try:
                info = AsyncServiceInfo(service_type, name)
                ok = await info.async_request(zc, self._settings.resolve_timeout_ms, question_type=question)
            except (BadTypeInNameException, ZeroconfError, ValueError, UnicodeError) as exc:
                self.stats.malformed += 1
                log.debug("discovery malformed school=%s name=%r error=%s", self._settings.school, name[:80], exc)
                continue
            if ok and _still_announced(zc, service_type, name):
                self._accept(info)
            else:
                self.stats.unresolved += 1

    def _accept(self, info: AsyncServiceInfo) -> None:
        try:
            obs = _observation(info)
        except (ValueError, UnicodeError, TypeError, IndexError) as exc:
            self.stats.malformed += 1
            log.debug("discovery malformed school=%s error=%s", self._settings.school, exc)
            return
        now_s = self._clock_s()
        first = obs.addresses[0] if obs.addresses else ""
        if not self._host_limiter.allow(obs.host or obs.service_name, now_s) or (
            first and not self._address_limiter.allow(first, now_s)
        ):
            self.stats.rate_limited += 1
            return
        self.stats.resolved += 1
        self._on_observation(obs)

    def _raise_rcvbuf(self) -> None:
        """Bursts of a few thousand services overflow the default 208 KiB buffer (docs/site-monitoring.md).

        python-zeroconf has no public way to reach its sockets; ``engine.readers``/``senders`` is
        the one private reach, kept in this function. tests/site/test_discovery_loopback.py fails
        (rcvbuf_bytes below the setting) when a zeroconf release moves them.
        """
        zc = self.zeroconf
        if zc is None:
            return
        seen: set[int] = set()
        for wrapped in [*zc.engine.readers, *zc.engine.senders]:
            sock = wrapped.sock
            if sock.fileno() in seen:
                continue
            seen.add(sock.fileno())
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._settings.rcvbuf_bytes)
                self.rcvbuf_bytes = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            except OSError as exc:
                log.warning("discovery cannot raise SO_RCVBUF school=%s error=%s", self._settings.school, exc)
            with contextlib.suppress(OSError):
                self._socket_inodes.append(os.fstat(sock.fileno()).st_ino)


def _still_announced(zc: Zeroconf, service_type: str, name: str) -> bool:
    """The browser's PTR record for the service is in the cache and is not a goodbye (TTL 1)."""
    record = zc.cache.current_entry_with_name_and_alias(service_type, name)
    return record is not None and record.ttl > 1


def _observation(info: AsyncServiceInfo) -> Observation:
    # Interned: a device's services repeat its host and addresses, and every device of a kind
    # repeats the service type, so the inventory keeps one copy of each (a school of 500 tablets:
    # about 0.4 MiB less).
    service_type = sys.intern(info.type)
    addresses = tuple(sys.intern(a) for a in info.parsed_scoped_addresses()[:MAX_ADDRESSES])
    return Observation(
        service_type=service_type,
        service_name=info.name[:MAX_SERVICE_NAME_CHARS],
        instance=instance_label(info.name, service_type),
        host=sys.intern(clean_text(info.server or "", MAX_HOST_CHARS).lower()),
        addresses=addresses,
        port=int(info.port or 0),
        properties=clean_properties(info.properties),
    )
