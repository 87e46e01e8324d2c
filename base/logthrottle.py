"""Rate-limited logging of repeated events: a flood of one error writes a few lines, not megabytes.

A pupil opening a thousand connections, or a device answering garbage every second, must not
fill the school server's disk with the same line (or the same traceback) over and over. The
:class:`RepeatFilter` sits on the log handlers: per *kind* of line (logger, level and message
template, not the formatted values) it lets ``burst`` lines through per ``window_s`` seconds,
drops the rest, and notes on the next line that passes how many were dropped. A repeated
line's traceback is dropped after the first, so a flood never writes one traceback per event.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RepeatFilter", "install_repeat_filter"]


@dataclass(slots=True)
class _Window:
    started: float
    passed: int = 0
    dropped: int = 0
    tracebacks: int = 0


class RepeatFilter(logging.Filter):
    """At most ``burst`` lines of one kind per ``window_s`` seconds; the rest are counted and dropped.

    ``clock`` gives monotonic seconds (tests pass their own). At most ``max_kinds`` kinds are
    tracked; the least recently seen is forgotten first, so varied messages cannot grow it.
    """

    def __init__(
        self,
        *,
        burst: int = 5,
        window_s: float = 60.0,
        max_kinds: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self.max_kinds = max_kinds
        self._clock = clock
        self._windows: OrderedDict[tuple[str, int, str], _Window] = OrderedDict()
        self.dropped_total = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """True to emit ``record`` (possibly annotated with a count of dropped repeats), False to drop it."""
        if record.levelno < logging.WARNING:
            return True  # info lines are the operator's narrative; only warnings and errors flood
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window.started >= self.window_s:
            dropped = window.dropped if window is not None else 0
            window = _Window(started=now)
            self._windows[key] = window
            if dropped:
                self._annotate(record, dropped)
        self._windows.move_to_end(key)
        while len(self._windows) > self.max_kinds:
            self._windows.popitem(last=False)
        if window.passed >= self.burst:
            window.dropped += 1
            self.dropped_total += 1
            return False
        window.passed += 1
        if record.exc_info and window.tracebacks >= 1:
            # One traceback per kind and window is enough to debug; the rest say only what failed.
            record.exc_info = None
            record.exc_text = None
        elif record.exc_info:
            window.tracebacks += 1
        if window.passed == self.burst:
            record.msg = f"{record.msg} (repeats of this line are held back for {self.window_s:g} s)"
        return True

    @staticmethod
    def _annotate(record: logging.LogRecord, dropped: int) -> None:
        record.msg = f"{record.msg} ({dropped} similar line(s) were dropped)"


def install_repeat_filter(
    logger: logging.Logger | None = None, *, burst: int = 5, window_s: float = 60.0
) -> RepeatFilter:
    """Put one RepeatFilter on every handler of ``logger`` (default: the root logger); returns it.

    Installing twice does not stack filters: handlers that already carry one are left alone.
    """
    target = logger or logging.getLogger()
    repeat = RepeatFilter(burst=burst, window_s=window_s)
    for handler in target.handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(repeat)
    return repeat
