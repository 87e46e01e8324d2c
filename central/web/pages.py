"""What every dashboard page shares: the template context and the error page.

Pages answer bad input with a page that says what is wrong (never JSON, never a
traceback); the API's JSON refusals stay in ``central.web.app``'s error middleware.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiDictProxy

from central.errors import http_status
from central.storage.interface import SessionRow
from central.web.appkeys import CLOCK
from central.web.i18n import LANG_COOKIE, Words, choose_language
from protocol.errors import MalformedError, SchulwartError

log = logging.getLogger(__name__)

# The request's SessionRow (or None), set by the session middleware. aiohttp >= 3.12 has typed
# request keys and warns on a plain string key; older versions (the agent allows 3.9) take the string.
_REQUEST_KEY: Any = getattr(web, "RequestKey", None)
SESSION_KEY: Any = _REQUEST_KEY("schulwart_session", object) if _REQUEST_KEY is not None else "schulwart.session"
PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def current_session(request: web.Request) -> SessionRow | None:
    """The logged-in session of this request, or None."""
    session = request.get(SESSION_KEY)
    return session if isinstance(session, SessionRow) else None


def page_context(request: web.Request, session: SessionRow | None) -> dict[str, Any]:
    """``w`` (the words and formatters of the viewer's language), ``user``, ``csrf``, ``lang``, ``other_lang``."""
    lang = choose_language(
        request.query.get("lang"), request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language")
    )
    return {
        "w": Words(lang, request.app[CLOCK].now()),
        "lang": lang,
        "other_lang": "en" if lang == "de" else "de",
        "user": None if session is None else session.user,
        "csrf": None if session is None else session.csrf,
        "path": request.path,
    }


def render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    """Render a page; a ``?lang=`` choice is remembered in a cookie for the next pages."""
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    if request.query.get("lang") in ("de", "en"):
        response.set_cookie(
            LANG_COOKIE, str(context["lang"]), max_age=365 * 86400, path="/", samesite="Strict", secure=request.secure
        )
    return response


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    """The posted form fields; raises MalformedError (400) for a body aiohttp cannot read as a form.

    aiohttp raises ValueError for a ``multipart/form-data`` type without a boundary (found by
    schemathesis: it was a 500).
    """
    try:
        return await request.post()
    except ValueError as exc:
        raise MalformedError(f"form body: {str(exc)[:120]}", reason="bad_form") from None


def error_page(request: web.Request, session: SessionRow | None, status: int, message: str) -> web.Response:
    """A page that says what went wrong, with the given status."""
    context = page_context(request, session)
    context["message"] = message
    context["status"] = status
    return render(request, "error.html", context, status)


def page(handler: PageHandler) -> PageHandler:
    """Turn refusals inside a page handler into an error page; redirects pass through."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SchulwartError as exc:
            return error_page(request, current_session(request), http_status(exc), exc.message[:300])
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_page(request, current_session(request), exc.status, exc.reason or "error")
        except Exception:
            # A bug, not a refusal: the traceback goes to the log, the viewer gets a page that says so.
            log.exception("internal error on page %s %s", request.method, request.path[:100])
            return error_page(request, current_session(request), 500, "internal error (see central's log)")

    return wrapped
