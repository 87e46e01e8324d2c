"""The technician API's view of a running agent: its store, its engine and its live snapshot."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.config import AgentConfig
from agent.identity import Identity, time_floor, trusted_central_keys
from agent.incidents.engine import IncidentEngine, UnknownIncidentError, list_incidents, notes_for
from agent.status import status_info
from agent.store import Store
from agent.store.inventory import device_json, list_devices
from agent.techapi.view import Page, SiteIdentity
from protocol.keys import load_public_key_b64
from protocol.schema import CONFIG_CENTRAL_STEPS, parse_time

MAX_INCIDENTS = 5000


def _list_of(section: Any, key: str) -> list[Any]:
    """A section's items: a list, or an object keyed by id (cabinets are)."""
    if isinstance(section, list):
        return section
    inner = section.get(key) if isinstance(section, Mapping) else None
    if isinstance(inner, list):
        return list(inner)
    if isinstance(inner, Mapping):
        return [{"id": k, **v} for k, v in inner.items() if isinstance(v, Mapping)]
    return []


class AgentView:
    """Implements agent.techapi.view.LocalView over a running agent's parts.

    ``store`` and ``engine`` are the agent's own (reads, acks, notes); ``data_dir`` is shown in
    the status; ``identity`` is None before enrollment; ``sections`` returns each monitor's
    latest snapshot section by name; ``wake`` asks sync to run soon.
    """

    def __init__(
        self,
        *,
        store: Store,
        engine: IncidentEngine,
        data_dir: Path,
        identity: Identity | None,
        sections: Callable[[], Mapping[str, Mapping[str, Any]]],
        wake: Callable[[], None],
        config: AgentConfig | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._engine = engine
        self._data_dir = data_dir
        self._enrolled = identity
        self._sections = sections
        self._wake = wake
        self._identity: SiteIdentity | None = None

    def identity(self) -> SiteIdentity | None:
        """From enrollment; the issuer key is loaded once (weak keys refused)."""
        ident = self._enrolled
        if ident is None:
            return None
        if self._identity is None:
            self._identity = SiteIdentity(
                agent_id=ident.agent_id,
                school_id=ident.school_id,
                school_name=ident.school_name or ident.school_id,
                carrier=ident.carrier,
                token_public_key=load_public_key_b64(ident.token_public_key),
            )
        return self._identity

    def token_keys(self) -> list[Ed25519PublicKey]:
        """The token issuer keys central's newest signed config says to trust; empty before one names them."""
        return trusted_central_keys(self._store, "token")

    def time_floor(self) -> datetime | None:
        """The newest central-signed time the agent has seen."""
        floor = time_floor(self._store)
        return parse_time(floor) if floor else None

    def revoked_tokens(self) -> frozenset[str]:
        """The jtis of technician tokens central revoked, from its newest signed config (empty before one)."""
        stored = self._store.get_setting("central_config") or {}
        listed = (stored.get("settings") or {}).get("revoked_tokens") if isinstance(stored, dict) else None
        return frozenset(j for j in listed if isinstance(j, str)) if isinstance(listed, list) else frozenset()

    def central_steps(self) -> dict[str, list[dict[str, Any]]]:
        """Central staff's acks and notes from the newest signed config, by incident id, oldest first.

        Each ``{"action": "acknowledged" | "note", "by", "at", "text"?}``; entries of another shape are skipped.
        """
        stored = self._store.get_setting("central_config") or {}
        listed = (stored.get("settings") or {}).get(CONFIG_CENTRAL_STEPS) if isinstance(stored, dict) else None
        steps: dict[str, list[dict[str, Any]]] = {}
        for raw in listed if isinstance(listed, list) else []:
            if not isinstance(raw, dict) or raw.get("action") not in ("acknowledged", "note"):
                continue
            fields = ("incident", "by", "at", "text") if raw["action"] == "note" else ("incident", "by", "at")
            if not all(isinstance(raw.get(f), str) for f in fields):
                continue
            step = {f: raw[f] for f in fields if f != "incident"}
            steps.setdefault(raw["incident"], []).append({"action": raw["action"], **step})
        return steps

    def status(self) -> Mapping[str, Any]:
        """`status --json` plus the live monitor sections (WLAN, cabinets, host)."""
        info = status_info(self._data_dir, self._store, self._config)
        sections = {name: dict(values) for name, values in self._sections().items()}
        info["snapshot"] = sections
        info["counts"] = {
            "devices": info["devices"],
            "aps": len(_list_of(sections.get("wlan"), "aps")),
            "cabinets": len(_list_of(sections.get("cabinets"), "cabinets")),
        }
        return info

    def devices(
        self, *, device_class: str | None, state: str | None, query: str | None, limit: int, offset: int
    ) -> Page:
        """The inventory with real names, filtered by class, state and a free-text query."""
        rows = [device_json(d) for d in list_devices(self._store)]
        if device_class:
            rows = [r for r in rows if r["class"] == device_class]
        if state:
            rows = [r for r in rows if r["state"] == state]
        if query:
            needle = query.casefold()
            rows = [
                r
                for r in rows
                if needle in " ".join([r["name"], r["model"] or "", *r["addresses"]]).casefold()
            ]
        return Page(rows[offset : offset + limit], len(rows))

    def incidents(
        self, *, state: str, severity: str | None, category: str | None, limit: int, offset: int
    ) -> Page:
        """Incidents with their notes and central staff's steps (``central``), newest first."""
        found = list_incidents(self._store, open_only=state == "open", limit=MAX_INCIDENTS)
        rows = [i.to_json() for i in found]
        if state == "resolved":
            rows = [r for r in rows if r["resolved_at"] is not None]
        if severity:
            rows = [r for r in rows if r["severity"] == severity]
        if category:
            rows = [r for r in rows if r["category"] == category]
        page = rows[offset : offset + limit]
        notes = notes_for(self._store, [r["id"] for r in page])
        central = self.central_steps()
        for row in page:
            row["notes"] = notes.get(row["id"], [])
            row["central"] = central.get(row["id"], [])
        return Page(page, len(rows))

    def _one(self, incident_id: str) -> dict[str, Any]:
        row = next(i.to_json() for i in list_incidents(self._store, limit=MAX_INCIDENTS) if i.id == incident_id)
        row["notes"] = notes_for(self._store, [incident_id])[incident_id]
        row["central"] = self.central_steps().get(incident_id, [])
        return row

    def acknowledge(self, incident_id: str, by: str, note: str | None) -> Mapping[str, Any] | None:
        """Acknowledge (and note, if given) in one transaction; sync is woken so central hears it soon.

        StoreFullError when the disk is full (nothing stored); None for an unknown incident.
        """
        try:
            self._engine.acknowledge(incident_id, by, note=note)  # one transaction: both or neither
        except UnknownIncidentError:
            return None
        self._wake()
        return self._one(incident_id)

    def add_note(self, incident_id: str, by: str, text: str) -> Mapping[str, Any] | None:
        """Add a note; sync is woken so central hears it soon."""
        try:
            self._engine.add_note(incident_id, by, text)
        except UnknownIncidentError:
            return None
        self._wake()
        return self._one(incident_id)
