"""The agent's local HTTP server: ``GET /healthz`` here; the technician routes come from agent.techapi.

``make_app`` is the one factory: later routes are added with ``app.add_routes`` or a
sub-app, and shared state travels in typed ``AppKey`` slots.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web

from agent.config import ApiSection
from base.connguard import ConnectionGuard, ConnectionLimits, GuardedTCPSite, install_loop_error_handler
from base.errors import ConfigError
from base.httpheaders import security_headers

log = logging.getLogger(__name__)

HEALTH_KEY: web.AppKey[Callable[[], dict[str, Any]]] = web.AppKey("health")
GUARD_KEY = web.AppKey("connection_guard", ConnectionGuard)
MAX_BODY = 64 * 1024
# The school LAN: a technician's laptop needs a handful of connections; a pupil gets no more.
API_LIMITS = ConnectionLimits(per_address=16, total=256, header_timeout=10.0)


async def healthz(request: web.Request) -> web.Response:
    """Liveness for load balancers and systemd checks; says nothing about the school."""
    return web.json_response(request.app[HEALTH_KEY]())


def make_app(health: Callable[[], dict[str, Any]] | None = None) -> web.Application:
    """The local API application."""
    guard = ConnectionGuard(API_LIMITS, name="agent-api")
    app = web.Application(client_max_size=MAX_BODY, middlewares=[guard.middleware])
    app[GUARD_KEY] = guard
    app.on_response_prepare.append(security_headers)
    app[HEALTH_KEY] = health or (lambda: {"status": "ok"})
    app.router.add_get("/healthz", healthz)
    return app


def tls_context(api: ApiSection) -> ssl.SSLContext | None:
    """A server TLS context when [api] names a certificate and key; None for plain HTTP."""
    if not api.tls_cert and not api.tls_key:
        return None
    if not (api.tls_cert and api.tls_key):
        raise ConfigError("[api] needs both tls_cert and tls_key for TLS")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(api.tls_cert, api.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate {api.tls_cert} / key {api.tls_key}: {exc}") from None
    return context


async def start_server(
    app: web.Application, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, str, int]:
    """Listen on host:port (0: any free port); returns the runner and the real address."""
    if GUARD_KEY not in app:  # an app not made by make_app (tests, tools) gets the same limits
        app[GUARD_KEY] = ConnectionGuard(API_LIMITS, name="agent-api")
        app.middlewares.append(app[GUARD_KEY].middleware)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    install_loop_error_handler(asyncio.get_running_loop())
    site = GuardedTCPSite(runner, host, port, app[GUARD_KEY], ssl_context=ssl_context)
    await site.start()
    sockname = runner.addresses[0]
    real_host, real_port = str(sockname[0]), int(sockname[1])
    shown = f"[{real_host}]" if ":" in real_host else real_host
    log.info("listening on %s://%s:%d", "https" if ssl_context else "http", shown, real_port)
    return runner, real_host, real_port
