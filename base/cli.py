"""What every schulwart command shares: --data-dir/--config, durations, one-line errors, output.

Both CLIs (agent and central) and the simulator use it; errors never reach the user as
a traceback: a usage error, a ProtocolError or a ConfigError becomes one line on stderr
and exit code 2.

Data dirs: only the commands that create state (``serve``, ``school add``, ``enroll``) call
:func:`create_data_dir`; every other command calls :func:`require_database`, so a mistyped
``--data-dir`` is refused with its path instead of silently becoming a new, empty one.

Output: every table goes through :func:`format_table` (control characters escaped, so a
hostname with a newline cannot forge a row), every moment through :func:`format_moment`
(local time, minutes), every "nothing to show" through :func:`empty_message`, in German
when the locale is German and in English otherwise; local and remote commands share them.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import click

from base.cmdline import default_data_dir
from base.version import version
from protocol.errors import SchulwartError

F = TypeVar("F", bound=Callable[..., Any])

def common_options(role: str) -> Callable[[F], F]:
    """Add --data-dir and --config to a subcommand (they go after its name)."""

    def decorate(func: F) -> F:
        func = click.option(
            "--config",
            "config_path",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="TOML configuration file.",
        )(func)
        func = click.option(
            "--data-dir",
            type=click.Path(path_type=Path, file_okay=False),
            default=None,
            help=f"Where state is kept (default: $SCHULWART_DATA_DIR or {default_data_dir(role)}).",
        )(func)
        return func

    return decorate


def version_option() -> Callable[[F], F]:
    """``--version`` for a command group: the one version of :mod:`base.version`."""
    return click.version_option(version(), "--version", message="%(prog)s %(version)s")


def run_cli(group: click.Group, prog: str) -> None:
    """Run a click group; every refusal becomes one line on stderr and exit 2.

    The umask is set to 077 first: whatever a command writes is owner-only even where a
    library creates the file (SQLite's journal files, an export bundle).
    """
    os.umask(0o077)
    try:
        # Outside standalone mode click *returns* the code of an Exit raised in a command.
        code = group.main(prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo(f"{prog}: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        click.echo(f"{prog}: error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"{prog}: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except SchulwartError as exc:
        click.echo(f"{prog}: error: {exc.message}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def clean_cell(value: object, max_len: int = 60) -> str:
    """One table cell: control characters escaped (``\\n``, ``\\x1b``), cut to ``max_len`` characters with "…".

    None becomes "-". Text from the network (hostnames, device names, titles) goes through
    this before it reaches a terminal, so it can neither add rows nor send escape sequences.
    """
    if value is None:
        return "-"
    text = _CONTROL.sub(lambda m: _ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), str(value))
    return text if len(text) <= max_len else text[: max_len - 1] + "…"


def format_table(rows: Sequence[Sequence[object]], header: Sequence[str], *, max_len: int = 60) -> str:
    """A plain text table for the terminal: columns padded to their widest cell, each cell :func:`clean_cell`-ed."""
    cells = [[clean_cell(c, max_len) for c in row] for row in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *cells, strict=False)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in out)


def format_moment(value: datetime | str | None) -> str:
    """A moment for a table: local time to the minute, ``2026-11-30 09:34``; "-" for None.

    Takes an aware datetime or RFC 3339 text as the API sends it (``2026-11-30T08:34:03.920049Z``);
    text that is not a time is shown cleaned, as it came.
    """
    if value is None:
        return "-"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return clean_cell(value)
    if value.tzinfo is None:
        return value.strftime("%Y-%m-%d %H:%M")
    return value.astimezone().strftime("%Y-%m-%d %H:%M")


def ui_language() -> str:
    """"de" when the locale (LC_ALL, LC_MESSAGES, LANG, in that order) is German, else "en"."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name)
        if value:
            return "de" if value.lower().startswith("de") else "en"
    return "en"


EmptyList = Literal["devices", "incidents", "schools", "agents", "tokens", "users", "configuration layers"]
_EMPTY: dict[EmptyList, tuple[str, str]] = {
    "devices": ("no devices", "keine Geräte"),
    "incidents": ("no incidents", "keine Vorfälle"),
    "schools": ("no schools", "keine Schulen"),
    "agents": ("no agents", "keine Agenten"),
    "tokens": ("no tokens", "keine Token"),
    "users": ("no users", "keine Benutzer"),
    "configuration layers": ("no configuration layers", "keine Konfigurationsebenen"),
}


def empty_message(what: EmptyList) -> str:
    """What an empty list says, e.g. "no incidents" / "keine Vorfälle"; every kind of list has its words."""
    english, german = _EMPTY[what]
    return german if ui_language() == "de" else english


@dataclass(frozen=True, slots=True)
class Check:
    """One `doctor` line: ``name`` (short), ``outcome`` ("ok", "fail" or "skip") and what was found or the fix."""

    name: str
    outcome: Literal["ok", "fail", "skip"]
    detail: str


def report_checks(checks: Sequence[Check]) -> None:
    """Print one line per check (ok green, FAIL red, skip yellow); raise Exit(1) when any failed.

    The failed checks are named once more on stderr, so a script sees why the exit code is 1.
    """
    width = max((len(c.name) for c in checks), default=0)
    marks = {"ok": ("ok", "green"), "fail": ("FAIL", "red"), "skip": ("skip", "yellow")}
    for check in checks:
        word, colour = marks[check.outcome]
        detail = clean_cell(check.detail, 400)
        click.echo(f"{click.style(word.ljust(4), fg=colour)}  {check.name.ljust(width)}  {detail}")
    failed = [c.name for c in checks if c.outcome == "fail"]
    if failed:
        click.echo(f"{counted(len(failed), 'check', 'checks')} failed: {', '.join(failed)}", err=True)
        raise click.exceptions.Exit(1)


def counted(n: int, one: str, many: str) -> str:
    """``1 report``, ``2 reports``: the number with the right form of the noun."""
    return f"{n} {one if n == 1 else many}"


def cli_errors(func: F) -> F:
    """Turn OSError inside a command into a one-line error (a file the user named failed)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OSError as exc:
            name = f" {exc.filename}" if exc.filename else ""
            raise click.ClickException(f"{exc.strerror or exc}{name}") from None

    return wrapper  # type: ignore[return-value]
