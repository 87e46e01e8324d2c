"""The technician routes of the agent's local API (/api/v1/*, /metrics, the page; docs/agent.md)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.store import StoreError, StoreFullError
from agent.techapi.auth import Authenticator, AuthError, Principal
from agent.techapi.view import LocalView, Page
from base.httpheaders import security_headers
from protocol.encoding import loads_strict
from protocol.errors import MalformedError

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
VIEW_KEY = web.AppKey("technician_view", LocalView)
AUTH_KEY = web.AppKey("technician_auth", Authenticator)
# Renders /metrics: (body, Content-Type). A function, so that the exposition's library loads at the first scrape.
Exposition = Callable[[], tuple[bytes, str]]
METRICS_KEY: web.AppKey[Exposition] = web.AppKey("technician_metrics")
PRINCIPAL = web.RequestKey("technician_principal", Principal)
MAX_BODY = 16 * 1024
BODY_TIMEOUT_S = 10.0  # a note is a few hundred bytes; a body still trickling after this is an attack
MAX_LIMIT = 1000
INCIDENT_STATES = ("open", "resolved", "all")

# The page runs only its own script; data from devices is inserted as text, never as HTML.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers={"Cache-Control": "no-store"})


def _bad_request(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": reason}), content_type="application/json")


def _too_large(actual: int) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=MAX_BODY, actual_size=actual, text='{"error": "body_too_large"}', content_type="application/json"
    )


def _public(path: str) -> bool:
    return path in {"/healthz", "/"} or path.startswith("/static/")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every route but /healthz and the page's static shell needs a token."""
    if _public(request.path):
        try:
            return await handler(request)
        except web.HTTPException as exc:  # 404/405 on the page and /static/: JSON like every other refusal
            if exc.status < 400 or exc.content_type == "application/json":
                raise
            response = _error(exc.status, (exc.reason or "error").lower().replace(" ", "_"))
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
    try:
        principal = request.app[AUTH_KEY].check(request.headers.get("Authorization"), request.remote or "unknown")
    except AuthError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        response = _error(exc.status, exc.reason)
        response.headers.update(headers)
        return response
    request[PRINCIPAL] = principal
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return _error(exc.status, (exc.reason or "error").lower().replace(" ", "_"))
    except StoreFullError:
        # Nothing was stored (one transaction); the technician can retry once space is freed.
        log.error("school=%s store full on %s %s", _school(request), request.method, request.path[:100])
        return _error(507, "store_full")
    except StoreError as exc:
        log.error("school=%s store error on %s %s: %s", _school(request), request.method, request.path[:100], exc)
        return _error(503, "store_unavailable")
    except Exception:
        # A bug, not a refusal: the traceback goes to the log, the technician gets JSON.
        log.exception("internal error on %s %s", request.method, request.path[:100])
        return _error(500, "internal")


def _school(request: web.Request) -> str:
    identity = request.app[VIEW_KEY].identity()
    return identity.school_id if identity is not None else "-"


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    # ASCII only: str.isdigit() also accepts "²" (int() refuses it) and Arabic-Indic digits (int() reads them).
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12 or not low <= int(raw) <= high:
        raise _bad_request(f"bad_parameter: {name} must be {low}..{high}")
    return int(raw)


def _str_param(request: web.Request, name: str, max_len: int = 100) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_len:
        raise _bad_request(f"bad_parameter: {name} too long")
    return raw


def _page(page: Page, key: str, limit: int, offset: int) -> web.Response:
    return web.json_response(
        {key: list(page.items), "total": page.total, "limit": limit, "offset": offset},
        headers={"Cache-Control": "no-store"},
    )


async def _json_body(request: web.Request) -> Mapping[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _too_large(request.content_length)
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            # read(n) returns what has arrived so far: loop to the end of the body, within the cap.
            while size <= MAX_BODY:
                chunk = await request.content.read(MAX_BODY + 1 - size)
                if not chunk:
                    break
                parts.append(chunk)
                size += len(chunk)
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text='{"error": "request_timeout"}', content_type="application/json"
        ) from None
    raw = b"".join(parts)
    if len(raw) > MAX_BODY:
        raise _too_large(len(raw))
    if not raw.strip():
        return {}
    try:
        body = loads_strict(raw)
    except MalformedError as exc:
        raise _bad_request(exc.reason) from None
    if not isinstance(body, dict):
        raise _bad_request("body must be a JSON object")
    return body


async def status(request: web.Request) -> web.Response:
    """GET /api/v1/status: the school at a glance."""
    view = request.app[VIEW_KEY]
    identity = view.identity()
    principal: Principal = request[PRINCIPAL]
    body = dict(view.status())
    body["school"] = None
    if identity is not None:
        body["school"] = {
            "id": identity.school_id,
            "name": identity.school_name,
            "carrier": identity.carrier,
            "agent_id": identity.agent_id,
        }
    body["you"] = {"name": principal.name, "kind": principal.kind, "scope": principal.scope}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def devices(request: web.Request) -> web.Response:
    """GET /api/v1/devices?class=&state=&q=&limit=&offset=."""
    limit = _int_param(request, "limit", 200, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    page = request.app[VIEW_KEY].devices(
        device_class=_str_param(request, "class"),
        state=_str_param(request, "state"),
        query=_str_param(request, "q"),
        limit=limit,
        offset=offset,
    )
    return _page(page, "devices", limit, offset)


async def incidents(request: web.Request) -> web.Response:
    """GET /api/v1/incidents?state=open|resolved|all&severity=&category=&limit=&offset=."""
    state = request.query.get("state", "open")
    if state not in INCIDENT_STATES:
        return _error(400, "bad_parameter: state must be open, resolved or all")
    limit = _int_param(request, "limit", 200, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    page = request.app[VIEW_KEY].incidents(
        state=state,
        severity=_str_param(request, "severity"),
        category=_str_param(request, "category"),
        limit=limit,
        offset=offset,
    )
    return _page(page, "incidents", limit, offset)


def _text(body: Mapping[str, Any], key: str, *, required: bool, max_len: int = 2000) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise _bad_request(f"{key} must be a non-empty string of at most {max_len} characters")
    return value.strip()


async def acknowledge(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/ack with an optional {"note": "..."}."""
    body = await _json_body(request)
    note = _text(body, "note", required=False)
    principal: Principal = request[PRINCIPAL]
    incident_id = request.match_info["id"]
    result = request.app[VIEW_KEY].acknowledge(incident_id, principal.name, note)
    if result is None:
        return _error(404, "no_such_incident")
    log.info("incident acknowledged incident=%s by=%s", incident_id, principal.name)
    return web.json_response(dict(result))


async def add_note(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/notes with {"text": "..."}."""
    body = await _json_body(request)
    text = _text(body, "text", required=True)
    assert text is not None
    principal: Principal = request[PRINCIPAL]
    incident_id = request.match_info["id"]
    result = request.app[VIEW_KEY].add_note(incident_id, principal.name, text)
    if result is None:
        return _error(404, "no_such_incident")
    log.info("note added incident=%s by=%s", incident_id, principal.name)
    return web.json_response(dict(result), status=201)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics in the Prometheus text format (behind a token, like everything else)."""
    data, content_type = request.app[METRICS_KEY]()
    return web.Response(body=data, headers={"Content-Type": content_type})


async def page(request: web.Request) -> web.FileResponse:
    """GET /: the technician page (a static shell; every datum comes through the API)."""
    del request
    return web.FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)


async def static_file(request: web.Request) -> web.FileResponse:
    """GET /static/{name}: the page's own script and style; nothing else is served."""
    name = request.match_info["name"]
    if name not in {"app.js", "style.css"}:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC_DIR / name, headers=_PAGE_HEADERS)


def setup_technician_api(
    app: web.Application, view: LocalView, authenticator: Authenticator, exposition: Exposition
) -> None:
    """Add the technician routes and their auth middleware to the agent's local app; ``exposition`` renders /metrics."""
    app[VIEW_KEY] = view
    app[AUTH_KEY] = authenticator
    app[METRICS_KEY] = exposition
    app.middlewares.append(auth_middleware)
    if security_headers not in app.on_response_prepare:
        app.on_response_prepare.append(security_headers)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/devices", devices)
    app.router.add_get("/api/v1/incidents", incidents)
    app.router.add_post("/api/v1/incidents/{id}/ack", acknowledge)
    app.router.add_post("/api/v1/incidents/{id}/notes", add_note)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", static_file)
