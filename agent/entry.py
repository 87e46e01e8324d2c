"""The ``schulwart-agent`` command's entry point: ``run`` starts without the click command line.

A running agent lives for months; click and the other commands' modules (about 1 MiB of RSS)
would stay loaded for nothing. So a plain ``run`` (only ``--listen``, ``--data-dir`` and
``--config``, each with a value) is parsed here and runs :func:`run_agent` directly; every other
command line, and any ``run`` this parser is not sure of (``--help``, an unknown or repeated-looking
option, a missing value, a directory given as ``--config``), goes to the click command line in
:mod:`agent.cli`, so help texts and errors are click's, as before. Errors of the run itself are one
line on stderr and exit 2, as :func:`base.cli.run_cli` makes them; a task that died exits 1.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.config import load_config, parse_listen
from agent.store import DB_NAME
from base.clock import SystemClock
from base.cmdline import load_toml, require_database, resolve_data_dir, setup_logging
from protocol.errors import SchulwartError

PROG = "schulwart-agent"
ENROLL_HINT = "enroll first: schulwart-agent enroll --central URL --code CODE"
_RUN_OPTIONS = ("--listen", "--data-dir", "--config")


def existing_dir(data_dir: Path | None) -> Path:
    """The data dir of an enrolled agent; only `enroll` creates one, every other command refuses a new one.

    Raises ConfigError naming the directory when it holds no database.
    """
    directory = resolve_data_dir(data_dir, "agent")
    require_database(directory / DB_NAME, directory, ENROLL_HINT)
    return directory


def run_agent(listen: str | None, data_dir: Path | None, config_path: Path | None) -> bool:
    """``schulwart-agent run``: the agent until SIGTERM or SIGINT; False when a task died on its own.

    Raises ConfigError (config, listen address, data dir), StoreError and OSError (a file named
    in the config, the port) before the agent runs.
    """
    from agent.memory import share_one_heap
    from agent.wiring import build_agent

    share_one_heap()  # before any thread: one heap for all (agent/memory.py)
    config = load_config(config_path)
    if listen is not None:
        parse_listen(listen)  # bad input first: one line naming it, before the data dir is looked at
    setup_logging(config.agent.log_level)
    directory = existing_dir(data_dir)

    async def main() -> bool:
        # The file's own keys, so central's configuration can be laid under them (they win).
        local_doc = load_toml(config_path)
        source = str(config_path) if config_path is not None else None
        agent = build_agent(config, directory, SystemClock(), listen=listen, local_doc=local_doc, source=source)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await agent.run(stop)

    return asyncio.run(main())


def plain_run(argv: Sequence[str]) -> dict[str, str] | None:
    """``run``'s option values when ``argv`` (without the program name) is a plain run, else None.

    Plain: ``run`` followed only by ``--listen``, ``--data-dir`` and ``--config``, as ``--opt
    value`` or ``--opt=value``, each value non-empty and not starting with "-", ``--config`` not
    a directory and ``--data-dir`` not a file (click refuses those; None lets it say so).
    """
    if not argv or argv[0] != "run":
        return None
    values: dict[str, str] = {}
    rest = list(argv[1:])
    while rest:
        name, eq, value = rest.pop(0).partition("=")
        if name not in _RUN_OPTIONS:
            return None
        if not eq:
            if not rest:
                return None
            value = rest.pop(0)
        if not value or value.startswith("-"):
            return None
        values[name] = value  # a repeated option: the last wins, as in click
    config, data_dir = values.get("--config"), values.get("--data-dir")
    if (config is not None and os.path.isdir(config)) or (data_dir is not None and os.path.isfile(data_dir)):
        return None
    return values


def main() -> None:
    """Console-script entry point: a plain ``run`` here, everything else through :func:`agent.cli.main`."""
    values = plain_run(sys.argv[1:])
    if values is None:
        from agent.cli import main as click_main

        click_main()
        return
    os.umask(0o077)  # as run_cli: whatever the agent writes is owner-only
    config, data_dir = values.get("--config"), values.get("--data-dir")
    try:
        clean = run_agent(
            values.get("--listen"),
            Path(data_dir) if data_dir is not None else None,
            Path(config) if config is not None else None,
        )
    except SchulwartError as exc:
        _fail(exc.message)
    except OSError as exc:  # as base.cli.cli_errors: a file the user named failed
        _fail(f"{exc.strerror or exc}{f' {exc.filename}' if exc.filename else ''}")
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0 if clean else 1)  # a task died: let systemd restart us


def _fail(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.exit(2)
