"""Failure limits every central node shares: wrong enrollment codes and wrong logins, counted in the database.

At most ``max_failures`` failed attempts per source (an address, a user name) within ``window``;
the attempts are rows in the store, so a client that spreads its guesses over several nodes
behind a load balancer meets the same limit as against one. Times are the clock's wall time
(the nodes' clocks are NTP-synchronised like the database server's); rows older than the
window are deleted whenever a failure is recorded, so the table holds at most one window
of failures.
"""

from __future__ import annotations

from datetime import timedelta

from base.clock import Clock
from central.storage.interface import Storage
from central.timestamps import iso


class SharedFailureLimiter:
    """At most ``max_failures`` failures per source of one ``scope`` (``enroll``, ``login``) within ``window``."""

    def __init__(self, store: Storage, scope: str, clock: Clock, max_failures: int, window: timedelta) -> None:
        self.store = store
        self.scope = scope
        self.clock = clock
        self.max_failures = max_failures
        self.window = window

    async def blocked(self, source: str) -> bool:
        """Whether this source has used up its failures for now (one indexed count)."""
        since = iso(self.clock.now() - self.window)
        return await self.store.count_failures(self.scope, source, since) >= self.max_failures

    async def fail(self, source: str) -> None:
        """Record one failed attempt (durably, like every write); older rows of the scope are dropped."""
        now = self.clock.now()
        await self.store.add_failure(self.scope, source, iso(now), iso(now - self.window))
