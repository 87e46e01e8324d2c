"""Active probes (TCP connect, HTTP GET) and a sliding window of their results: latency and loss.

Also the one capped HTTP JSON reader the meter and controller adapters share: a reply is read
only up to a size cap, so a device answering 20 MB costs no more than one answering 20 KB.
"""

from __future__ import annotations

import asyncio
import errno
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from protocol.encoding import loads_strict
from protocol.errors import MalformedError

# connect() errors that say the probe never left this host (no route, no free socket, a local
# firewall), not that the target failed to answer: they must not count against the target.
_NOT_SENT_ERRNOS = frozenset({
    errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EPERM, errno.EACCES,
    errno.EADDRNOTAVAIL, errno.ENETUNREACH, errno.ENETDOWN, errno.EAFNOSUPPORT, errno.EINVAL,
})


class FetchError(Exception):
    """A device's HTTP reply could not be used (unreachable, HTTP error, too large, not JSON)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe: reachable or not, and how long it took (ms).

    ``sent`` is False when the probe could not leave this host (no route, no free socket):
    then ``ok`` is False but the target has not been asked, so it says nothing about it.
    """

    ok: bool
    latency_ms: float | None
    error: str | None = None
    sent: bool = True


async def tcp_probe(
    host: str, port: int, timeout_s: float, clock_s: Callable[[], float] = time.monotonic
) -> ProbeResult:
    """Open (and close) a TCP connection; refused, unreachable or slow counts as a failure."""
    started = clock_s()
    try:
        async with asyncio.timeout(timeout_s):
            _reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return ProbeResult(False, None, "timeout")
    except OSError as exc:
        return ProbeResult(False, None, exc.strerror or type(exc).__name__, sent=exc.errno not in _NOT_SENT_ERRNOS)
    latency = (clock_s() - started) * 1000.0
    writer.close()
    try:
        async with asyncio.timeout(timeout_s):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        pass  # the connection was made; closing slowly does not make the target unreachable
    return ProbeResult(True, latency)


async def http_probe(
    session: aiohttp.ClientSession, url: str, timeout_s: float, clock_s: Callable[[], float] = time.monotonic
) -> ProbeResult:
    """GET a URL; any HTTP answer below 500 means the service is up."""
    started = clock_s()
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=timeout_s), allow_redirects=False, ssl=False
        ) as resp:
            await resp.content.read(1024)
            status = resp.status
    except TimeoutError:
        return ProbeResult(False, None, "timeout")
    except aiohttp.ClientError as exc:
        return ProbeResult(False, None, type(exc).__name__)
    latency = (clock_s() - started) * 1000.0
    if status >= 500:
        return ProbeResult(False, latency, f"http {status}")
    return ProbeResult(True, latency)


class ProbeWindow:
    """The last N results of one target: loss in percent, median and worst latency."""

    def __init__(self, size: int = 10) -> None:
        self._results: deque[ProbeResult] = deque(maxlen=max(1, size))

    def add(self, result: ProbeResult) -> None:
        """Record one probe."""
        self._results.append(result)

    def __len__(self) -> int:
        return len(self._results)

    @property
    def last(self) -> ProbeResult | None:
        """The newest result."""
        return self._results[-1] if self._results else None

    def loss_pct(self) -> float:
        """Share of failed probes in the window."""
        if not self._results:
            return 0.0
        return 100.0 * sum(1 for r in self._results if not r.ok) / len(self._results)

    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        count = 0
        for result in reversed(self._results):
            if result.ok:
                break
            count += 1
        return count

    def latency_ms(self) -> tuple[float | None, float | None]:
        """Median and maximum latency of the successful probes."""
        values = sorted(r.latency_ms for r in self._results if r.ok and r.latency_ms is not None)
        if not values:
            return None, None
        return values[len(values) // 2], values[-1]

    def summary(self) -> dict[str, Any]:
        """For the health snapshot."""
        median, worst = self.latency_ms()
        last = self.last
        return {
            "samples": len(self._results),
            "loss_pct": round(self.loss_pct(), 1),
            "latency_ms_p50": None if median is None else round(median, 1),
            "latency_ms_max": None if worst is None else round(worst, 1),
            "last_ok": None if last is None else last.ok,
            "last_error": None if last is None else last.error,
        }


async def fetch_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str | URL,
    *,
    timeout_s: float,
    max_bytes: int = 256 * 1024,
    json_body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    auth: aiohttp.BasicAuth | None = None,
    middlewares: Sequence[aiohttp.ClientMiddlewareType] = (),
) -> tuple[Any, aiohttp.ClientResponse]:
    """Request a URL and parse its JSON reply, reading at most ``max_bytes``; FetchError on anything odd.

    ``url`` may be a ``yarl.URL`` built with ``encoded=True`` so that values already
    percent-encoded reach the device byte for byte. ``middlewares`` (e.g. aiohttp's
    ``DigestAuthMiddleware``) apply to this request only. Reasons: ``timeout``,
    ``unreachable``, ``too-large``, ``http-<status>``, ``redirect`` (a 3xx: redirects are not
    followed, the answer is not the data), ``not-json``.
    """
    try:
        async with session.request(
            method,
            url,
            json=json_body,
            headers=headers,
            auth=auth,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
            ssl=False,
            middlewares=tuple(middlewares) or None,
        ) as resp:
            body = await resp.content.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise FetchError("too-large", f"reply larger than {max_bytes} bytes")
            if resp.status >= 400:
                raise FetchError(f"http-{resp.status}", f"HTTP {resp.status}")
            if 300 <= resp.status < 400:
                # Not followed, and the target not named: it may carry a host name or a token.
                raise FetchError("redirect", f"HTTP {resp.status} redirect (not followed)")
            response = resp
    except TimeoutError:
        raise FetchError("timeout", f"no reply within {timeout_s:g} s") from None
    except aiohttp.ClientError as exc:
        raise FetchError("unreachable", f"{type(exc).__name__}: {exc}"[:200]) from None
    try:
        # The wire's strict reader: NaN, 1e400 (infinity) and lone surrogate escapes ("\ud800")
        # parse in Python's json but cannot be written back into a snapshot, so the reply is
        # refused here, at the door, and counted by the caller as a failed reading. Duplicate
        # keys are allowed (the last wins): some firmware repeats a key, which is not hostile.
        data = loads_strict(body, max_depth=64, allow_duplicate_keys=True)
    except MalformedError as exc:
        raise FetchError("not-json", f"reply is not usable JSON: {exc.message[:80]}") from None
    return data, response


def finite_number(value: Any) -> float | None:
    """A real, finite number (bools and strings are not), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
