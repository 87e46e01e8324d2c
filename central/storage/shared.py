"""Storage and Transaction methods written once: each backend's store and transaction inherit them.

The store's are the standalone forms of Transaction methods (raise and resolve a central
incident) and the staff steps; the transaction's are built on its own reads and writes. Neither
depends on the SQL dialect.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from central.storage.interface import Transaction
from central.storage.rows import central_incident, staff_step


class IncidentSteps:
    """Mixin for a backend's Transaction: steps made of its get_incident, put_incident and log_incident."""

    async def get_incident(self, school_id: str, origin: str, agent_id: str, incident_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    async def put_incident(self, row: dict[str, Any]) -> None:
        raise NotImplementedError

    async def log_incident(
        self, incident: dict[str, Any], at: str, action: str, by: str | None, text: str | None
    ) -> None:
        raise NotImplementedError

    async def raise_central_incident(
        self,
        school_id: str,
        incident_id: str,
        category: str,
        severity: str,
        title: str,
        subject: str | None,
        at: str,
        code: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> bool:
        """Open a central incident unless it is open already; True when it was opened."""
        row = await self.get_incident(school_id, "central", "", incident_id)
        if row is not None and row["status"] == "open":
            return False
        fresh = central_incident(school_id, incident_id, category, severity, title, subject, at, code, params)
        await self.put_incident(fresh)
        await self.log_incident(fresh, at, "opened", None, None)
        return True


class TransactionalMethods:
    """Mixin: Storage methods that run one Transaction method (or a few) in their own transaction."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """One atomic unit (the backend's)."""
        raise NotImplementedError

    async def raise_central_incident(
        self,
        school_id: str,
        incident_id: str,
        category: str,
        severity: str,
        title: str,
        subject: str | None,
        at: str,
        code: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> bool:
        """Open a central incident unless it is open already; True when it was opened."""
        async with self.transaction() as tx:
            return await tx.raise_central_incident(
                school_id, incident_id, category, severity, title, subject, at, code, params
            )

    async def resolve_central_incident(self, school_id: str, incident_id: str, at: str) -> bool:
        """Resolve a central incident if open; True when it was open."""
        async with self.transaction() as tx:
            return await tx.resolve_central_incident(school_id, incident_id, at)

    async def _staff_step(
        self, key: tuple[str, str, str, str], at: str, action: str, by: str, text: str | None
    ) -> bool:
        async with self.transaction() as tx:
            row = await tx.get_incident(*key)
            if row is None:
                return False
            staff_step(row, at, action, by, text)
            await tx.put_incident(row)
            await tx.log_incident(row, at, action, by, text)
            return True

    async def staff_acknowledge(
        self, school_id: str, origin: str, agent_id: str, incident_id: str, by: str, at: str
    ) -> bool:
        """Central staff acknowledge an incident (recorded with their name); False when no such incident."""
        return await self._staff_step((school_id, origin, agent_id, incident_id), at, "staff-ack", by, None)

    async def staff_note(
        self, school_id: str, origin: str, agent_id: str, incident_id: str, by: str, text: str, at: str
    ) -> bool:
        """Central staff add a note to an incident; False when no such incident."""
        return await self._staff_step((school_id, origin, agent_id, incident_id), at, "staff-note", by, text)
