"""The agent's memory report on SIGUSR2 (agent/memdiag.py), written only when SCHULWART_MEMDIAG asks."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from zeroconf.asyncio import AsyncZeroconf

from agent import memdiag


async def test_sigusr2_writes_a_report_with_every_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(memdiag.ENV_DIR, str(tmp_path))
    loop = asyncio.get_running_loop()
    aiozc = AsyncZeroconf(interfaces=["127.0.0.1"])  # a real one, so its cache is reported
    try:
        assert memdiag.install(loop) is True
        os.kill(os.getpid(), signal.SIGUSR2)
        for _ in range(100):
            if list(tmp_path.glob("memdiag-*.txt")):
                break
            await asyncio.sleep(0.05)
    finally:
        loop.remove_signal_handler(signal.SIGUSR2)
        await aiozc.async_close()
    (report,) = tmp_path.glob(f"memdiag-{os.getpid()}-1.txt")
    text = report.read_text()
    for section in ("== status", "== smaps_rollup", "== largest mappings", "== objects by type",
                    "== zeroconf cache", "== modules", "== pymalloc"):  # fmt: skip
        assert section in text
    assert "VmHWM:" in text and "Rss:" in text and "bytes in allocated blocks" in text
    assert "records" in text.split("== zeroconf cache")[1]


def test_without_the_variable_nothing_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(memdiag.ENV_DIR, raising=False)
    loop = asyncio.new_event_loop()
    try:
        assert memdiag.install(loop) is False
    finally:
        loop.close()
