"""Real servers on loopback that alert channels talk to: SMTP (aiosmtpd), a webhook receiver, a Zammad.

Each runs in the test's event loop on 127.0.0.1 with a port the OS picks, and records what it
received. The Zammad fake speaks the part of Zammad's REST API central uses (docs.zammad.org, "API"
→ "Ticket" and "Ticket Article"): token authentication, ``POST /api/v1/tickets`` (201 with the
ticket's ``id`` and ``number``), ``POST /api/v1/ticket_articles`` and ``PUT /api/v1/tickets/{id}``;
a missing field is refused with 422 as Zammad does, an unknown ticket with 404.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import warnings
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class SmtpSink:
    """An aiosmtpd server; ``messages`` are the parsed mails, ``envelopes`` the SMTP envelopes."""

    username: str | None = None
    password: str | None = None
    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def messages(self) -> list[EmailMessage]:
        out = []
        for env in self.envelopes:
            raw = env.original_content or env.content
            assert isinstance(raw, bytes)
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            out.append(message)
        return out

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> Any:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.username
            and data.password.decode() == self.password
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        auth = self.username is not None

        def factory() -> SMTP:
            with warnings.catch_warnings():
                # aiosmtpd warns about AUTH without TLS: deliberate here, on loopback.
                warnings.simplefilter("ignore", UserWarning)
                return SMTP(
                    self,
                    hostname="smtp.test",
                    authenticator=self._authenticate if auth else None,
                    auth_required=auth,
                    auth_require_tls=False,
                )

        self._server = await loop.create_server(factory, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class _HttpServer:
    def __init__(self) -> None:
        self.app = web.Application()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@dataclass
class WebhookCall:
    headers: dict[str, str]
    body: bytes


class WebhookSink(_HttpServer):
    """Records every POST to /hook; answers ``fail_status`` to the next ``failures`` calls, then 204."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[WebhookCall] = []
        self.failures = 0
        self.fail_status = 500
        self.app.router.add_post("/hook", self._hook)

    async def _hook(self, request: web.Request) -> web.Response:
        self.calls.append(WebhookCall(dict(request.headers), await request.read()))
        if self.failures > 0:
            self.failures -= 1
            return web.json_response({"error": "down"}, status=self.fail_status)
        return web.Response(status=204)


class FakeZammad(_HttpServer):
    """Tickets in memory: ``tickets[id]`` = {title, group, customer, priority, state, articles}."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.tickets: dict[int, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.app.router.add_post("/api/v1/tickets", self._create)
        self.app.router.add_post("/api/v1/ticket_articles", self._article)
        self.app.router.add_put("/api/v1/tickets/{id}", self._update)

    def _check(self, request: web.Request) -> None:
        self.requests.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Token token={self.token}":
            raise web.HTTPUnauthorized(text='{"error":"authentication failed"}', content_type="application/json")

    @staticmethod
    def _article_of(doc: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(doc.get("body"), str) or not doc["body"]:
            raise web.HTTPUnprocessableEntity(text='{"error":"Need at least article: body"}')
        return {k: doc.get(k) for k in ("subject", "body", "type", "internal", "content_type")}

    async def _create(self, request: web.Request) -> web.Response:
        self._check(request)
        doc = await request.json()
        for key in ("title", "group", "customer", "article"):
            if not doc.get(key):
                raise web.HTTPUnprocessableEntity(text=f'{{"error":"Need {key}"}}')
        ticket_id = len(self.tickets) + 1
        self.tickets[ticket_id] = {
            "title": doc["title"],
            "group": doc["group"],
            "customer": doc["customer"],
            "priority": doc.get("priority", "2 normal"),
            "state": doc.get("state", "new"),
            "articles": [self._article_of(doc["article"])],
        }
        return web.json_response({"id": ticket_id, "number": f"{31000 + ticket_id}", "state": "new"}, status=201)

    async def _article(self, request: web.Request) -> web.Response:
        self._check(request)
        doc = await request.json()
        ticket = self.tickets.get(doc.get("ticket_id"))
        if ticket is None:
            raise web.HTTPNotFound(text='{"error":"Ticket not found"}')
        ticket["articles"].append(self._article_of(doc))
        return web.json_response({"id": 1000 + len(ticket["articles"]), "ticket_id": doc["ticket_id"]}, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        self._check(request)
        ticket = self.tickets.get(int(request.match_info["id"]))
        if ticket is None:
            raise web.HTTPNotFound(text='{"error":"Ticket not found"}')
        doc = await request.json()
        if "state" in doc:
            ticket["state"] = doc["state"]
        if "article" in doc:
            ticket["articles"].append(self._article_of(doc["article"]))
        return web.json_response({"id": int(request.match_info["id"]), "state": ticket["state"]})
