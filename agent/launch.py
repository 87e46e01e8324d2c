"""``schulwart-agent run`` itself: the agent until SIGTERM, on an enrolled data dir.

Both ways in use it: the console script's plain ``run`` (:mod:`agent.entry`, without click) and
click's ``run`` (:mod:`agent.cli`). Only this module and :mod:`agent.wiring` know how an agent is
built.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from agent.config import load_config, parse_listen
from agent.store import DB_NAME
from base.clock import SystemClock
from base.cmdline import load_toml, require_database, resolve_data_dir, setup_logging

ENROLL_HINT = "enroll first: schulwart-agent enroll --central URL --code CODE"


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
        if os.environ.get("SCHULWART_MEMDIAG"):  # profiling only
            from agent import memdiag

            memdiag.install(loop)
        return await agent.run(stop)

    return asyncio.run(main())
