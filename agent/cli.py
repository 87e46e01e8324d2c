"""The schulwart-agent command line: a thin layer over the library; errors become one line, exit 2."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import click

from agent.config import AgentConfig, load_config
from agent.identity import load_identity
from agent.incidents.engine import list_incidents
from agent.launch import ENROLL_HINT, existing_dir, run_agent
from agent.status import status_info
from agent.store import Store
from agent.store.inventory import device_json, list_devices
from agent.techapi.remote import remote
from base.cli import (
    cli_errors,
    common_options,
    counted,
    empty_message,
    format_moment,
    format_table,
    report_checks,
    run_cli,
    version_option,
)
from base.clock import SystemClock
from base.cmdline import resolve_data_dir, setup_logging
from base.errors import ConfigError

log = logging.getLogger("agent.cli")


def _config(config_path: Path | None) -> AgentConfig:
    return load_config(config_path)


def _existing_dir(data_dir: Path | None) -> Path:
    """The data dir of an enrolled agent; only `enroll` creates one, every other command refuses a new one."""
    return existing_dir(data_dir)


def _open_existing(data_dir: Path | None) -> tuple[Path, Store]:
    """The store of an agent that has enrolled; read commands never create one."""
    directory = _existing_dir(data_dir)
    return directory, Store.open(directory, migrate=False)


def _emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@version_option()
def cli() -> None:
    """Schulwart agent: runs on the school server; discovers, monitors, keeps and syncs."""


@cli.command()
@click.option("--central", "central_url", required=True, help="Central's base URL, e.g. https://schulwart.kreis.de")
@click.option("--code", required=True, help="The one-time enrollment code from central.")
@click.option("--force", is_flag=True, help="Enroll again even if this agent is enrolled (new key, new agent id).")
@common_options("agent")
@cli_errors
def enroll(central_url: str, code: str, force: bool, data_dir: Path | None, config_path: Path | None) -> None:
    """Enroll this agent with central: key pair, identity, local admin token.

    The code (from `schulwart-central enroll-code`) ends in a pin of central's keys; central's
    answer must match it, so plain http cannot be used to hand this agent other keys. The data
    dir is created owner-only; a failed enroll leaves nothing behind.

    Example:

        schulwart-agent enroll --central https://central.example \\
            --code q3ZB8w9kT1xVd0cJm4pR7sYe.Xk2v9QpL4tWc8ZrN1bHs5A
    """
    from agent.enroll import enroll as do_enroll
    from agent.enroll import plain_http_outside_loopback

    config = _config(config_path)
    # A one-shot command: its outcome is one line; routine INFO (migrations) would bury it.
    setup_logging("WARNING")
    directory = resolve_data_dir(data_dir, "agent")
    if plain_http_outside_loopback(central_url):
        click.echo(
            f"warning: {central_url} is plain http: the code's pin protects enrollment, but reports and the"
            " config will cross the network unencrypted; prefer https://",
            err=True,
        )
    identity = asyncio.run(
        do_enroll(central_url, code, directory, SystemClock(), force=force, timeout=config.sync.request_timeout)
    )
    click.echo(f"enrolled as agent {identity.agent_id} of school {identity.school_id} ({directory})", err=True)


@cli.command()
@click.option("--listen", default=None, help="HOST:PORT for the local API (default from config: 0.0.0.0:8401).")
@common_options("agent")
@cli_errors
def run(listen: str | None, data_dir: Path | None, config_path: Path | None) -> None:
    """Run the agent: monitors, incidents, sync and the local API, until SIGTERM.

    Example:

        schulwart-agent run --config /etc/schulwart/agent.toml --data-dir /var/lib/schulwart
    """
    if not run_agent(listen, data_dir, config_path):
        raise click.exceptions.Exit(1)  # a task died: let systemd restart us


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common_options("agent")
@cli_errors
def status(as_json: bool, data_dir: Path | None, config_path: Path | None) -> None:
    """Show identity, the effective configuration, outbox depth, last sync and open incidents (no network needed).

    With --config, the central URL and the discovery interfaces are those in use, not only what
    enrollment wrote down.
    """
    config = _config(config_path)
    directory, store = _open_existing(data_dir)
    try:
        info = status_info(directory, store, config)
    finally:
        store.close()
    if as_json:
        _emit_json(info)
        return
    click.echo(_status_text(info))


def _status_text(info: dict[str, Any]) -> str:
    ident = info["identity"]
    box = info["outbox"]
    central = "-"
    if ident:
        central = ident["central_url"]
        if ident["central_url_from"] == "config":
            central += f" ([sync] central_url; enrolled at {ident['enrolled_central_url']})"
    lines = [
        (
            f"agent      {ident['agent_id']} (school {ident['school_id']}, {ident['school_name']},"
            f" carrier {ident['carrier']})"
        )
        if ident
        else "agent      not enrolled",
        f"version    {info['version']}",
        f"central    {central}",
        f"outbox     last_seq {box['last_seq']}, acked {box['acked_seq']}, depth {box['depth']},"
        f" oldest unsent {_age(box['oldest_unsent_age_s'])}, {box['unsent_bytes']} bytes",
        f"last sync  {format_moment(info['last_sync_at']) if info['last_sync_at'] else 'never'}",
        f"config     {_held_config_text(info.get('central_config'))}",
        f"incidents  {info['open_incidents']} open",
        f"devices    {info['devices']}",
    ]
    discovery = info.get("discovery") or {}
    if discovery.get("mode") == "disabled":
        lines.append("discovery  disabled")
    elif discovery:
        where = ", ".join(discovery["listening"]) or "-"
        listening = "every interface" if discovery["mode"] == "all" else f"{where} ({discovery['mode']})"
        lines.append(f"discovery  listening on {listening}")
        ignored = ", ".join(f"{i['name']} {'/'.join(i['ipv4'])}" for i in discovery["ignored"])
        if ignored:
            lines.append(f"           not listening on {ignored} (set [discovery] interfaces to change)")
        if discovery.get("note"):
            lines.append(f"           {discovery['note']}")
    return "\n".join(_clean_line(line) for line in lines)


def _held_config_text(held: dict[str, Any] | None) -> str:
    if not held:
        return "none from central yet"
    sections = ", ".join(held["sections"]) or "no sections"
    issued = format_moment(held["issued_at"]) if held.get("issued_at") else "?"
    return f"central's version {held['version']} (issued {issued}; sets {sections}; this file's keys win)"


def _clean_line(line: str) -> str:
    # Names in these lines came from central or the network: no control characters reach the terminal.
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in line)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common_options("agent")
@cli_errors
def devices(as_json: bool, data_dir: Path | None, config_path: Path | None) -> None:
    """List the devices found at this school (real names: this stays on the school server)."""
    _config(config_path)
    _directory, store = _open_existing(data_dir)
    try:
        found = list_devices(store)
    finally:
        store.close()
    if as_json:
        _emit_json({"devices": [device_json(d) for d in found]})
        return
    rows = [
        [d.device_class, d.name, d.model, d.state, ",".join(d.addresses), format_moment(d.last_seen)] for d in found
    ]
    header = ["CLASS", "NAME", "MODEL", "STATE", "ADDRESSES", "LAST SEEN"]
    click.echo(format_table(rows, header) if rows else empty_message("devices"))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "show_all", is_flag=True, help="Resolved incidents too, not only open ones.")
@common_options("agent")
@cli_errors
def incidents(as_json: bool, show_all: bool, data_dir: Path | None, config_path: Path | None) -> None:
    """List open incidents (or all with --all), newest first."""
    _config(config_path)
    _directory, store = _open_existing(data_dir)
    try:
        found = list_incidents(store, open_only=not show_all)
    finally:
        store.close()
    if as_json:
        _emit_json({"incidents": [i.to_json() for i in found]})
        return
    rows = [
        [
            i.severity,
            i.category,
            i.title,
            i.subject,
            format_moment(i.opened_at),
            format_moment(i.resolved_at),
            str(i.flap_count),
        ]
        for i in found
    ]
    header = ["SEVERITY", "CATEGORY", "TITLE", "SUBJECT", "OPENED", "RESOLVED", "FLAPS"]
    click.echo(format_table(rows, header) if rows else empty_message("incidents"))


@cli.command()
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="Bundle file.")
@common_options("agent")
@cli_errors
def export(out: Path, data_dir: Path | None, config_path: Path | None) -> None:
    """Write the unsent outbox as a signed bundle for `schulwart-central import`.

    Example:

        schulwart-agent export --out /media/usb/gs-nord.bundle
    """
    from agent.sync.client import SyncSettings
    from agent.sync.export import export_bundle

    config = _config(config_path)
    setup_logging("WARNING")
    if not out.parent.is_dir():
        # A mistyped USB path must not quietly put the bundle on the server's own disk.
        raise ConfigError(f"--out: no directory {out.parent} (is the stick mounted?)")
    directory, store = _open_existing(data_dir)
    try:
        identity = load_identity(store)
        settings = SyncSettings.resolve(config.sync, identity.sync if identity else {})
        result = export_bundle(
            store,
            directory,
            out,
            SystemClock(),
            batch_events=settings.max_batch_events,
            batch_bytes=settings.max_batch_bytes,
        )
    finally:
        store.close()
    span = f"seq {result.seq_from}..{result.seq_to}" if result.events else "the outbox is empty"
    events = counted(result.events, "event", "events")
    click.echo(f"exported {events} ({span}) in {counted(result.envelopes, 'report', 'reports')} to {out}", err=True)



@cli.command("rotate-key")
@common_options("agent")
@cli_errors
def rotate_key(data_dir: Path | None, config_path: Path | None) -> None:
    """Replace this agent's signing key: a new key pair, announced to central in a report signed by the old key.

    Central then accepts only the new key (the old one is retired for good). Safe to run while
    the agent runs (it takes the new key at central's first refusal of the old) and safe to run
    again after an interruption (the waiting new key is announced again).

    Example:

        sudo -u schulwart schulwart-agent rotate-key --data-dir /var/lib/schulwart --config /etc/schulwart/agent.toml
    """
    from agent.rotation import rotate_key as do_rotate
    from agent.status import effective_central_url

    config = _config(config_path)
    setup_logging("WARNING")
    directory = _existing_dir(data_dir)
    store = Store.open(directory)
    try:
        identity = load_identity(store)
        if identity is None:
            raise click.UsageError(ENROLL_HINT)
        url, _source = effective_central_url(config, identity)
        new_keyid = asyncio.run(
            do_rotate(directory, store, SystemClock(), central_url=url, timeout=config.sync.request_timeout)
        )
    finally:
        store.close()
    click.echo(f"key rotated: {new_keyid[:16]}… is in force at central; the old key is retired", err=True)


@cli.command()
@common_options("agent")
@cli_errors
def doctor(data_dir: Path | None, config_path: Path | None) -> None:
    """Check, one line each, what this agent needs; exit 0 only if every check passes.

    The data dir (owner, mode, free space), central (reachable, TLS, its version), the clock
    against central's, a real mDNS query on the discovery interface, one reading of each
    meter, one request to the WLAN controller, and the systemd unit. A failed line says how
    to fix it.

    Example: sudo -u schulwart schulwart-agent doctor --config /etc/schulwart/agent.toml --data-dir /var/lib/schulwart
    """
    from agent.doctor import run_checks

    config = _config(config_path)
    setup_logging("ERROR")
    directory = _existing_dir(data_dir)
    report_checks(asyncio.run(run_checks(config, directory, SystemClock())))


cli.add_command(remote)


def main() -> None:
    """Console-script entry point."""
    run_cli(cli, "schulwart-agent")
