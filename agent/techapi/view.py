"""What the technician API reads and writes, as an interface the agent's store satisfies.

Kept apart from the routes so that the HTTP layer holds no SQL and tests can show the
contract in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


@dataclass(frozen=True, slots=True)
class SiteIdentity:
    """Who this agent is, as enrollment told it: enough to check a token's scope offline."""

    agent_id: str
    school_id: str
    school_name: str
    carrier: str | None
    token_public_key: Ed25519PublicKey


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list plus the total it was cut from."""

    items: Sequence[Mapping[str, Any]]
    total: int


class LocalView(Protocol):
    """The agent's local state as the technician sees it (real device names included)."""

    def identity(self) -> SiteIdentity | None:
        """None until the agent is enrolled."""

    def token_keys(self) -> Sequence[Ed25519PublicKey]:
        """The token issuer keys central's newest signed config says to trust (two during a key
        rotation); empty before such a config: then the enrolled issuer key."""

    def time_floor(self) -> datetime | None:
        """The newest central-signed time seen; tokens are checked at max(now, floor)."""

    def revoked_tokens(self) -> frozenset[str]:
        """The jtis of technician tokens central revoked (from its newest signed config)."""

    def status(self) -> Mapping[str, Any]:
        """Outbox, last sync, latest snapshot sections, counts: the same as `status --json`."""

    def devices(
        self, *, device_class: str | None, state: str | None, query: str | None, limit: int, offset: int
    ) -> Page:
        """Inventory rows, filtered and paginated."""

    def incidents(self, *, state: str, severity: str | None, category: str | None, limit: int, offset: int) -> Page:
        """Incidents (open, resolved or all), newest first, paginated."""

    def acknowledge(self, incident_id: str, by: str, note: str | None) -> Mapping[str, Any] | None:
        """Acknowledge an incident (one outbox event); None when there is no such incident."""

    def add_note(self, incident_id: str, by: str, text: str) -> Mapping[str, Any] | None:
        """Add a note to an incident (one outbox event); None when there is no such incident."""
