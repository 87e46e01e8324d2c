"""The one notion of time: injectable, so that hysteresis, windows, ages and expiry test exactly.

Every part of agent and central that needs the time takes a :class:`Clock`, so that tests and
the simulator decide what "now" is.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Wall time (aware, UTC) for timestamps; monotonic seconds for intervals and rate limits."""

    def now(self) -> datetime:
        """The current wall time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes back."""


class SystemClock:
    """The real clocks."""

    def now(self) -> datetime:
        """The current wall time, timezone-aware UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """time.monotonic()."""
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to (tests, benchmarks)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
        self._mono = 1000.0

    def now(self) -> datetime:
        """The frozen wall time."""
        return self._now

    def monotonic(self) -> float:
        """The frozen monotonic time."""
        return self._mono

    def advance(self, by: float | timedelta) -> None:
        """Move both clocks forward by seconds or a timedelta."""
        seconds = by.total_seconds() if isinstance(by, timedelta) else float(by)
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def set(self, moment: datetime) -> None:
        """Jump the wall clock (it may go back, as a real one can); monotonic time does not move."""
        if moment.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one")
        self._now = moment
