"""Central's notion of time: one injectable clock and one sortable timestamp format."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from protocol.schema import parse_time

Clock = Callable[[], datetime]

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> datetime:
    """The wall clock, aware and in UTC: the default Clock."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Fixed-width UTC text, so that stored times sort as strings."""
    return moment.astimezone(UTC).strftime(_FORMAT)


def from_iso(text: str) -> datetime:
    """Parse a time this module (or an agent, RFC 3339) wrote."""
    return parse_time(text)


def normalize(text: str) -> str:
    """An agent's RFC 3339 time rewritten in the fixed-width UTC format."""
    return iso(parse_time(text))
