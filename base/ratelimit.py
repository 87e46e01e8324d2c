"""The one failure limiter: at most N failed attempts per source within a sliding window.

The technician API limits wrong tokens per address with it, central's enrollment wrong
codes per address. Memory is bounded: at most ``max_sources`` sources are tracked, the
least recently failing one is forgotten first, so a flood of addresses cannot grow it.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable


class FailureLimiter:
    """At most ``max_failures`` failed attempts per source within ``window_s`` seconds."""

    def __init__(
        self,
        clock: Callable[[], float],
        max_failures: int = 10,
        window_s: float = 300.0,
        max_sources: int = 4096,
    ) -> None:
        """``clock`` gives monotonic seconds (``Clock.monotonic``)."""
        self._clock = clock
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_sources = max_sources
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, source: str) -> deque[float]:
        now = self._clock()
        times = self._failures.get(source)
        if times is None:
            return deque()
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def blocked(self, source: str) -> bool:
        """Whether this source has used up its failures for now."""
        return len(self._recent(source)) >= self.max_failures

    def fail(self, source: str) -> None:
        """Record one failed attempt."""
        times = self._recent(source)
        times.append(self._clock())
        self._failures[source] = times
        self._failures.move_to_end(source)
        while len(self._failures) > self.max_sources:
            self._failures.popitem(last=False)
