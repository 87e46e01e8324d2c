"""What a new operator ran into, following the README on a fresh install (each once broken)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from agent.store import Store
from base.cmdline import read_toml
from tests.agent.procs import AGENT


def test_central_without_its_extra_says_what_to_install_in_one_line() -> None:
    # The agent's venv has the schulwart-central script but not argon2 & co.
    code = (
        "import sys; sys.modules['argon2'] = None; from central.entry import main;"
        " sys.argv = ['x', '--help']; main()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "[central]" in lines[0] and "argon2" in lines[0], out.stderr


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b"\xef\xbb\xbf[agent]\nlog_level = \"INFO\"\n")
    assert read_toml(path) == {"agent": {"log_level": "INFO"}}


def test_export_to_a_missing_directory_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "agent"
    Store.open(data).close()
    target = tmp_path / "media" / "ubs" / "gs-nord.bundle"  # a typo in the stick's path
    out = subprocess.run([AGENT, "export", "--out", str(target), "--data-dir", str(data)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "no directory" in out.stderr and not (tmp_path / "media").exists()


async def test_an_idle_keep_alive_is_closed_without_a_warning(caplog) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from base.connguard import ConnectionLimits
    from tests.test_connguard import _guarded

    caplog.set_level(logging.DEBUG, logger="base.connguard")
    async with _guarded(ConnectionLimits(per_address=10, total=50, header_timeout=0.3)) as (_guard, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        await reader.readexactly(12)
        assert await asyncio.wait_for(reader.read(), 3) == b""  # closed after the idle deadline
        writer.close()
        silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(silent_reader.read(), 3) == b""  # never sent a request
        silent_writer.close()
    levels = [r.levelno for r in caplog.records if "no complete request" in r.getMessage()]
    assert sorted(levels) == [logging.DEBUG, logging.WARNING], levels
