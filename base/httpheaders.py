"""Response headers both HTTP servers set on every answer (an aiohttp ``on_response_prepare`` hook).

- ``X-Content-Type-Options: nosniff`` on JSON (and every other) answer: a browser must never
  guess a JSON error page that echoes input into HTML.
- ``Cache-Control: no-store`` on answers to POST and on ``/metrics``: neither a proxy nor a
  browser may keep an acknowledgement, a token-bearing answer or a metrics page.
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["security_headers"]


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Add the headers above to ``response`` unless a handler already chose its own."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.method == "POST" or request.path == "/metrics":
        response.headers["Cache-Control"] = "no-store"
