"""What every schulwart command shares: --data-dir/--config, durations, one-line errors.

Both CLIs (agent and central) and the simulator use it; errors never reach the user as
a traceback: a usage error, a ProtocolError or a ConfigError becomes one line on stderr
and exit code 2.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import tomllib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from base.errors import ConfigError
from base.logthrottle import RepeatFilter
from protocol.errors import SchulwartError

F = TypeVar("F", bound=Callable[..., Any])

_DURATION_RE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def default_data_dir(role: str) -> Path:
    """$SCHULWART_DATA_DIR, else a per-user directory (XDG data home)."""
    env = os.environ.get("SCHULWART_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "schulwart" / role


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '24h', '7d' or combinations like '1h30m'."""
    text = text.strip()
    if not text or _DURATION_RE.sub("", text):
        raise ConfigError(f"not a duration: {text!r} (use e.g. 30s, 15m, 8h, 7d)")
    seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION_RE.findall(text))
    return timedelta(seconds=seconds)


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed TOML document of ``path``; ConfigError (one line naming the file) when it cannot be read.

    Covers a missing or unreadable file, bytes that are not UTF-8 and invalid TOML.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path} is not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from None


def load_toml(path: Path | None) -> dict[str, Any]:
    """Read a TOML config file (None: an empty document); a missing or broken file is a ConfigError naming it."""
    return {} if path is None else read_toml(path)


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


def resolve_data_dir(data_dir: Path | None, role: str) -> Path:
    """The --data-dir given, or the default for this role."""
    return data_dir if data_dir is not None else default_data_dir(role)


def setup_logging(level: str = "INFO") -> None:
    """One line per event on stderr; repeated warnings and errors are rate-limited (base.logthrottle)."""
    root = logging.getLogger()
    before = list(root.handlers)
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # Only on the handler made here: a host that brought its own (a test runner) keeps it unfiltered.
    repeat = RepeatFilter()
    for handler in root.handlers:
        if handler not in before:
            handler.addFilter(repeat)


def run_cli(group: click.Group, prog: str) -> None:
    """Run a click group; every refusal becomes one line on stderr and exit 2."""
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


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table for the terminal: columns padded to their widest cell."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in out)


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
