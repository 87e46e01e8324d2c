"""The [alerts] section of central's TOML file: channels, routing rules, quiet hours, holidays, digests.

Channels are arrays of tables, one array per kind, so that each kind refuses the keys of the
others (``[[alerts.email]]``, ``[[alerts.webhook]]``, ``[[alerts.zammad]]``); every channel has a
``name`` that rules refer to. Rules are ``[[alerts.rule]]``: an incident goes to the channels of
every rule it matches. Secrets are never written in the file: ``password_file``, ``secret_file``
and ``token_file`` name files (read when ``serve`` starts; their content is never logged).
See docs/central.md, "Alert routing", for a worked example.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta
from typing import Literal

from base.config import InvalidValueError, check_http_url, check_timezone, duration, setting

Language = Literal["de", "en"]
Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
CATEGORIES = ("wlan", "cabinet", "device", "host", "agent")


def _check_name(name: str) -> None:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidValueError(f"must be 1..64 of letters, digits, '-', '_', '.' (got {name!r})")


def _check_categories(values: tuple[str, ...]) -> None:
    unknown = [v for v in values if v not in CATEGORIES]
    if unknown:
        raise InvalidValueError(f"has unknown categories {', '.join(unknown)} (known: {', '.join(CATEGORIES)})")


@dataclass(frozen=True, slots=True)
class EmailChannel:
    """[[alerts.email]]: mail over SMTP (RFC 5321) to fixed recipients; ``security`` none|starttls|tls."""

    name: str = setting("", required=True, check=_check_name)
    host: str = setting("", required=True)
    port: int = setting(587, low=1, high=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password_file: str | None = None
    sender: str = setting("", required=True)  # the From: address
    to: tuple[str, ...] = setting((), required=True)
    language: Language | None = None  # default: [alerts] language
    timeout: float = duration(10.0, high=300)

    def __post_init__(self) -> None:
        if not self.to:
            raise InvalidValueError("must name at least one recipient", "to")
        if (self.username is None) != (self.password_file is None):
            raise InvalidValueError("and password_file come together (or neither)", "username")


@dataclass(frozen=True, slots=True)
class WebhookChannel:
    """[[alerts.webhook]]: a JSON POST signed with HMAC-SHA256 over the body (RFC 2104)."""

    name: str = setting("", required=True, check=_check_name)
    url: str = setting("", required=True, check=check_http_url)
    secret_file: str = setting("", required=True)
    language: Language | None = None
    timeout: float = duration(10.0, high=300)


@dataclass(frozen=True, slots=True)
class ZammadChannel:
    """[[alerts.zammad]]: a ticket per incident in a Zammad helpdesk through its REST API (token auth)."""

    name: str = setting("", required=True, check=_check_name)
    url: str = setting("", required=True, check=check_http_url)  # the Zammad base URL, without /api/v1
    token_file: str = setting("", required=True)
    group: str = setting("", required=True)  # the Zammad group the tickets go to
    customer: str = setting("", required=True)  # the customer's e-mail or login in Zammad
    resolved_state: str = "closed"  # the ticket state set when the incident resolves
    language: Language | None = None
    timeout: float = duration(10.0, high=300)


@dataclass(frozen=True, slots=True)
class Rule:
    """[[alerts.rule]]: which incidents go to which channels; an empty list matches everything."""

    channels: tuple[str, ...] = setting((), required=True)
    carriers: tuple[str, ...] = ()
    schools: tuple[str, ...] = ()
    categories: tuple[str, ...] = setting((), check=_check_categories)
    min_severity: Severity = "warning"

    def __post_init__(self) -> None:
        if not self.channels:
            raise InvalidValueError("must name at least one channel", "channels")

    def matches(self, carrier: str, school_id: str, category: str, severity: str) -> bool:
        """Whether an incident of this school, category and severity falls under the rule."""
        return (
            (not self.carriers or carrier in self.carriers)
            and (not self.schools or school_id in self.schools)
            and (not self.categories or category in self.categories)
            and SEVERITY_RANK.get(severity, 0) >= SEVERITY_RANK[self.min_severity]
        )


@dataclass(frozen=True, slots=True)
class AlertsSection:
    """[alerts]: routing of incidents to channels; times are local in ``timezone``, durations as text."""

    language: Language = "de"
    public_url: str = setting("http://127.0.0.1:8400", check=check_http_url)  # central's address in messages
    timezone: str = setting("Europe/Berlin", check=check_timezone)
    interval: timedelta = duration(timedelta(seconds=10), high=3600)  # how often incidents are looked at
    quiet_start: time | None = None  # e.g. "20:00": non-critical messages wait ...
    quiet_end: time | None = None  # ... until e.g. "07:00"
    holidays_ics: str | None = None  # an iCalendar file (RFC 5545) of school holidays
    holiday_mode: Literal["silence", "defer"] = "silence"
    digest_threshold: int = setting(5, low=1)  # more openings than this of one cause within the window ...
    digest_window: timedelta = duration(timedelta(minutes=15), high=86400)  # ... go out as one digest
    digest_hold: timedelta = duration(timedelta(minutes=2), zero_ok=True, high=3600)  # a digest gathers this long
    max_attempts: int = setting(3, low=1, high=100)  # failed attempts before the dead-letter list
    retry_base: timedelta = duration(timedelta(seconds=30), high=86400)
    retry_cap: timedelta = duration(timedelta(minutes=30), high=7 * 86400)
    email: tuple[EmailChannel, ...] = ()
    webhook: tuple[WebhookChannel, ...] = ()
    zammad: tuple[ZammadChannel, ...] = ()
    rule: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise InvalidValueError("and quiet_end come together (or neither)", "quiet_start")
        names = list(self.channel_names)
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidValueError(f"channel name(s) used twice: {', '.join(twice)}")
        for index, rule in enumerate(self.rule, 1):
            unknown = [c for c in rule.channels if c not in names]
            if unknown:
                known = ", ".join(names) or "none configured"
                raise InvalidValueError(f"rule #{index} names unknown channel(s) {', '.join(unknown)} (known: {known})")

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Every configured channel's name."""
        return (
            *(c.name for c in self.email),
            *(c.name for c in self.webhook),
            *(c.name for c in self.zammad),
        )

    def channels_for(self, carrier: str, school_id: str, category: str, severity: str) -> tuple[str, ...]:
        """The channels of every rule the incident matches, each once, in configuration order."""
        out: dict[str, None] = {}
        for rule in self.rule:
            if rule.matches(carrier, school_id, category, severity):
                out.update(dict.fromkeys(rule.channels))
        return tuple(out)


