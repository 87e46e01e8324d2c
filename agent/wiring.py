"""Where a running agent is put together: every part is built here, once, and handed to the runner.

Nothing else constructs the parts, and no part reaches back into the runner: the
technician API and the metrics get the narrow things they read, the sync client gets a
transport and a wake event, the monitors get callbacks.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

from agent.config import AgentConfig, parse_listen
from agent.identity import agent_version, load_agent_key, load_identity, read_admin_token
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
from agent.sync.client import SyncClient
from agent.sync.transport import AiohttpTransport
from agent.techapi.auth import Authenticator
from agent.techapi.routes import setup_technician_api
from agent.techapi.server import make_app, tls_context
from agent.techapi.store_view import AgentView
from base.clock import Clock
from base.ratelimit import FailureLimiter


def health() -> dict[str, Any]:
    """What /healthz tells anyone on the LAN: alive, nothing about the school."""
    return {"status": "ok", "version": agent_version()}


def build_agent(config: AgentConfig, data_dir: Path, clock: Clock, *, listen: str | None = None) -> Agent:
    """An agent ready to :meth:`~agent.runner.Agent.run`, over the store in ``data_dir``.

    Opens (and migrates) the store, creates the privacy secret on first start, loads the
    identity and, when enrolled, the signing key; builds the engine, inventory, sync client,
    monitors and the local API application. ``listen`` (``HOST:PORT``) overrides [api] listen.
    The returned agent owns the store: its ``run`` closes it. Raises ConfigError (bad listen
    address, TLS files, agent key, site config) and StoreError; on an error nothing stays open.
    """
    address = parse_listen(listen or config.api.listen)
    ssl_context = tls_context(config.api)
    store = Store.open(data_dir)
    try:
        return _assemble(config, data_dir, clock, store, address, ssl_context)
    except BaseException:
        store.close()
        raise


def _assemble(
    config: AgentConfig,
    data_dir: Path,
    clock: Clock,
    store: Store,
    address: tuple[str, int],
    ssl_context: ssl.SSLContext | None,
) -> Agent:
    identity = load_identity(store)
    school = identity.school_id if identity else "-"
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
        )

    def clock_offset() -> float | None:
        return sync.clock_offset if sync else None

    monitors: list[Monitor] = [
        HostMonitor(data_dir, config.host, clock_offset=clock_offset),
        # The site monitors name the school in their log lines (the data dir's name before enrollment).
        *build_monitors(config, data_dir, school=school if identity else None, clock=clock),
    ]

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

    return Agent(
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
    )
