"""The simulator's time: a ``base.clock.Clock`` that starts at a chosen moment and may run faster."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta


class SimClock:
    """``now()`` = start + (elapsed real time) * speed; the real monotonic clock is injected for tests.

    Implements ``base.clock.Clock``: ``monotonic()`` runs at the same speed as ``now()``.
    """

    def __init__(
        self, start: datetime, speed: float = 1.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated start time needs a time zone")
        self.start = start
        self.speed = speed
        self._monotonic = monotonic
        self._origin = monotonic()

    def monotonic(self) -> float:
        """Simulated seconds since the clock was made."""
        return (self._monotonic() - self._origin) * self.speed

    def now(self) -> datetime:
        """The simulated local time."""
        return self.start + timedelta(seconds=self.monotonic())
