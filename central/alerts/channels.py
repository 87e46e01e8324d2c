"""The three ways an alert leaves central: e-mail, a signed webhook, a Zammad ticket.

Each channel turns a :class:`Notice` into one network exchange with a timeout and answers with
the reference the follow-ups need (a Zammad ticket id) or raises :class:`DeliveryError`;
``permanent`` marks failures a retry cannot heal (a 4xx answer, a missing ticket), which go
straight to the dead-letter list. Secrets are held here and never appear in a message or a log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, ClassVar, Protocol

import aiohttp

from base.errors import ConfigError
from central.alerts.config import EmailChannel, WebhookChannel, ZammadChannel
from central.alerts.wording import IncidentFacts, Message

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Schulwart-Signature"
EVENT_HEADER = "X-Schulwart-Event"
DELIVERY_HEADER = "X-Schulwart-Delivery"
USER_AGENT = "schulwart-central"
MAX_SECRET_BYTES = 4096


class DeliveryError(Exception):
    """A message did not arrive; ``permanent`` when retrying the same request cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Notice:
    """One message to send: which delivery, its thread, what kind, the facts and the words.

    ``ref`` is what the channel answered for the thread's first message (None for a first one).
    """

    delivery_id: int
    thread: str
    kind: str  # opened, acknowledged, resolved or digest
    incidents: tuple[IncidentFacts, ...]
    message: Message
    sent_at: str
    ref: str | None = None
    cause: str = ""

    @property
    def event(self) -> str:
        """The event name the webhook carries: incident.opened|acknowledged|resolved or incident.digest."""
        return f"incident.{self.kind}"


class Channel(Protocol):
    """What the delivery worker needs of a channel."""

    name: str
    language: str | None

    async def send(self, notice: Notice) -> str | None:
        """Deliver ``notice``; the reference follow-ups need, or None. Raises DeliveryError."""


def read_secret(path_text: str, base: Path | None, what: str) -> str:
    """A secret from a file (first line, stripped); a relative path counts from ``base``.

    Raises ConfigError naming the file and the reason, never the content.
    """
    path = Path(path_text)
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        data = path.read_bytes()[: MAX_SECRET_BYTES + 1]
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    text = data.decode("utf-8", "replace").strip().splitlines()
    if not text or len(data) > MAX_SECRET_BYTES:
        raise ConfigError(f"{what} {path} is empty or longer than {MAX_SECRET_BYTES} bytes")
    return text[0].strip()


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


# -- e-mail -------------------------------------------------------------------------------------


class EmailSender:
    """Mail over SMTP (RFC 5321) with aiosmtplib; messages are RFC 5322 with threading headers.

    Every message of a thread carries a Message-ID derived from the thread, and follow-ups name
    the first one in In-Reply-To and References, so a mail client shows one conversation.
    """

    def __init__(self, config: EmailChannel, password: str | None, language: str | None) -> None:
        self.config = config
        self.name = config.name
        self.language = language
        self._password = password

    def _message_id(self, thread: str, kind: str) -> str:
        domain = self.config.sender.rpartition("@")[2] or "schulwart.invalid"
        digest = hashlib.sha256(f"{self.name}\x00{thread}".encode()).hexdigest()[:32]
        return f"<{digest}.{kind}@{domain}>"

    def build(self, notice: Notice) -> EmailMessage:
        """The RFC 5322 message for ``notice`` (exposed for tests and `alerts test`)."""
        mail = EmailMessage()
        mail["From"] = self.config.sender
        mail["To"] = ", ".join(self.config.to)
        mail["Subject"] = notice.message.subject
        mail["Date"] = format_datetime(_parse(notice.sent_at))
        if notice.kind == "test":
            mail["Message-ID"] = make_msgid(domain=self.config.sender.rpartition("@")[2] or None)
        else:
            mail["Message-ID"] = self._message_id(notice.thread, notice.kind)
        if notice.kind in ("acknowledged", "resolved"):
            first = self._message_id(notice.thread, "opened")
            mail["In-Reply-To"] = first
            mail["References"] = first
        mail["X-Schulwart-Event"] = notice.event
        mail["Content-Language"] = notice.message.language
        mail.set_content(notice.message.text)
        return mail

    async def send(self, notice: Notice) -> str | None:
        """Hand the message to the SMTP server; its Message-ID is the reference."""
        import aiosmtplib  # central-only dependency

        mail = self.build(notice)
        try:
            await aiosmtplib.send(
                mail,
                hostname=self.config.host,
                port=self.config.port,
                username=self.config.username,
                password=self._password,
                use_tls=self.config.security == "tls",
                start_tls=True if self.config.security == "starttls" else False,
                timeout=self.config.timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            # 5xx: the server refuses this message for good (RFC 5321, 4.2.1); 4xx: try again later.
            raise DeliveryError(f"SMTP {exc.code}: {exc.message[:200]}", permanent=500 <= exc.code < 600) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"SMTP {self.config.host}:{self.config.port}: {_short(exc)}") from None
        return str(mail["Message-ID"])


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- HTTP channels ------------------------------------------------------------------------------


def sign_body(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 (RFC 2104) of the body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _classify(status: int, what: str, text: str) -> DeliveryError:
    # 408 and 429 say "later"; other 4xx say "this request is wrong" and a retry repeats it.
    permanent = 400 <= status < 500 and status not in (408, 429)
    return DeliveryError(f"{what} answered {status}: {text[:200]}", permanent=permanent)


async def _post_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    what: str,
) -> Any:
    try:
        async with session.request(
            method,
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as resp:
            text = await resp.text(errors="replace")
            if not 200 <= resp.status < 300:
                raise _classify(resp.status, what, text)
            try:
                return json.loads(text) if text.strip() else None
            except ValueError:
                return None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise DeliveryError(f"{what}: {_short(exc)}") from None


class WebhookSender:
    """A JSON POST to one URL, signed: ``X-Schulwart-Signature: sha256=<hex HMAC-SHA256 of the body>``.

    The body is ``{"event", "delivery_id", "thread", "sent_at", "language", "subject", "text",
    "incident"}`` (``"incidents"`` and ``"cause"`` for a digest); a receiver verifies the HMAC over
    the raw body bytes before parsing, and may drop a ``delivery_id`` it has seen (a message can
    arrive twice if central stopped between sending and recording it).
    """

    def __init__(
        self, config: WebhookChannel, secret: str, language: str | None, session: aiohttp.ClientSession
    ) -> None:
        self.config = config
        self.name = config.name
        self.language = language
        self._secret = secret
        self._session = session

    def body(self, notice: Notice) -> bytes:
        """The exact bytes that are signed and sent."""
        doc: dict[str, Any] = {
            "event": notice.event,
            "delivery_id": notice.delivery_id,
            "thread": notice.thread,
            "sent_at": notice.sent_at,
            "language": notice.message.language,
            "subject": notice.message.subject,
            "text": notice.message.text,
        }
        if notice.kind == "digest":
            doc["cause"] = notice.cause
            doc["incidents"] = [i.to_json() for i in notice.incidents]
        else:
            doc["incident"] = notice.incidents[0].to_json()
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def send(self, notice: Notice) -> str | None:
        """POST the signed body; any 2xx answer counts as delivered."""
        body = self.body(notice)
        headers = {
            SIGNATURE_HEADER: sign_body(self._secret, body),
            EVENT_HEADER: notice.event,
            DELIVERY_HEADER: str(notice.delivery_id),
        }
        await _post_json(self._session, "POST", self.config.url, body, headers, self.config.timeout, "webhook")
        return None


class ZammadSender:
    """A ticket per incident in Zammad through its REST API (docs.zammad.org, "API" → "Ticket").

    Opened: ``POST /api/v1/tickets`` with title, group, customer, priority and a first article
    (a note); the answer's ``id`` is the reference. Acknowledged: ``POST /api/v1/ticket_articles``
    with that ``ticket_id``. Resolved: ``PUT /api/v1/tickets/{id}`` with the new state and the
    article in one request. Authentication: ``Authorization: Token token=<token>``.
    """

    PRIORITY: ClassVar[dict[str, str]] = {"critical": "3 high", "warning": "2 normal", "info": "1 low"}

    def __init__(
        self, config: ZammadChannel, token: str, language: str | None, session: aiohttp.ClientSession
    ) -> None:
        self.config = config
        self.name = config.name
        self.language = language
        self._token = token
        self._session = session

    def _article(self, notice: Notice) -> dict[str, Any]:
        return {
            "subject": notice.message.subject,
            "body": notice.message.text,
            "type": "note",
            "internal": False,
            "content_type": "text/plain",
        }

    async def send(self, notice: Notice) -> str | None:
        """Create, annotate or close the ticket; the ticket id (as text) after creating it."""
        base = self.config.url.rstrip("/") + "/api/v1"
        auth = {"Authorization": f"Token token={self._token}"}
        timeout = self.config.timeout
        if notice.kind in ("opened", "digest", "test"):
            worst = max(notice.incidents, key=lambda i: ("info", "warning", "critical").index(i.severity)).severity
            doc: dict[str, Any] = {
                "title": notice.message.subject,
                "group": self.config.group,
                "customer": self.config.customer,
                "priority": self.PRIORITY.get(worst, "2 normal"),
                "article": self._article(notice),
            }
            answer = await _post_json(self._session, "POST", f"{base}/tickets", _dumps(doc), auth, timeout, "zammad")
            ticket_id = answer.get("id") if isinstance(answer, dict) else None
            if not isinstance(ticket_id, int) or isinstance(ticket_id, bool):
                raise DeliveryError("zammad answered without a ticket id", permanent=True)
            return str(ticket_id)
        if notice.ref is None or not notice.ref.isdigit():
            raise DeliveryError(f"no Zammad ticket known for {notice.kind} of thread {notice.thread}", permanent=True)
        if notice.kind == "acknowledged":
            doc = {"ticket_id": int(notice.ref), **self._article(notice)}
            await _post_json(self._session, "POST", f"{base}/ticket_articles", _dumps(doc), auth, timeout, "zammad")
        else:
            doc = {"state": self.config.resolved_state, "article": self._article(notice)}
            await _post_json(
                self._session, "PUT", f"{base}/tickets/{notice.ref}", _dumps(doc), auth, timeout, "zammad"
            )
        return None


def _dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
