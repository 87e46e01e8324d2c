"""Staff sessions of the dashboard: login, logout, the session cookie, CSRF and the login limit.

Sessions live server-side (table ``sessions``): the cookie ``schulwart_session`` holds 256
random bits, the table only their SHA-256, so a copy of the database logs nobody in and
``user remove`` / ``user passwd`` end a user's sessions at once. The cookie is HttpOnly,
SameSite=Strict and Secure when the request came over TLS. Every form carries the session's
CSRF token (the login form a double-submit token of its own). Wrong passwords are limited
per source address and per user name (``LOGIN_MAX_FAILURES`` within ``LOGIN_WINDOW``), then
answered 429 until the window has passed. Passwords are never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from base.clock import Clock
from central.limits import SharedFailureLimiter
from central.storage.interface import ApiTokenRow, SessionRow, Storage
from central.timestamps import iso
from central.users import verify_password
from central.web.appkeys import CLOCK, LOGIN_LIMITER, STORE
from central.web.i18n import Words
from central.web.pages import SESSION_KEY, current_session, page_context, read_form

log = logging.getLogger(__name__)

SESSION_COOKIE = "schulwart_session"
LOGIN_CSRF_COOKIE = "schulwart_login_csrf"
SESSION_LIFETIME = timedelta(hours=12)
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW = timedelta(minutes=10)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A strict policy, as on the technician page: only our own script and style, no inline code.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def login_limiter(store: Storage, clock: Clock) -> SharedFailureLimiter:
    """The limiter of wrong logins (sources ``addr:…`` and ``user:…``), shared by every node."""
    return SharedFailureLimiter(store, "login", clock, LOGIN_MAX_FAILURES, LOGIN_WINDOW)


def session_hash(session_id: str) -> str:
    """The SHA-256 (hex) a session id is stored as."""
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


def viewer(session: SessionRow) -> ApiTokenRow:
    """What a session may read, in the read API's terms: a carrier user is bound to its carrier."""
    return ApiTokenRow(session.user.name, session.user.carrier if session.user.role == "carrier" else None)


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the session named by the cookie (if valid); add the security headers to pages."""
    cookie = request.cookies.get(SESSION_COOKIE)
    request[SESSION_KEY] = None
    if cookie and len(cookie) <= 128:
        request[SESSION_KEY] = await request.app[STORE].get_session(session_hash(cookie), iso(request.app[CLOCK].now()))
    response = await handler(request)
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else (another host, ``//x``, ``/\\x``) becomes ``/``."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or len(target) > 500:
        return "/"
    return target


def require_session(request: web.Request) -> SessionRow:
    """The session, or a redirect to the login page that comes back here."""
    session = current_session(request)
    if session is None:
        raise web.HTTPFound("/login?next=" + quote(request.path_qs, safe=""))
    return session


def csrf_ok(session_token: str | None, sent: object) -> bool:
    """Whether a form's CSRF token matches (constant time)."""
    return bool(session_token) and isinstance(sent, str) and hmac.compare_digest(session_token or "", sent)


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="Strict", secure=request.secure
    )


def _login_page(request: web.Request, status: int, message: str | None) -> web.Response:
    token = secrets.token_urlsafe(24)
    context = page_context(request, None)
    context.update(login_csrf=token, message=message, next=safe_next(request.query.get("next")))
    response = aiohttp_jinja2.render_template("login.html", request, context, status=status)
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, 3600)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    """GET /login: the login page (a logged-in user goes straight to the overview)."""
    if current_session(request) is not None:
        raise web.HTTPFound(safe_next(request.query.get("next")))
    return _login_page(request, 200, None)


async def login(request: web.Request) -> web.StreamResponse:
    """POST /login: check the password (limited per address and user), start a session, redirect."""
    form = await read_form(request)
    words: Words = page_context(request, None)["w"]
    if not csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE), form.get("csrf")):
        return _login_page(request, 403, words("csrf_failed"))
    name = str(form.get("name", ""))[:128].strip()
    password = str(form.get("password", ""))
    limiter = request.app[LOGIN_LIMITER]
    sources = (f"addr:{request.remote}", f"user:{name.casefold()}")
    if any([await limiter.blocked(s) for s in sources]):
        log.warning("login refused (too many failures) user=%r from=%s", name, request.remote)
        return _login_page(request, 429, words("login_limited"))
    store = request.app[STORE]
    user = await store.get_user(name) if name else None
    # Argon2 takes ~50 ms of CPU: off the event loop, so other requests go on meanwhile.
    ok = await asyncio.to_thread(verify_password, user.password_hash if user else None, password)
    if user is None or not ok:
        for source in sources:
            await limiter.fail(source)
        log.warning("login failed user=%r from=%s", name, request.remote)
        return _login_page(request, 401, words("login_failed"))
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = request.app[CLOCK].now()
    await store.add_session(session_hash(session_id), user.name, csrf, iso(now), iso(now + SESSION_LIFETIME))
    log.info("login user=%s from=%s", user.name, request.remote)
    response = web.HTTPFound(safe_next(str(form.get("next", "/"))))
    _set_cookie(request, response, SESSION_COOKIE, session_id, int(SESSION_LIFETIME.total_seconds()))
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /logout: end the session (CSRF-checked) and go to the login page."""
    session = current_session(request)
    form = await read_form(request)
    if session is None:
        raise web.HTTPFound("/login")
    if not csrf_ok(session.csrf, form.get("csrf")):
        raise web.HTTPForbidden(reason="csrf")
    await request.app[STORE].delete_session(session_hash(request.cookies.get(SESSION_COOKIE, "")))
    log.info("logout user=%s", session.user.name)
    response = web.HTTPFound("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
