"""Central's stored timestamps: one fixed-width UTC format that sorts as text.

The clock itself is ``base.clock.Clock``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from protocol.schema import parse_time

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def iso(moment: datetime) -> str:
    """Fixed-width UTC text, so that stored times sort as strings."""
    return moment.astimezone(UTC).strftime(_FORMAT)


def from_iso(text: str) -> datetime:
    """Parse a time this module (or an agent, RFC 3339) wrote."""
    return parse_time(text)


def normalize(text: str) -> str:
    """An agent's RFC 3339 time rewritten in the fixed-width UTC format."""
    return iso(parse_time(text))


def stored(text: str, moment: datetime) -> str:
    """The fixed-width UTC form of a time already parsed (``moment`` is ``parse_time(text)``).

    ``text`` itself when it is in that form already (what agents send for most times), so the
    common case costs no formatting.
    """
    if len(text) == 27 and text[19] == "." and text[26] == "Z" and text.isascii():
        return text
    return iso(moment)
