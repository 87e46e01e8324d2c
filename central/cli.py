"""The schulwart-central command line: a thin layer over the store, the app and the ingestor.

Commands that create a code or a token print only it on stdout; everything else they say
goes to stderr. Refusals are one line on stderr and exit 2 (base.cli.run_cli).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import getpass
import json
import logging
import os
import re
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

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
from base.cmdline import create_data_dir, parse_duration, require_database, resolve_data_dir, setup_logging
from base.errors import ConfigError, SchulwartError
from central.agent_config import (
    MAX_LAYER_BYTES,
    check_layer,
    effective_for,
    layer_sections,
    require_scope,
    scope_of,
)
from central.alerts.channels import DeliveryError
from central.alerts.service import open_alerts
from central.config import CentralConfig, load_config
from central.enrollment import create_code, hash_secret, valid_id
from central.errors import AlreadyExistsError, NotFoundError
from central.ingest import MAX_BUNDLE_BYTES, Ingestor
from central.keystore import load_keystore, start_rotation
from central.storage import describe_database, open_store
from central.storage.interface import AlertDelivery, IssuedToken, Storage
from central.timestamps import iso
from central.users import check_password, hash_password, parse_role
from central.web.app import create_app, start
from central.workers import WorkerRole, parse_workers, reserve_port, supervise
from protocol.keys import keyid
from protocol.tokens import MAX_LIFETIME, issue_technician_token, validate_scope

log = logging.getLogger("central")

T = TypeVar("T")
MAX_CODE_TTL = timedelta(days=30)
_NAME_RE = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


def _config(data_dir: Path | None, config_path: Path | None, **overrides: Any) -> CentralConfig:
    return load_config(config_path, resolve_data_dir(data_dir, "central"), **overrides)


def _quiet(config: CentralConfig, *, creates: bool = False) -> CentralConfig:
    """Logging for the one-shot commands (warnings only, so stderr stays readable), and the data dir check.

    Only ``serve`` and ``school add`` create state (``creates``); every other command refuses a
    data dir without a database, so a mistyped --data-dir is named instead of made.
    """
    setup_logging("WARNING")
    if creates:
        create_data_dir(config.data_dir)
    elif config.db_path is not None:  # a PostgreSQL database is shared: it exists before any node does
        require_database(config.db_path, config.data_dir, "a new central starts with `schulwart-central school add`")
    return config


def _operator() -> str:
    """Who runs this command, for the logs of revocations and issued tokens: the OS user name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER: a container's numeric uid
        return f"uid {os.getuid()}"


def _with_store(config: CentralConfig, work: Callable[[Storage], Awaitable[T]]) -> T:
    async def run() -> T:
        store = await open_store(config)
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
@version_option()
def cli() -> None:
    """Schulwart central: enrollment, signed ingest, the schools' health and the read API."""


# --------------------------------------------------------------------------- serve


@cli.command()
@common_options("central")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8400; 0 picks a free one).")
@click.option(
    "--db",
    default=None,
    help="SQLite path, sqlite:///path or postgresql://user@host/dbname (default: central.sqlite3 in the data dir).",
)
@click.option(
    "--workers",
    "workers_text",
    default="1",
    show_default=True,
    help="Processes sharing the port (SO_REUSEPORT): a number or 'auto' (one per core). PostgreSQL only.",
)
@cli_errors
def serve(
    data_dir: Path | None,
    config_path: Path | None,
    host: str | None,
    port: int | None,
    db: str | None,
    workers_text: str,
) -> None:
    """Run central until SIGINT/SIGTERM.

    Example: schulwart-central serve --data-dir /var/lib/schulwart --port 8400
    """
    try:
        workers = parse_workers(workers_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    config = _config(data_dir, config_path, host=host, port=port, db=db)
    if workers > 1 and config.db_path is not None:
        # Group commit batches one process's writers; several processes on one SQLite file
        # would queue on its single write lock instead, and fsync once each.
        raise click.ClickException(
            f"--workers {workers} needs PostgreSQL: a SQLite database takes one process (use --workers 1)"
        )
    setup_logging(config.log_level)
    create_data_dir(config.data_dir)
    if workers == 1:
        asyncio.run(_serve(config))
        return
    _serve_workers(config, workers)


def _serve_workers(config: CentralConfig, workers: int) -> None:
    """The parent of ``serve --workers N`` (see central.workers): reserve the port, fork, watch."""
    load_keystore(config.data_dir)  # a missing or unreadable key stops serve here, once, with one line
    reserved, port = reserve_port(config.host, config.port)
    shown = f"[{config.host}]" if ":" in config.host else config.host
    config = dataclasses.replace(config, port=port)

    def run_worker(role: WorkerRole, ready: Callable[[], None]) -> int:
        try:
            asyncio.run(_serve(config, role, ready))
        except (SchulwartError, OSError) as exc:
            message = exc.message if isinstance(exc, SchulwartError) else str(exc)
            click.echo(f"schulwart-central: error: worker {role.index}: {message}", err=True)
            return 2
        return 0

    def all_ready() -> None:
        log.info("central listening on http://%s:%d (database %s, %d workers, pid %d)",
                 shown, port, describe_database(config), workers, os.getpid())  # fmt: skip

    try:
        code = supervise(workers, run_worker, on_all_ready=all_ready, keep_fds=[reserved.fileno()])
    finally:
        reserved.close()
    log.info("central stopped")
    if code:
        raise SystemExit(code)


# Ingest makes thousands of short-lived containers per batch (the decoded report, the parsed
# events): at CPython's default threshold (700 allocations) the collector ran several times per
# batch, walking the batch's live objects each time, and its full collections walked every object
# the process had loaded. Profiled on the ingest benchmark: 5 us of CPU per event in the collector.
GC_THRESHOLDS = (20_000, 10, 10)


def settle_heap() -> None:
    """Once a node is up: freeze what start-up loaded out of collection and collect the young less often.

    Start-up's objects (modules, the app) live as long as the process; frozen, a full collection
    no longer walks them. Cycles among new objects are still found, after more allocations.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _serve(
    config: CentralConfig, role: WorkerRole | None = None, ready: Callable[[], None] | None = None
) -> None:
    """One process of a node: the app, plus the node's duties when ``role`` says so (worker 0, or alone)."""
    role = role or WorkerRole()
    keys = load_keystore(config.data_dir)
    store = await open_store(config)
    try:
        async with contextlib.AsyncExitStack() as stack:
            alerts = None
            if config.alerts.rule and role.runs_node_duties:
                # Secrets and the holidays file are read now: a bad one stops serve with one line.
                alerts = await stack.enter_async_context(
                    open_alerts(store, config.alerts, SystemClock(), config_dir=_config_dir(config))
                )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            app = create_app(config, store, keys, alerts=alerts, silence_monitor=role.runs_node_duties)
            runner, url = await start(app, config.host, config.port, reuse_port=role.count > 1)
            settle_heap()
            if ready is None:
                log.info("central listening on %s (database %s)", url, describe_database(config))
            else:
                log.info("central worker %d of %d ready (pid %d)", role.index, role.count, os.getpid())
                ready()
            await stop.wait()
            log.info("central stopping")
            await runner.cleanup()
    finally:
        await store.close()


def _config_dir(config: CentralConfig) -> Path | None:
    """Where relative file names in [alerts] count from: the config file's directory."""
    return config.config_file.parent if config.config_file is not None else None


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
    config = _quiet(_config(data_dir, config_path), creates=True)
    load_keystore(config.data_dir)  # a new central's keys exist from its first state on: back them up with it
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
    rows = _with_store(config, lambda store: store.list_schools(carrier))
    if as_json:
        for row in rows:
            click.echo(json.dumps({"id": row.id, "name": row.name, "carrier": row.carrier}, ensure_ascii=False))
        return
    table = [[row.id, row.carrier, row.name] for row in rows]
    click.echo(format_table(table, ["ID", "CARRIER", "NAME"]) if table else empty_message("schools"))


# --------------------------------------------------------------------------- codes and tokens


@cli.command("enroll-code")
@common_options("central")
@click.option("--school", "school_id", required=True, help="The school the agent will belong to.")
@click.option("--ttl", default=None, help="How long the code works (default 24h, at most 30d).")
@cli_errors
def enroll_code(data_dir: Path | None, config_path: Path | None, school_id: str, ttl: str | None) -> None:
    """Print a one-time enrollment code for a school (only the code, on stdout).

    The code ends in a pin of central's public keys (after the dot): the agent checks central's
    enrollment answer against it, so the code is safe to use over plain http.
    """
    config = _quiet(_config(data_dir, config_path))
    lifetime = _ttl(ttl, MAX_CODE_TTL, "--ttl") if ttl is not None else config.enroll_code_ttl
    keys = load_keystore(config.data_dir)
    code = _with_store(config, lambda store: create_code(store, school_id, lifetime, SystemClock().now(), keys))
    click.echo(code)


@cli.group()
def token() -> None:
    """Technician tokens (PASETO v4.public) for agents' local APIs."""


@token.command("issue")
@common_options("central")
@click.option("--technician", required=True, help="Who the token is for.")
@click.option("--scope", required=True, help="school:ID, carrier:NAME, or all (every school: ask for it by name).")
@click.option("--ttl", default="8h", show_default=True, help="Lifetime, at most 12h.")
@cli_errors
def token_issue(data_dir: Path | None, config_path: Path | None, technician: str, scope: str, ttl: str) -> None:
    """Print a technician token signed with the token-issuer key (only the token, on stdout).

    The token is logged (who, scope, expiry, jti; never the token) for `token list` and `token revoke`.

    Example: schulwart-central token issue --technician "A. Weber" --scope school:gs-nord --ttl 8h
    """
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
    now, jti = SystemClock().now(), secrets.token_hex(16)
    issued = IssuedToken(jti, technician, scope, iso(now), iso(now + lifetime), _operator(), None, None)
    # Logged before it is printed: a token nobody can list is a token nobody can revoke.
    _with_store(config, lambda store: store.add_issued_token(issued))
    click.echo(issue_technician_token(keys.token_key, technician, scope, now, lifetime, jti=jti))


def _token_state(token: IssuedToken, now: str) -> str:
    if token.revoked_at is not None:
        return "revoked"
    return "expired" if token.expires_at <= now else "valid"


@token.command("list")
@common_options("central")
@click.option("--all", "show_all", is_flag=True, help="Expired tokens too.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of columns.")
@cli_errors
def token_list(data_dir: Path | None, config_path: Path | None, show_all: bool, as_json: bool) -> None:
    """List issued technician tokens, newest first: jti, technician, scope, issued, expires, by, state.

    The tokens themselves are never stored. Without --all only tokens that have not expired.
    """
    config = _quiet(_config(data_dir, config_path))
    now = iso(SystemClock().now())
    tokens = _with_store(config, lambda store: store.list_issued_tokens(None if show_all else now))
    if as_json:
        for t in tokens:
            click.echo(json.dumps({**_fields(t), "state": _token_state(t, now)}, ensure_ascii=False))
        return
    rows = [
        [t.jti, t.technician, t.scope, format_moment(t.issued_at), format_moment(t.expires_at), t.issued_by,
         _token_state(t, now)]
        for t in tokens
    ]  # fmt: skip
    header = ["JTI", "TECHNICIAN", "SCOPE", "ISSUED", "EXPIRES", "BY", "STATE"]
    click.echo(format_table(rows, header) if rows else empty_message("tokens"))


def _fields(token: IssuedToken) -> dict[str, Any]:
    return {name: getattr(token, name) for name in IssuedToken.__dataclass_fields__}


@token.command("revoke")
@common_options("central")
@click.argument("jti")
@cli_errors
def token_revoke(data_dir: Path | None, config_path: Path | None, jti: str) -> None:
    """Revoke a technician token by its jti (from `token list`).

    Agents learn it with their next signed configuration (every [sync] config_interval, 5 min by
    default) and refuse the token from then on; an agent that cannot reach central keeps
    accepting it until it expires (at most 12 h).
    """
    config = _quiet(_config(data_dir, config_path))
    if not _with_store(config, lambda store: store.revoke_issued_token(jti, iso(SystemClock().now()), _operator())):
        raise NotFoundError(f"no issued token with jti {jti!r} (see `schulwart-central token list --all`)")
    click.echo(f"token {jti} revoked; agents refuse it after their next config fetch", err=True)


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
        if await store.api_token_name_active(name):
            # The name is what `api-token revoke` takes: it must name one token.
            raise AlreadyExistsError(
                f"a read-API token named {name!r} exists already (revoke it first, or pick another name)"
            )
        await store.add_api_token(hash_secret(secret), name, carrier, iso(SystemClock().now()))
        return len(await store.list_schools(carrier)) if carrier is not None else -1

    schools = _with_store(config, create)
    if schools == 0:
        # A typo in the carrier would give a token that silently sees nothing.
        click.echo(f"warning: no school has carrier {carrier!r} yet; this token sees nothing until one does", err=True)
    click.echo(secret)


@api_token.command("list")
@common_options("central")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of columns.")
@cli_errors
def api_token_list(data_dir: Path | None, config_path: Path | None, as_json: bool) -> None:
    """List read-API tokens: name, carrier, created, state (never the token: only its hash is kept)."""
    config = _quiet(_config(data_dir, config_path))
    tokens = _with_store(config, lambda store: store.list_api_tokens())
    if as_json:
        for t in tokens:
            click.echo(json.dumps({"name": t.name, "carrier": t.carrier, "created_at": t.created_at,
                                   "revoked_at": t.revoked_at, "revoked_by": t.revoked_by}, ensure_ascii=False))
        return
    rows = [
        [t.name, t.carrier or "(all)", format_moment(t.created_at),
         f"revoked {format_moment(t.revoked_at)} by {t.revoked_by}" if t.revoked_at else "valid"]
        for t in tokens
    ]  # fmt: skip
    click.echo(format_table(rows, ["NAME", "CARRIER", "CREATED", "STATE"]) if rows else empty_message("tokens"))


@api_token.command("revoke")
@common_options("central")
@click.argument("name")
@cli_errors
def api_token_revoke(data_dir: Path | None, config_path: Path | None, name: str) -> None:
    """Revoke the read-API token of this name: central answers it 401 from the next request on."""
    config = _quiet(_config(data_dir, config_path))
    count = _with_store(config, lambda store: store.revoke_api_token(name, iso(SystemClock().now()), _operator()))
    if not count:
        raise NotFoundError(f"no valid read-API token named {name!r} (see `schulwart-central api-token list`)")
    click.echo(f"read-API token {name!r} revoked", err=True)


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
    users = _with_store(config, lambda store: store.list_users())
    rows = []
    for row in users:
        role = f"carrier:{row.carrier}" if row.role == "carrier" else row.role
        if as_json:
            click.echo(json.dumps({"name": row.name, "role": role, "created_at": row.created_at}, ensure_ascii=False))
        rows.append([row.name, role, format_moment(row.created_at)])
    if not as_json:
        click.echo(format_table(rows, ["NAME", "ROLE", "CREATED"]) if rows else empty_message("users"))


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
    """Refuse this agent's reports from now on (403); the school keeps its history.

    Records when and by whom (the OS user). A replacement enrolls with a new code:
    `schulwart-central enroll-code --school ID`, then `schulwart-agent enroll --force` on the school server.
    """
    config = _quiet(_config(data_dir, config_path))
    agent = _with_store(config, lambda store: store.get_agent(agent_id))
    if agent is None:
        raise NotFoundError(f"no agent {agent_id!r} (see `schulwart-central agent list`)")
    _with_store(config, lambda store: store.revoke_agent(agent_id, iso(SystemClock().now()), _operator()))
    click.echo(
        f"agent {agent_id} revoked; school {agent.school_id} keeps its history. To enroll a replacement: "
        f"schulwart-central enroll-code --school {agent.school_id}, then schulwart-agent enroll --force",
        err=True,
    )


@agent.command("list")
@common_options("central")
@click.option("--school", "school_id", default=None, help="Only this school's agents.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of columns.")
@cli_errors
def agent_list(data_dir: Path | None, config_path: Path | None, school_id: str | None, as_json: bool) -> None:
    """List agents: id, school, hostname, version, acked seq, last contact, revoked."""
    config = _quiet(_config(data_dir, config_path))
    agents = _with_store(config, lambda store: store.list_agents(school_id))
    if as_json:
        for row in agents:
            item = {
                "agent_id": row.agent_id,
                "school_id": row.school_id,
                "hostname": row.hostname,
                "version": row.version,
                "acked_seq": row.acked_seq,
                "last_report_at": row.last_report_at,
                "revoked": row.revoked,
                "revoked_at": row.revoked_at,
                "revoked_by": row.revoked_by,
            }
            click.echo(json.dumps(item, ensure_ascii=False))
        return
    rows = [
        [a.agent_id, a.school_id, a.hostname, a.version, str(a.acked_seq), format_moment(a.last_report_at),
         f"revoked {format_moment(a.revoked_at)} by {a.revoked_by or '-'}" if a.revoked else "active"]
        for a in agents
    ]  # fmt: skip
    header = ["AGENT", "SCHOOL", "HOST", "VERSION", "ACKED", "LAST REPORT", "STATE"]
    click.echo(format_table(rows, header) if rows else empty_message("agents"))


# --------------------------------------------------------------------------- alerts

_ALERT_STATES = ("dead", "pending", "sent", "cancelled", "all")


@cli.group("keys")
def keys_group() -> None:
    """Central's own keys: the configuration key and the technician-token issuer, and their rotation."""


@keys_group.command("rotate")
@common_options("central")
@click.argument("role", type=click.Choice(["config", "token"]))
@click.option("--grace", default="7d", show_default=True,
              help="How long agents learn the next key before it is used (longer than any school is offline).")
@cli_errors
def keys_rotate(data_dir: Path | None, config_path: Path | None, role: str, grace: str) -> None:
    """Make the next configuration key or token issuer key, in force after a grace period.

    Restart `serve` afterwards: until the switch it keeps signing with the current key and tells
    every agent the next one in its signed configuration; from the switch on it signs with the next key, which agents
    trust by then. After a token issuer switch the old key stays trusted for 12 h, so tokens
    issued just before keep working. Enrollment codes made before a switch stop working at it.

    Example: schulwart-central keys rotate config --grace 14d
    """
    period = parse_duration(grace)
    if period < timedelta(0) or period > timedelta(days=365):
        raise click.BadParameter("--grace must be 0s..365d")
    config = _quiet(_config(data_dir, config_path))
    pending = start_rotation(config.data_dir, role, period, SystemClock().now())
    when = format_moment(iso(pending.switch_at))
    click.echo(f"next {role} key {keyid(pending.key)[:16]}… made; in force from {when}; restart `serve` so that"
               " agents learn it from their next configuration", err=True)  # fmt: skip


@keys_group.command("list")
@common_options("central")
@cli_errors
def keys_list(data_dir: Path | None, config_path: Path | None) -> None:
    """List central's keys: role, keyid, state (in force, next from a time, retired until a time).

    Example: schulwart-central keys list
    """
    config = _quiet(_config(data_dir, config_path))
    keys = load_keystore(config.data_dir)
    rows = [["config", keyid(keys.config_key), "in force"], ["token", keyid(keys.token_key), "in force"]]
    for role, pending in (("config", keys.config_next), ("token", keys.token_next)):
        if pending is not None:
            rows.append([role, keyid(pending.key), f"next, from {format_moment(iso(pending.switch_at))}"])
    retired = keys.token_retired
    if retired is not None:
        rows.append(["token", keyid(retired.key), f"retired, trusted until {format_moment(iso(retired.until))}"])
    click.echo(format_table(rows, ["ROLE", "KEYID", "STATE"]))


@cli.group("config")
def config_group() -> None:
    """Signed agent configuration: layers per carrier and per school (the school's own file wins over both)."""


def _layer_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--carrier", default=None, help="The carrier's layer (applies to its schools).")(f)
    return click.option("--school", default=None, help="The school's layer (over its carrier's).")(f)


@config_group.command("set")
@common_options("central")
@_layer_options
@click.option("--from", "source", type=click.File("r", encoding="utf-8"), default="-", show_default=True,
              help="The layer's TOML ('-': stdin).")  # fmt: skip
@cli_errors
def config_set(
    data_dir: Path | None, config_path: Path | None, school: str | None, carrier: str | None, source: Any
) -> None:
    """Replace a carrier's or a school's configuration layer with the TOML given; prints the new version.

    The TOML has the agent config's sections [agent], [host], [incidents], [privacy], [wlan] and
    [cabinets] and is checked with the agent's own types: a refused key is named in one line
    (exit 2) and nothing is stored. An empty document clears the layer. Every agent of the
    school (or the carrier's schools) gets the new version, signed, at its next config fetch
    and applies it without a restart; keys its school's own file sets win.

    Example: schulwart-central config set --school gs-nord --from gs-nord.toml
    """
    scope = scope_of(school, carrier)
    try:
        text = source.read(MAX_LAYER_BYTES + 1)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config: the layer is not UTF-8 text (bad byte at offset {exc.start})") from None
    sections = check_layer(text)
    config = _quiet(_config(data_dir, config_path))

    async def work(store: Storage) -> int:
        await require_scope(store, scope)
        settings = json.dumps(sections, ensure_ascii=False, sort_keys=True)
        return await store.add_config_layer(scope, text, settings, iso(SystemClock().now()), _operator())

    version = _with_store(config, work)
    click.echo(f"{scope} layer is now version {version}; agents apply it at their next config fetch", err=True)
    click.echo(str(version))


@config_group.command("show")
@common_options("central")
@_layer_options
@cli_errors
def config_show(data_dir: Path | None, config_path: Path | None, school: str | None, carrier: str | None) -> None:
    """Print a layer's TOML; for a school also the layers that apply, the version they make and what each
    of its agents runs (version and the keys its own file overrides).

    Example: schulwart-central config show --school gs-nord
    """
    scope = scope_of(school, carrier)
    config = _quiet(_config(data_dir, config_path))

    async def work(store: Storage) -> str:
        await require_scope(store, scope)
        if school is None:
            found = await store.config_layers([scope])
            return found[0].toml if found else f"# {scope}: no layer set"
        row = await store.get_school(school)
        assert row is not None  # require_scope checked it
        effective = await effective_for(store, config, row)
        lines = [f"# {school}: configuration version {effective.version}"]
        for layer in effective.layers:
            lines.append(f"# --- {layer.scope}, version {layer.version}, {format_moment(layer.created_at)},"
                         f" by {layer.created_by}")  # fmt: skip
            lines.append(layer.toml.rstrip())
        if not effective.layers:
            lines.append("# no layer set for this school or its carrier")
        for agent in await store.list_agents(school):
            runs = "not reported yet" if agent.config_version is None else f"runs version {agent.config_version}"
            overrides = ", ".join(agent.config_overrides) or "none"
            lines.append(f"# agent {agent.agent_id}: {runs}; local overrides: {overrides}")
        return "\n".join(lines)

    click.echo(_with_store(config, work))


@config_group.command("history")
@common_options("central")
@click.option("--carrier", default=None, help="Only the carrier's layer.")
@click.option("--school", default=None, help="Only the school's layer.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="At most this many.")
@cli_errors
def config_history(
    data_dir: Path | None, config_path: Path | None, school: str | None, carrier: str | None, limit: int
) -> None:
    """List the versions of the layers, newest first: version, scope, when, by, sections set.

    Example: schulwart-central config history --carrier landkreis
    """
    scope = None if school is None and carrier is None else scope_of(school, carrier)
    config = _quiet(_config(data_dir, config_path))
    layers = _with_store(config, lambda store: store.config_history(scope, limit))
    rows = [
        [str(layer.version), layer.scope, format_moment(layer.created_at), layer.created_by,
         ", ".join(sorted(layer_sections(layer))) or "(cleared)"]
        for layer in layers
    ]  # fmt: skip
    header = ["VERSION", "SCOPE", "WHEN", "BY", "SECTIONS"]
    click.echo(format_table(rows, header) if rows else empty_message("configuration layers"))


@cli.group()
def alerts() -> None:
    """Alert routing: the dead-letter list, retries and test messages ([alerts] in the config)."""


def _alert_json(d: AlertDelivery) -> dict[str, Any]:
    return {name: getattr(d, name) for name in AlertDelivery.__dataclass_fields__ if name != "payload"}


@alerts.command("list")
@common_options("central")
@click.option("--status", "status", type=click.Choice(_ALERT_STATES), default="dead", show_default=True,
              help="Which messages: dead (the dead-letter list), pending, sent, cancelled or all.")  # fmt: skip
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of columns.")
@cli_errors
def alerts_list(data_dir: Path | None, config_path: Path | None, status: str, limit: int, as_json: bool) -> None:
    """List alert messages, newest first: id, channel, kind, school, attempts, state, when, last error.

    Without --status the dead-letter list: messages that failed max_attempts times (or were refused
    for good, e.g. a 4xx answer). `alerts retry ID` sends one again.

    Example: schulwart-central alerts list --status dead
    """
    config = _quiet(_config(data_dir, config_path))
    rows = _with_store(config, lambda store: store.list_alert_deliveries(None if status == "all" else status, limit))
    if as_json:
        for d in rows:
            click.echo(json.dumps(_alert_json(d), ensure_ascii=False))
        return
    table = [
        [str(d.id), d.channel, d.kind, d.school_id or "(digest)", str(d.attempts), d.status,
         format_moment(d.sent_at if d.status in ("sent", "cancelled") else d.next_attempt_at), d.last_error or "-"]
        for d in rows
    ]  # fmt: skip
    header = ["ID", "CHANNEL", "KIND", "SCHOOL", "ATTEMPTS", "STATE", "WHEN", "LAST ERROR"]
    empty = "no alert messages" if status == "all" else f"no {status} alert messages"
    click.echo(format_table(table, header) if table else empty)


@alerts.command("retry")
@common_options("central")
@click.argument("delivery_id", type=int)
@cli_errors
def alerts_retry(data_dir: Path | None, config_path: Path | None, delivery_id: int) -> None:
    """Put a dead alert message back in the queue and try it once now (exit 1 when it fails again).

    Its attempts start from zero: when this try fails it is retried with backoff like a new one. A
    running `serve` with the same database would send it at its next pass as well (never both: a
    message is leased to one sender at a time).

    Example: schulwart-central alerts retry 17 --config /etc/schulwart/central.toml
    """
    config = _quiet(_config(data_dir, config_path))

    async def work(store: Storage) -> tuple[bool, str]:
        clock = SystemClock()
        async with open_alerts(store, config.alerts, clock, config_dir=_config_dir(config)) as service:
            if await store.requeue_alert_delivery(delivery_id, iso(clock.now())) is None:
                raise NotFoundError(
                    f"no dead alert message {delivery_id} (see `schulwart-central alerts list --status all`)"
                )
            done = await service.deliver(delivery_id)
        if delivery_id in done.sent:
            return True, f"alert message {delivery_id} sent"
        if done.held:
            return True, f"alert message {delivery_id} queued again; held for quiet hours or a holiday"
        if not (done.failed or done.dead):
            return True, f"alert message {delivery_id} queued again; it waits for an earlier message of its thread"
        return False, f"alert message {delivery_id} failed again: {done.errors.get(delivery_id, '?')}"

    ok, line = _with_store(config, work)
    click.echo(line, err=True)
    if not ok:
        raise click.exceptions.Exit(1)


@alerts.command("test")
@common_options("central")
@click.argument("channel")
@cli_errors
def alerts_test(data_dir: Path | None, config_path: Path | None, channel: str) -> None:
    """Send a test message through one configured channel now (outside the queue); exit 1 when it fails.

    Example: schulwart-central alerts test hotline-mail --config /etc/schulwart/central.toml
    """
    config = _quiet(_config(data_dir, config_path))

    async def work(store: Storage) -> str | None:
        async with open_alerts(store, config.alerts, SystemClock(), config_dir=_config_dir(config)) as service:
            try:
                await service.send_test(channel)
            except DeliveryError as exc:
                return exc.message
        return None

    error = _with_store(config, work)
    if error is not None:
        click.echo(f"test message through {channel} failed: {error}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"test message sent through {channel}", err=True)


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
            f"imported {file.name}: agent {s.agent_id} school {s.school_id}, "
            f"{counted(s.envelopes, 'envelope', 'envelopes')}, {counted(s.stored, 'new event', 'new events')}, "
            f"acked through {s.acked_through}"
        )

    click.echo(_with_store(config, work), err=True)


@cli.command()
@common_options("central")
@cli_errors
def doctor(data_dir: Path | None, config_path: Path | None) -> None:
    """Check, one line each, the database, the keys, the disk and the clock; exit 0 only if all pass.

    Read-only: nothing is created or migrated.

    Example: sudo -u schulwart schulwart-central doctor --data-dir /var/lib/schulwart-central
    """
    from central.doctor import run_checks

    config = _quiet(_config(data_dir, config_path))
    report_checks(run_checks(config))


def main() -> None:
    """Console-script entry point."""
    run_cli(cli, "schulwart-central")
