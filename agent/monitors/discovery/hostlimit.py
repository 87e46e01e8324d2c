"""Per-host token buckets with a bounded number of hosts (a flood of new hosts cannot grow it)."""

from __future__ import annotations

from collections import OrderedDict


class HostRateLimiter:
    """Allow ``burst`` events at once and ``rate_per_s`` afterwards, per host key; the time is passed in."""

    def __init__(self, rate_per_s: float, burst: float, max_hosts: int = 4096) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._max_hosts = max_hosts
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.rejected = 0

    def allow(self, host: str, now_s: float) -> bool:
        """Take one token from the host's bucket; False (and counted) when it is empty."""
        tokens, last = self._buckets.pop(host, (self._burst, now_s))
        tokens = min(self._burst, tokens + max(0.0, now_s - last) * self._rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        else:
            self.rejected += 1
        self._buckets[host] = (tokens, now_s)
        if len(self._buckets) > self._max_hosts:
            # Forget the least recently active host: it starts again with a full bucket.
            self._buckets.popitem(last=False)
        return allowed

    def __len__(self) -> int:
        return len(self._buckets)
