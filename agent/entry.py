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

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.launch import run_agent
from protocol.errors import SchulwartError

PROG = "schulwart-agent"
_RUN_OPTIONS = ("--listen", "--data-dir", "--config")


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
