"""Where a running agent is put together: every part is built here, once, and handed to the runner.

Nothing else constructs the parts, and no part reaches back into the runner: the
technician API and the metrics get the narrow things they read, the sync client gets a
transport and a wake event, the monitors get callbacks.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import AgentConfig, Layered, layer_config, parse_listen
from agent.identity import NEXT_KEY_FILE, Identity, agent_version, load_agent_key, load_identity, read_admin_token
from agent.incidents.engine import IncidentEngine
from agent.live import LiveState
from agent.monitors.host import HostMonitor
from agent.monitors.interface import Monitor
from agent.monitors.site import build_monitors
from agent.privacy import Privacy, load_or_create_secret
from agent.runner import Agent
from agent.store import Store
from agent.store.inventory import Inventory
from agent.store.outbox import Outbox
from agent.sync.client import Reconfiguration, SyncClient
from agent.sync.transport import AiohttpTransport
from agent.techapi.auth import Authenticator
from agent.techapi.routes import setup_technician_api
from agent.techapi.server import make_app, tls_context
from agent.techapi.store_view import AgentView
from base.clock import Clock
from base.errors import ConfigError
from base.ratelimit import FailureLimiter
from protocol.schema import CONFIG_SECTIONS, ConfigReport

log = logging.getLogger(__name__)


def health() -> dict[str, Any]:
    """What /healthz tells anyone on the LAN: alive, nothing about the school."""
    return {"status": "ok", "version": agent_version()}


def build_agent(
    config: AgentConfig,
    data_dir: Path,
    clock: Clock,
    *,
    listen: str | None = None,
    local_doc: Mapping[str, Any] | None = None,
    source: str | None = None,
) -> Agent:
    """An agent ready to :meth:`~agent.runner.Agent.run`, over the store in ``data_dir``.

    Opens (and migrates) the store, creates the privacy secret on first start, loads the
    identity and, when enrolled, the signing key; builds the engine, inventory, sync client,
    monitors and the local API application. ``listen`` (``HOST:PORT``) overrides [api] listen.

    ``local_doc`` is the school's config file as parsed TOML (``source`` its name): central's
    configuration (the copy held, then each new one) is laid under it and applied without a
    restart. Without it the agent runs ``config`` as given and only takes central's sync
    settings and revoked tokens.

    The returned agent owns the store: its ``run`` closes it. Raises ConfigError (bad listen
    address, TLS files, agent key, site config) and StoreError; on an error nothing stays open.
    """
    address = parse_listen(listen or config.api.listen)
    ssl_context = tls_context(config.api)
    store = Store.open(data_dir)
    try:
        return _assemble(config, data_dir, clock, store, address, ssl_context, local_doc, source)
    except BaseException:
        store.close()
        raise


def _fresh_key(store: Store, data_dir: Path) -> tuple[Identity, Ed25519PrivateKey] | None:
    """The identity and key as the store and the data dir hold them now (after `rotate-key`), or None."""
    identity = load_identity(store)
    if identity is None:
        return None
    try:
        return identity, load_agent_key(data_dir, identity)
    except ConfigError:
        return None


def _held_layers(store: Store, local_doc: Mapping[str, Any], source: str | None, school: str) -> tuple[Layered, int]:
    """The configuration from the central copy held under the school's file, and that copy's version (-1: none)."""
    held = store.get_setting("central_config")
    held = held if isinstance(held, dict) else {}
    settings = held.get("settings") if isinstance(held.get("settings"), dict) else {}
    sections = settings.get(CONFIG_SECTIONS) if isinstance(settings, dict) else None
    raw_version = held.get("version")
    version = raw_version if isinstance(raw_version, int) else -1
    if not isinstance(sections, dict) or not sections:
        return layer_config(local_doc, {}, source=source), version
    try:
        return layer_config(local_doc, sections, source=source), version
    except ConfigError as exc:  # the file changed under a copy that was fine: the file alone, said loudly
        log.error("school=%s central's config version %s does not fit the local file: %s; running the file alone",
                  school, version, exc.message)  # fmt: skip
        return layer_config(local_doc, {}, source=source), version


def _assemble(
    config: AgentConfig,
    data_dir: Path,
    clock: Clock,
    store: Store,
    address: tuple[str, int],
    ssl_context: ssl.SSLContext | None,
    local_doc: Mapping[str, Any] | None,
    source: str | None,
) -> Agent:
    identity = load_identity(store)
    school = identity.school_id if identity else "-"
    report: ConfigReport | None = None
    if local_doc is not None:
        layered, held_version = _held_layers(store, local_doc, source, school)
        config = layered.config
        report = ConfigReport(held_version, layered.overrides) if held_version >= 0 else None
    outbox = Outbox(store, clock)
    privacy = Privacy(load_or_create_secret(data_dir), share_names=config.privacy.share_names)
    engine = IncidentEngine(
        store,
        outbox,
        privacy,
        clock,
        open_after=config.incidents.open_after,
        resolve_after=config.incidents.resolve_after,
        school=school,
    )
    inventory = Inventory(store, outbox, privacy, school=school)
    # Made before both the live state and the sync client, so each can wake sync without the other.
    sync_wake = asyncio.Event()
    live = LiveState(store, outbox, engine, inventory, privacy, clock, school=school, wake=sync_wake.set)
    sync: SyncClient | None = None
    if identity is not None:
        key = load_agent_key(data_dir, identity)
        sync = SyncClient(
            store,
            outbox,
            identity,
            key,
            config.sync,
            clock,
            transport=AiohttpTransport.for_agent(identity, config.sync, clock),
            state=live.state_parts,
            signal=live.signal,
            wake=sync_wake,
            dropped_events=lambda: live.counters.dropped_events,
            configure=None if local_doc is None else lambda sections: configure(local_doc, sections),
            config_report=report,
            reload_key=lambda: _fresh_key(store, data_dir),
            rotation_pending=(data_dir / NEXT_KEY_FILE).exists,
        )

    def clock_offset() -> float | None:
        return sync.clock_offset if sync else None

    def monitors_for(config: AgentConfig) -> list[Monitor]:
        return [
            HostMonitor(data_dir, config.host, clock_offset=clock_offset),
            # The site monitors name the school in their log lines (the data dir's name before enrollment).
            *build_monitors(config, data_dir, school=school if identity else None, clock=clock),
        ]

    def retune(config: AgentConfig) -> None:
        engine.open_after = config.incidents.open_after
        engine.resolve_after = config.incidents.resolve_after
        privacy.share_names = config.privacy.share_names

    def configure(local: Mapping[str, Any], sections: Mapping[str, Any]) -> Reconfiguration:
        layered = layer_config(local, sections, source=f"{source or 'defaults'} over central's")
        return Reconfiguration(layered.overrides, lambda: agent.reconfigure(layered.config))

    monitors = monitors_for(config)

    app = make_app(health)
    view = AgentView(
        store=store,
        engine=engine,
        data_dir=data_dir,
        identity=identity,
        sections=live.latest_sections,
        wake=sync_wake.set,
        config=config,
    )
    limiter = FailureLimiter(clock.monotonic)
    failures = live.counters.auth_failures

    def count_failure(reason: str) -> None:
        failures[reason] = failures.get(reason, 0) + 1

    def metrics() -> tuple[bytes, str]:
        from agent.techapi.metrics import exposition  # at the first scrape: most agents are never scraped

        return exposition(outbox=outbox, engine=engine, store=store, counters=live.counters)

    auth = Authenticator(view, read_admin_token(data_dir), clock.now, limiter, count_failure)
    setup_technician_api(app, view, auth, metrics)

    agent = Agent(
        config,
        clock,
        store=store,
        outbox=outbox,
        identity=identity,
        live=live,
        sync=sync,
        monitors=monitors,
        app=app,
        listen=address,
        ssl_context=ssl_context,
        build_monitors=monitors_for,
        retune=retune,
    )
    return agent
