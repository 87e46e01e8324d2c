"""`schulwart-agent remote …`: the technician's laptop asks an agent over its local API.

Speaks exactly the routes the page uses, with the technician token from a file (never on
the command line, where other users of the laptop could read it from the process list).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import click

from base.cli import (
    EmptyList,
    clean_cell,
    cli_errors,
    common_options,
    empty_message,
    format_moment,
    format_table,
)
from base.cmdline import load_toml
from base.config import parse_section
from base.errors import ConfigError

TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)


@dataclass(frozen=True, slots=True)
class RemoteSection:
    """``[remote]`` of the laptop's --config: the agent's URL, the token file and a CA file (paths)."""

    url: str = ""
    token_file: str = ""
    cafile: str = ""


def _token(path: Path) -> str:
    try:
        token = path.read_bytes().decode("ascii").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read token file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"token file {path} does not hold a token (it is not ASCII text)") from None
    if not token:
        raise ConfigError(f"token file {path} is empty")
    return token


async def fetch(url: str, path: str, token: str, cafile: Path | None = None) -> Mapping[str, Any]:
    """GET one API route; refusals and network errors become a ConfigError with one line."""
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    connector = aiohttp.TCPConnector(ssl=context) if context else None
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT, connector=connector) as session:
            async with session.get(url.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"}) as resp:
                try:
                    body = await resp.json(content_type=None)
                except (json.JSONDecodeError, aiohttp.ContentTypeError):
                    body = {}
                if resp.status != 200:
                    reason = body.get("error", resp.reason) if isinstance(body, dict) else resp.reason
                    raise ConfigError(f"agent at {url} refused: {resp.status} {reason}")
                if not isinstance(body, dict):
                    raise ConfigError(f"agent at {url} answered something that is not a JSON object")
                return body
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ConfigError(f"cannot reach agent at {url}: {exc or type(exc).__name__}") from None


def _options(func: Any) -> Any:
    func = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")(func)
    func = click.option("--cafile", type=click.Path(path_type=Path, dir_okay=False), help="CA for an agent with TLS.")(
        func
    )
    func = click.option(
        "--token-file", type=click.Path(path_type=Path, dir_okay=False), help="Token file ([remote] token_file)."
    )(func)
    func = click.option("--url", help="The agent, e.g. http://schulserver:8401 ([remote] url).")(func)
    # --data-dir is accepted like everywhere; remote commands keep no state of their own.
    return common_options("agent")(func)


def _target(
    url: str | None, token_file: Path | None, cafile: Path | None, config_path: Path | None
) -> tuple[str, str, Path | None]:
    """URL, token and CA from the flags, else from the [remote] section of --config."""
    # Only [remote] is read: the same file may hold the agent's own sections on a school server.
    doc = load_toml(config_path)
    section = parse_section(RemoteSection, doc.get("remote", {}), section="remote", source=str(config_path))
    url = url or section.url
    token_path = token_file or (Path(section.token_file) if section.token_file else None)
    ca = cafile or (Path(section.cafile) if section.cafile else None)
    if not url or token_path is None:
        raise ConfigError("give --url and --token-file (or [remote] url and token_file in --config)")
    return str(url), _token(token_path), ca


_TIME_KEYS = frozenset({"opened_at", "resolved_at", "last_seen", "acknowledged_at"})


def _rows(items: object, columns: Sequence[tuple[str, str]], what: EmptyList) -> str:
    """The same table the local command prints: times through format_moment, cells cleaned by format_table."""
    if not isinstance(items, list):
        items = []
    rows = [
        [format_moment(item.get(key)) if key in _TIME_KEYS else item.get(key) for key, _ in columns]
        for item in items
        if isinstance(item, Mapping)
    ]
    return format_table(rows, [heading for _, heading in columns]) if rows else empty_message(what)


def _emit(body: Mapping[str, Any], as_json: bool, text: str) -> None:
    sys.stdout.write((json.dumps(body, indent=2, ensure_ascii=False) if as_json else text) + "\n")


@click.group()
def remote() -> None:
    """Ask an agent over the network, as a technician on site."""


@remote.command("status")
@_options
@cli_errors
def remote_status(
    url: str | None,
    token_file: Path | None,
    cafile: Path | None,
    as_json: bool,
    data_dir: Path | None,
    config_path: Path | None,
) -> None:
    """The school at a glance.

    Example: schulwart-agent remote status --url http://10.0.0.5:8401 --token-file ~/token
    """
    del data_dir
    url, token, ca = _target(url, token_file, cafile, config_path)
    body = asyncio.run(fetch(url, "/api/v1/status", token, ca))
    school = body.get("school") or {}
    outbox = body.get("outbox") or {}
    lines = [
        f"school     {school.get('name')} ({school.get('id')}), carrier {school.get('carrier')}",
        f"incidents  {body.get('open_incidents')} open",
        f"outbox     {outbox.get('depth')} waiting, last seq {outbox.get('last_seq')}, acked {outbox.get('acked_seq')}",
        f"last sync  {format_moment(body.get('last_sync_at')) if body.get('last_sync_at') else 'never'}",
    ]
    _emit(body, as_json, "\n".join(clean_cell(line, 400) for line in lines))


@remote.command("incidents")
@_options
@click.option("--all", "show_all", is_flag=True, help="Resolved ones too.")
@cli_errors
def remote_incidents(
    url: str | None,
    token_file: Path | None,
    cafile: Path | None,
    as_json: bool,
    show_all: bool,
    data_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Open incidents (or all with --all)."""
    state = "all" if show_all else "open"
    del data_dir
    url, token, ca = _target(url, token_file, cafile, config_path)
    body = asyncio.run(fetch(url, f"/api/v1/incidents?state={state}&limit=1000", token, ca))
    columns = [("severity", "SEVERITY"), ("category", "CATEGORY"), ("title", "TITLE"), ("subject", "SUBJECT"),
               ("opened_at", "OPENED"), ("acknowledged_by", "ACK BY")]  # fmt: skip
    _emit(body, as_json, _rows(body.get("incidents", []), columns, "incidents"))


@remote.command("devices")
@_options
@click.option("--class", "device_class", help="Only this device class.")
@cli_errors
def remote_devices(
    url: str | None,
    token_file: Path | None,
    cafile: Path | None,
    as_json: bool,
    device_class: str | None,
    data_dir: Path | None,
    config_path: Path | None,
) -> None:
    """The inventory, with the real device names (they never leave the school)."""
    query = "/api/v1/devices?limit=1000" + (f"&class={device_class}" if device_class else "")
    del data_dir
    url, token, ca = _target(url, token_file, cafile, config_path)
    body = asyncio.run(fetch(url, query, token, ca))
    columns = [("name", "NAME"), ("class", "CLASS"), ("model", "MODEL"), ("state", "STATE"), ("last_seen", "LAST SEEN")]
    _emit(body, as_json, _rows(body.get("devices", []), columns, "devices"))
