"""The aiohttp application: typed state, the one error middleware, routes, the runner."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from base.clock import Clock, SystemClock
from base.connguard import ConnectionGuard, ConnectionLimits, GuardedTCPSite, install_loop_error_handler
from base.httpheaders import security_headers
from base.version import version
from central.alerts.service import AlertService
from central.alerts.service import run_in_background as run_alerts
from central.config import CentralConfig
from central.enrollment import Enroller
from central.errors import http_status
from central.ingest import Ingestor
from central.keystore import Keystore
from central.limits import SharedFailureLimiter
from central.metrics import CONTENT_TYPE_LATEST, Metrics
from central.silence import run_in_background
from central.storage.interface import Storage
from central.web import agent_routes, auth, dashboard, openapi, read_api
from central.web.appkeys import CLOCK, CONFIG, ENROLLER, INGESTOR, KEYS, LOGIN_LIMITER, METRICS, STORE
from protocol.errors import MalformedError, SchulwartError, SequenceError

log = logging.getLogger(__name__)

GUARD = web.AppKey("connection_guard", ConnectionGuard)
# Agents report about once a minute each; many schools may share one carrier NAT address.
CENTRAL_LIMITS = ConnectionLimits(per_address=128, total=768, header_timeout=10.0)


def _route_name(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    return resource.canonical if resource is not None else "unmatched"


def _slug(reason: str) -> str:
    return reason.lower().replace(" ", "_").replace("-", "_")


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Map every refusal to ``{"error": reason}`` with its status, count it, log it on one line."""
    metrics = request.app[METRICS]
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except SchulwartError as exc:
        status = http_status(exc)
        body: dict[str, Any] = {"error": exc.reason}
        if isinstance(exc, MalformedError):
            # Name the field or rule, so a client built from docs/protocol.md alone can fix its request.
            body["detail"] = exc.message[:300]
        if isinstance(exc, SequenceError):
            body["expected_seq"] = exc.expected_seq
        metrics.refusals.labels(_route_name(request), exc.reason).inc()
        log.info(
            "refused %s %s from=%s status=%d reason=%s: %s",
            request.method,
            request.path[:100],
            request.remote,
            status,
            exc.reason,
            exc.message[:200],
        )
        return web.json_response(body, status=status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = _slug(exc.reason or "error")
        metrics.refusals.labels(_route_name(request), reason).inc()
        return web.json_response({"error": reason}, status=exc.status, headers=_allow_header(exc))
    except Exception:
        # A bug, not a refusal: the traceback goes to the log, the client gets JSON, the process lives.
        log.exception("internal error on %s %s", request.method, request.path[:100])
        metrics.refusals.labels(_route_name(request), "internal").inc()
        return web.json_response({"error": "internal"}, status=500)


def _allow_header(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers; ``{"status": "ok", "version": "0.1.0"}``."""
    return web.json_response({"status": "ok", "version": version()})


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus text exposition of this app's registry."""
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(
    config: CentralConfig,
    store: Storage,
    keys: Keystore,
    *,
    clock: Clock | None = None,
    silence_monitor: bool = True,
    alerts: AlertService | None = None,
) -> web.Application:
    """The central app over an open store; the caller owns (and closes) the store.

    With ``alerts`` (opened by the caller, who closes it) alert routing runs in the background.
    """
    clock = clock or SystemClock()
    guard = ConnectionGuard(CENTRAL_LIMITS, name="central")
    app = web.Application(
        middlewares=[guard.middleware, error_middleware, auth.session_middleware],
        client_max_size=config.max_body_bytes,
    )
    app[GUARD] = guard
    app.on_response_prepare.append(security_headers)
    metrics = Metrics()
    app[CONFIG] = config
    app[STORE] = store
    app[KEYS] = keys
    app[CLOCK] = clock
    app[METRICS] = metrics
    app[INGESTOR] = Ingestor(
        store, clock, max_envelope_bytes=config.max_decoded_bytes, max_events=config.max_events, metrics=metrics
    )
    app[ENROLLER] = Enroller(
        store,
        keys,
        clock,
        SharedFailureLimiter(store, "enroll", clock, config.enroll_max_failures, config.enroll_failure_window),
        config.sync,
        metrics,
    )
    app.router.add_post("/v1/enroll", agent_routes.enroll)
    app.router.add_post("/v1/reports", agent_routes.reports)
    app.router.add_get("/v1/agents/{agent_id}/config", agent_routes.agent_config)
    app.router.add_post("/v1/agents/{agent_id}/key", agent_routes.agent_key)
    app.router.add_get("/v1/schools", read_api.list_schools)
    app.router.add_get("/v1/schools/{school_id}", read_api.school_detail)
    app.router.add_get("/v1/incidents", read_api.list_incidents)
    app.router.add_get("/v1/openapi.json", openapi.view)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", healthz)
    app[LOGIN_LIMITER] = auth.login_limiter(store, clock)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("central.web", "templates"),
        autoescape=True,  # names from agents and staff are text, never markup
        undefined=jinja2.StrictUndefined,
    )
    app.router.add_get("/", dashboard.overview)
    app.router.add_get("/schools/{school_id}", dashboard.school)
    app.router.add_get("/incidents", dashboard.incidents)
    app.router.add_post("/incidents/action", dashboard.incident_action)
    app.router.add_get("/alerts", dashboard.dead_letters)
    app.router.add_post("/alerts/retry", dashboard.dead_letter_retry)
    app.router.add_get("/login", auth.login_form)
    app.router.add_post("/login", auth.login)
    app.router.add_post("/logout", auth.logout)
    app.router.add_static("/static/", Path(__file__).parent / "static", append_version=False)
    if silence_monitor:

        async def monitor(_app: web.Application) -> AsyncIterator[None]:
            async for _ in run_in_background(store, clock, config.silent_window, config.silent_check_interval):
                yield

        app.cleanup_ctx.append(monitor)
    if alerts is not None:
        service = alerts

        async def alerting(_app: web.Application) -> AsyncIterator[None]:
            async for _ in run_alerts(service):
                yield

        app.cleanup_ctx.append(alerting)
    return app


def make_runner(app: web.Application) -> web.AppRunner:
    """An AppRunner that leaves gzip bodies alone: central inflates them itself, with a cap."""
    return web.AppRunner(app, auto_decompress=False, access_log=None)


async def start(
    app: web.Application, host: str, port: int, *, reuse_port: bool = False
) -> tuple[web.AppRunner, str]:
    """Listen on host:port (0: any free port); returns the runner and the real URL.

    ``reuse_port`` sets SO_REUSEPORT, so the workers of ``serve --workers N`` share the port (the
    kernel spreads new connections over them).
    """
    if GUARD not in app:  # an app not made by create_app gets the same limits
        app[GUARD] = ConnectionGuard(CENTRAL_LIMITS, name="central")
        app.middlewares.append(app[GUARD].middleware)
    runner = make_runner(app)
    await runner.setup()
    install_loop_error_handler(asyncio.get_running_loop())
    site = GuardedTCPSite(runner, host, port, app[GUARD], reuse_port=reuse_port or None)
    await site.start()
    address = runner.addresses[0]
    real_host, real_port = address[0], address[1]
    shown = f"[{real_host}]" if ":" in real_host else real_host
    return runner, f"http://{shown}:{real_port}"
