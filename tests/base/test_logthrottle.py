"""Repeated warnings and errors are rate-limited: a flood writes a few lines and one traceback."""

from __future__ import annotations

import io
import logging

from base.logthrottle import RepeatFilter, install_repeat_filter


def _logger(flt: RepeatFilter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(flt)
    logger = logging.getLogger(f"test.throttle.{id(flt)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


def test_a_flood_of_one_error_writes_burst_lines_then_a_count() -> None:
    now = [0.0]
    flt = RepeatFilter(burst=3, window_s=60, clock=lambda: now[0])
    logger, out = _logger(flt)
    for i in range(10_000):
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            logger.exception("accept failed from=%s", f"10.0.0.{i % 250}")
    lines = out.getvalue()
    assert lines.count("accept failed") == 3
    assert lines.count("Traceback") == 1  # one traceback per kind and window
    assert flt.dropped_total == 9_997
    now[0] = 61.0
    logger.error("accept failed from=%s", "10.0.0.1")
    assert "9997 similar line(s) were dropped" in out.getvalue()


def test_info_and_distinct_messages_pass() -> None:
    flt = RepeatFilter(burst=1, window_s=60, clock=lambda: 0.0)
    logger, out = _logger(flt)
    for _ in range(5):
        logger.info("state sent")
    logger.warning("a")
    logger.warning("b")
    assert out.getvalue().count("state sent") == 5
    assert "a" in out.getvalue() and "b" in out.getvalue()


def test_install_does_not_stack() -> None:
    logger = logging.getLogger("test.throttle.install")
    logger.handlers = [logging.StreamHandler(io.StringIO())]
    install_repeat_filter(logger)
    install_repeat_filter(logger)
    assert sum(isinstance(f, RepeatFilter) for f in logger.handlers[0].filters) == 1

