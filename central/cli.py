"""The schulwart-central command line: a thin layer over the store, the app and the ingestor.

Commands that create a code or a token print only it on stdout; everything else they say
goes to stderr. Refusals are one line on stderr and exit 2 (base.cli.run_cli).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from base.cli import cli_errors, common_options, parse_duration, resolve_data_dir, run_cli, setup_logging
from base.clock import SystemClock
from base.errors import ConfigError
from central.config import CentralConfig, load_config
from central.enrollment import create_code, hash_secret, valid_id
from central.errors import NotFoundError
from central.ingest import MAX_BUNDLE_BYTES, Ingestor
from central.keystore import load_keystore
from central.storage import open_store
from central.storage.base import Storage
from central.timestamps import iso
from central.users import check_password, hash_password, parse_role
from central.web.app import create_app, start
from protocol.tokens import MAX_LIFETIME, issue_technician_token, validate_scope

log = logging.getLogger("central")

T = TypeVar("T")
MAX_CODE_TTL = timedelta(days=30)
_NAME_RE = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


def _config(data_dir: Path | None, config_path: Path | None, **overrides: Any) -> CentralConfig:
    return load_config(config_path, resolve_data_dir(data_dir, "central"), **overrides)


def _quiet(config: CentralConfig) -> CentralConfig:
    """Logging for the one-shot commands: warnings only, so stderr stays readable."""
    setup_logging("WARNING")
    return config


def _with_store(config: CentralConfig, work: Callable[[Storage], Awaitable[T]]) -> T:
    async def run() -> T:
        store = open_store(config)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _text(value: str, what: str, max_len: int = 200) -> str:
    if not _NAME_RE.fullmatch(value) or len(value) > max_len:
        raise click.BadParameter(f"{what} must be 1..{max_len} printable characters")
    return value


def _ttl(text: str, limit: timedelta, what: str) -> timedelta:
    ttl = parse_duration(text)
    if ttl <= timedelta(0) or ttl > limit:
        hours = int(limit.total_seconds() // 3600)
        raise click.BadParameter(f"{what} must be more than 0 and at most {hours}h")
    return ttl


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Schulwart central: enrollment, signed ingest, the schools' health and the read API."""


# --------------------------------------------------------------------------- serve


@cli.command()
@common_options("central")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8400; 0 picks a free one).")
@click.option("--db", default=None, help="SQLite path or sqlite:///path (default: central.sqlite3 in the data dir).")
@cli_errors
def serve(data_dir: Path | None, config_path: Path | None, host: str | None, port: int | None, db: str | None) -> None:
    """Run central until SIGINT/SIGTERM.

    Example: schulwart-central serve --data-dir /var/lib/schulwart --port 8400
    """
    config = _config(data_dir, config_path, host=host, port=port, db=db)
    setup_logging(config.log_level)
    asyncio.run(_serve(config))


async def _serve(config: CentralConfig) -> None:
    keys = load_keystore(config.data_dir)
    store = open_store(config)
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        runner, url = await start(create_app(config, store, keys), config.host, config.port)
        log.info("central listening on %s (database %s)", url, config.db_path)
        await stop.wait()
        log.info("central stopping")
        await runner.cleanup()
    finally:
        await store.close()


# --------------------------------------------------------------------------- schools


@cli.group()
def school() -> None:
    """Schools and their carriers (Schulträger)."""


@school.command("add")
@common_options("central")
@click.option("--id", "school_id", required=True, help="Short id, [A-Za-z0-9._:@-].")
@click.option("--name", required=True, help="Display name.")
@click.option("--carrier", required=True, help="The school carrier (Schulträger).")
@cli_errors
def school_add(data_dir: Path | None, config_path: Path | None, school_id: str, name: str, carrier: str) -> None:
    """Add a school.

    Example: schulwart-central school add --id gs-nord --name "GS Nord" --carrier Musterstadt
    """
    if not valid_id(school_id):
        raise click.BadParameter(
            "must be 1..128 of [A-Za-z0-9._:@-], starting with a letter or digit", param_hint="--id"
        )
    name, carrier = _text(name, "--name"), _text(carrier, "--carrier", 128)
    config = _quiet(_config(data_dir, config_path))
    _with_store(config, lambda store: store.add_school(school_id, name, carrier, iso(SystemClock().now())))
    click.echo(f"school {school_id} added (carrier {carrier})", err=True)


@school.command("list")
@common_options("central")
@click.option("--carrier", default=None, help="Only this carrier's schools.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of columns.")
@cli_errors
def school_list(data_dir: Path | None, config_path: Path | None, carrier: str | None, as_json: bool) -> None:
    """List schools: id, carrier, name."""
    config = _quiet(_config(data_dir, config_path))
    for row in _with_store(config, lambda store: store.list_schools(carrier)):
        if as_json:
            click.echo(json.dumps({"id": row.id, "name": row.name, "carrier": row.carrier}, ensure_ascii=False))
        else:
            click.echo(f"{row.id}\t{row.carrier}\t{row.name}")


# --------------------------------------------------------------------------- codes and tokens


@cli.command("enroll-code")
@common_options("central")
@click.option("--school", "school_id", required=True, help="The school the agent will belong to.")
@click.option("--ttl", default=None, help="How long the code works (default 24h, at most 30d).")
@cli_errors
def enroll_code(data_dir: Path | None, config_path: Path | None, school_id: str, ttl: str | None) -> None:
    """Print a one-time enrollment code for a school (only the code, on stdout)."""
    config = _quiet(_config(data_dir, config_path))
    lifetime = _ttl(ttl, MAX_CODE_TTL, "--ttl") if ttl is not None else config.enroll_code_ttl
    code = _with_store(config, lambda store: create_code(store, school_id, lifetime, SystemClock().now()))
    click.echo(code)


@cli.group()
def token() -> None:
    """Technician tokens (PASETO v4.public) for agents' local APIs."""


@token.command("issue")
@common_options("central")
@click.option("--technician", required=True, help="Who the token is for.")
@click.option("--scope", default="all", show_default=True, help="school:ID, carrier:NAME or all.")
@click.option("--ttl", default="8h", show_default=True, help="Lifetime, at most 12h.")
@cli_errors
def token_issue(data_dir: Path | None, config_path: Path | None, technician: str, scope: str, ttl: str) -> None:
    """Print a technician token signed with the token-issuer key (only the token, on stdout)."""
    technician = _text(technician, "--technician", 128)
    try:
        validate_scope(scope)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scope") from None
    lifetime = _ttl(ttl, MAX_LIFETIME, "--ttl")
    config = _quiet(_config(data_dir, config_path))

    async def check(store: Storage) -> None:
        kind, _, name = scope.partition(":")
        if kind == "school" and await store.get_school(name) is None:
            raise NotFoundError(f"no school with id {name!r}")
        if kind == "carrier" and not await store.carrier_exists(name):
            raise NotFoundError(f"no school belongs to carrier {name!r}")

    _with_store(config, check)
    keys = load_keystore(config.data_dir)
    click.echo(issue_technician_token(keys.token_key, technician, scope, SystemClock().now(), lifetime))


@cli.group("api-token")
def api_token() -> None:
    """Bearer tokens for the read API."""


@api_token.command("create")
@common_options("central")
@click.option("--name", required=True, help="What the token is for (shown in logs).")
@click.option("--carrier", default=None, help="Bind the token to one carrier's schools.")
@cli_errors
def api_token_create(data_dir: Path | None, config_path: Path | None, name: str, carrier: str | None) -> None:
    """Print a new read-API bearer token (only the token, on stdout); only its hash is stored."""
    name = _text(name, "--name", 128)
    carrier = _text(carrier, "--carrier", 128) if carrier is not None else None
    config = _quiet(_config(data_dir, config_path))
    secret = "swc_" + secrets.token_urlsafe(32)

    async def create(store: Storage) -> int:
        await store.add_api_token(hash_secret(secret), name, carrier, iso(SystemClock().now()))
        return len(await store.list_schools(carrier)) if carrier is not None else -1

    schools = _with_store(config, create)
    if schools == 0:
        # A typo in the carrier would give a token that silently sees nothing.
        click.echo(f"warning: no school has carrier {carrier!r} yet; this token sees nothing until one does", err=True)
    click.echo(secret)


# --------------------------------------------------------------------------- staff users


def _read_password(confirm: bool) -> str:
    """The password from stdin: one line when piped, a hidden prompt (twice) on a terminal."""
    if sys.stdin.isatty():
        password = str(click.prompt("Password", hide_input=True, confirmation_prompt=confirm, err=True))
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        return check_password(password)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="password (stdin)") from None


@cli.group()
def user() -> None:
    """Staff accounts of the dashboard (password from stdin, stored as an Argon2id hash)."""


@user.command("add")
@common_options("central")
@click.option("--name", required=True, help="Login name, shown beside acknowledgements and notes.")
@click.option("--role", required=True, help="admin, staff or carrier:NAME (sees only that carrier's schools).")
@cli_errors
def user_add(data_dir: Path | None, config_path: Path | None, name: str, role: str) -> None:
    """Add a staff user; the password is read from stdin.

    Example: printf '%s\\n' "$PASSWORD" | schulwart-central user add --name a.weber --role carrier:Musterstadt
    """
    name = _text(name, "--name", 128)
    try:
        kind, carrier = parse_role(role)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--role") from None
    config = _quiet(_config(data_dir, config_path))
    password_hash = hash_password(_read_password(confirm=True))

    async def add(store: Storage) -> int:
        await store.add_user(name, kind, carrier, password_hash, iso(SystemClock().now()))
        return len(await store.list_schools(carrier)) if carrier is not None else -1

    if _with_store(config, add) == 0:
        click.echo(f"warning: no school has carrier {carrier!r} yet; this user sees nothing until one does", err=True)
    click.echo(f"user {name} added ({role})", err=True)


@user.command("list")
@common_options("central")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of columns.")
@cli_errors
def user_list(data_dir: Path | None, config_path: Path | None, as_json: bool) -> None:
    """List users: name, role, created (never the password hash)."""
    config = _quiet(_config(data_dir, config_path))
    for row in _with_store(config, lambda store: store.list_users()):
        role = f"carrier:{row.carrier}" if row.role == "carrier" else row.role
        if as_json:
            click.echo(json.dumps({"name": row.name, "role": role, "created_at": row.created_at}, ensure_ascii=False))
        else:
            click.echo(f"{row.name}\t{role}\t{row.created_at}")


@user.command("remove")
@common_options("central")
@click.argument("name")
@cli_errors
def user_remove(data_dir: Path | None, config_path: Path | None, name: str) -> None:
    """Remove a user; its open sessions end at once."""
    config = _quiet(_config(data_dir, config_path))
    if not _with_store(config, lambda store: store.remove_user(name)):
        raise NotFoundError(f"no user {name!r}")
    click.echo(f"user {name} removed", err=True)


@user.command("passwd")
@common_options("central")
@click.argument("name")
@cli_errors
def user_passwd(data_dir: Path | None, config_path: Path | None, name: str) -> None:
    """Set a user's password (from stdin); its open sessions end at once."""
    config = _quiet(_config(data_dir, config_path))
    if _with_store(config, lambda store: store.get_user(name)) is None:
        raise NotFoundError(f"no user {name!r}")
    password_hash = hash_password(_read_password(confirm=True))
    if not _with_store(config, lambda store: store.set_password(name, password_hash, iso(SystemClock().now()))):
        raise NotFoundError(f"no user {name!r}")
    click.echo(f"password of {name} changed", err=True)


# --------------------------------------------------------------------------- agents


@cli.group()
def agent() -> None:
    """Enrolled agents."""


@agent.command("revoke")
@common_options("central")
@click.argument("agent_id")
@cli_errors
def agent_revoke(data_dir: Path | None, config_path: Path | None, agent_id: str) -> None:
    """Refuse this agent's reports from now on (403); it must enroll again."""
    config = _quiet(_config(data_dir, config_path))
    if not _with_store(config, lambda store: store.revoke_agent(agent_id, iso(SystemClock().now()))):
        raise NotFoundError(f"no agent {agent_id!r}")
    click.echo(f"agent {agent_id} revoked", err=True)


@agent.command("list")
@common_options("central")
@click.option("--school", "school_id", default=None, help="Only this school's agents.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of columns.")
@cli_errors
def agent_list(data_dir: Path | None, config_path: Path | None, school_id: str | None, as_json: bool) -> None:
    """List agents: id, school, hostname, version, acked seq, last contact, revoked."""
    config = _quiet(_config(data_dir, config_path))
    for row in _with_store(config, lambda store: store.list_agents(school_id)):
        item = {
            "agent_id": row.agent_id,
            "school_id": row.school_id,
            "hostname": row.hostname,
            "version": row.version,
            "acked_seq": row.acked_seq,
            "last_report_at": row.last_report_at,
            "revoked": row.revoked,
        }
        if as_json:
            click.echo(json.dumps(item, ensure_ascii=False))
        else:
            columns = [*(str(v) if v is not None else "-" for v in list(item.values())[:-1])]
            click.echo("\t".join([*columns, "revoked" if row.revoked else "active"]))


# --------------------------------------------------------------------------- import


@cli.command("import")
@common_options("central")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@cli_errors
def import_bundle(data_dir: Path | None, config_path: Path | None, file: Path) -> None:
    """Ingest an export bundle carried from an offline school (same checks as HTTP).

    Example: schulwart-central import /media/usb/gs-nord-2024-05-01.bundle
    """
    config = _quiet(_config(data_dir, config_path))
    if file.stat().st_size > MAX_BUNDLE_BYTES:
        raise ConfigError(f"{file} is larger than {MAX_BUNDLE_BYTES} bytes")
    body = file.read_bytes()

    async def work(store: Storage) -> str:
        ingestor = Ingestor(
            store, SystemClock(), max_envelope_bytes=config.max_decoded_bytes, max_events=config.max_events
        )
        s = await ingestor.import_bundle(body)
        return (
            f"imported {file.name}: agent {s.agent_id} school {s.school_id}, {s.envelopes} envelopes, "
            f"{s.stored} new events, acked through {s.acked_through}"
        )

    click.echo(_with_store(config, work), err=True)


def main() -> None:
    """Console-script entry point."""
    run_cli(cli, "schulwart-central")
