"""The simulator's clock: starts at a chosen local time and may run faster than real time."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta


class SimClock:
    """``now()`` = start + (elapsed real time) * speed; the real clock is injected for tests."""

    def __init__(
        self, start: datetime, speed: float = 1.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated start time needs a time zone")
        self.start = start
        self.speed = speed
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self) -> datetime:
        """The simulated local time."""
        return self.start + timedelta(seconds=(self._monotonic() - self._origin) * self.speed)
