"""Verify a signed envelope and store what it carries, idempotently: HTTP and `import` share this.

Order (docs/protocol.md, "Signed envelope"): size cap; strict JSON and base64; the key by keyid among enrolled keys
(unknown, then revoked); the signature; the payloadType; the payload; its agent and
school against the key's. Then, for a report, one transaction: gap check against the
ack, digest comparison for every already-held sequence number, insert of the rest,
aggregation, new ack. The caller answers only after that transaction committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from base.clock import Clock
from central import aggregate, fastjson
from central.canonical import canonical_parts
from central.metrics import Metrics
from central.storage.interface import AgentRow, EventRow, Storage
from central.timestamps import from_iso, iso
from protocol.envelope import DEFAULT_MAX_ENVELOPE_BYTES, Verified, verify
from protocol.errors import (
    ConflictError,
    GapError,
    IdentityError,
    MalformedError,
    ProtocolError,
    RevokedKeyError,
    TooLargeError,
    UnknownKeyError,
)
from protocol.fields import slot_setter
from protocol.keys import stored_public_key
from protocol.schema import (
    BUNDLE_TYPE,
    MAX_EVENTS,
    REPORT_TYPE,
    STATE_TYPE,
    Report,
    StatePayload,
    parse_bundle,
    parse_report,
    parse_state,
)

log = logging.getLogger(__name__)

REPORT_TYPES = frozenset({REPORT_TYPE, STATE_TYPE})
MAX_BUNDLE_BYTES = 256 * 1024 * 1024
SILENT_INCIDENT = "central-silent"
FORKED_INCIDENT = "central-forked-"
_KEYS_CACHED = 100_000  # loaded public keys kept (about 100 bytes each); the cache starts over past it


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one accepted envelope did."""

    agent_id: str
    school_id: str
    kind: str  # "report" or "state"
    acked_through: int
    stored: int = 0
    state: str | None = None  # "applied" or "stale" for a state payload

    def answer(self) -> dict[str, Any]:
        """The JSON body of the 200 answer."""
        body: dict[str, Any] = {"acked_through": self.acked_through}
        if self.state is not None:
            body["state"] = self.state
        return body


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an imported bundle did."""

    agent_id: str
    school_id: str
    envelopes: int
    stored: int
    acked_through: int
    states_applied: int


_new = object.__new__
_row_setters = tuple(slot_setter(EventRow, f.name) for f in fields(EventRow))
_set_agent, _set_seq, _set_school, _set_kind, _set_at, _set_digest, _set_body = _row_setters


def _event_row(agent_id: str, seq: int, school_id: str, kind: str, at: str, digest: str, body: str) -> EventRow:
    """``EventRow(...)`` without the frozen dataclass __init__ (see ``slot_setter``): one per stored event."""
    row = _new(EventRow)
    _set_agent(row, agent_id)
    _set_seq(row, seq)
    _set_school(row, school_id)
    _set_kind(row, kind)
    _set_at(row, at)
    _set_digest(row, digest)
    _set_body(row, body)
    return row


def _keyid_of(doc: Any) -> str | None:
    """The keyid the envelope names, when its shape lets us read one (verify() checks the rest)."""
    if isinstance(doc, dict):
        signatures = doc.get("signatures")
        if isinstance(signatures, list) and len(signatures) == 1 and isinstance(signatures[0], dict):
            kid = signatures[0].get("keyid")
            if isinstance(kid, str) and len(kid) <= 128:
                return kid
    return None


def _sender_version(extra: Mapping[str, Any]) -> str | None:
    """The agent_version a report or state carries (an added field; older agents send none)."""
    version = extra.get("agent_version")
    return version[:64] if isinstance(version, str) and version else None


class Ingestor:
    """Verification and idempotent storage of report, state and bundle envelopes."""

    def __init__(
        self,
        store: Storage,
        clock: Clock,
        *,
        max_envelope_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES,
        max_events: int = MAX_EVENTS,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_envelope_bytes = max_envelope_bytes
        self.max_events = max_events
        self.metrics = metrics
        self._keys: dict[bytes, Ed25519PublicKey] = {}
        # Signers by keyid, as loaded while not revoked. A kept row can be stale in ``revoked``, in
        # its key (``rotate-key`` replaces it) and in the counters; an agent keeps its id and
        # school for life. Every ingest transaction reads the agent's row again and refuses what
        # the key step would refuse now (``_still_signer``: same errors); the cache saves each
        # batch a read and a pooled connection.
        self._signers: dict[str, AgentRow] = {}

    async def verify(
        self, body: bytes, allowed_types: Collection[str], *, max_bytes: int | None = None
    ) -> tuple[AgentRow, Verified]:
        """Verify an envelope against the enrolled keys; returns the signer and the payload.

        The signer's row may be one loaded by an earlier call: its agent and school hold; whether
        its key still stands (not rotated away, not revoked) and its counters are to be read again
        inside the transaction that acts on them (``_still_signer``).
        """
        cap = self.max_envelope_bytes if max_bytes is None else max_bytes
        if len(body) > cap:
            raise TooLargeError(f"envelope of {len(body)} bytes is over the cap of {cap}")
        doc = fastjson.loads(body, max_depth=4)
        if not isinstance(doc, dict):
            raise MalformedError("envelope is not a JSON object", reason="bad_envelope")
        kid = _keyid_of(doc)
        if kid is not None and (cached := self._signers.get(kid)) is not None:
            try:
                return cached, verify(doc, self._lookup(cached), allowed_types)
            except ProtocolError:
                # Refused: decide again on the stored row, so that a key revoked since it was
                # loaded is refused as revoked, at the key step, as the contract orders it.
                del self._signers[kid]
        agent = await self.store.agent_by_keyid(kid) if kid else None
        verified = verify(doc, self._lookup(agent), allowed_types)
        if agent is None:  # pragma: no cover - verify() raised UnknownKeyError already
            raise UnknownKeyError("no enrolled key")
        if not agent.revoked and kid is not None:
            if len(self._signers) >= _KEYS_CACHED:
                self._signers.clear()
            self._signers[kid] = agent
        return agent, verified

    def _still_signer(self, signer: AgentRow, current: AgentRow | None) -> AgentRow:
        """``current``, the signer's row as read now, when its key still stands; else refused as the key
        step refuses it: a key rotated away is unknown, a revoked (or gone) agent revoked. The signer
        ``verify`` returned may be a kept row from before a rotation or a revocation."""
        if current is not None and current.keyid != signer.keyid:
            self._signers.pop(signer.keyid, None)
            raise UnknownKeyError(f"no trusted key with keyid {signer.keyid[:16]}…")
        if current is None or current.revoked:
            self._signers.pop(signer.keyid, None)
            raise RevokedKeyError(f"agent {signer.agent_id} is revoked: enroll again")
        return current

    def _lookup(self, agent: AgentRow | None) -> Callable[[str], Ed25519PublicKey | None]:
        """The key step's lookup for ``verify()``: called after base64 and before the signature."""

        def lookup(wanted: str) -> Ed25519PublicKey | None:
            if agent is None or agent.keyid != wanted:
                return None
            if agent.revoked:
                raise RevokedKeyError(f"agent {agent.agent_id} is revoked: enroll again")
            return self._public_key(agent.public_key)

        return lookup

    def _public_key(self, raw: bytes) -> Ed25519PublicKey:
        """The loaded key, kept: a batch reuses its agent's key object instead of building it again."""
        key = self._keys.get(raw)
        if key is None:
            if len(self._keys) >= _KEYS_CACHED:
                self._keys.clear()
            key = self._keys[raw] = stored_public_key(raw)
        return key

    async def ingest(self, body: bytes, *, expected_agent: str | None = None) -> IngestResult:
        """Verify and apply one report or state envelope; raises a ProtocolError when refused."""
        agent, verified = await self.verify(body, REPORT_TYPES)
        if expected_agent is not None and agent.agent_id != expected_agent:
            raise IdentityError(f"envelope is signed by agent {agent.agent_id}, not {expected_agent}")
        if verified.payload_type == REPORT_TYPE:
            # Decoded here in C (same values, same refusals as parse_report's own strict decoding);
            # anything but an object goes to parse_report as bytes, for its own refusal.
            doc = fastjson.loads(verified.payload)
            report = parse_report(doc if type(doc) is dict else verified.payload, max_events=self.max_events)
            self._check_identity(agent, report.agent_id, report.school_id)
            return await self._apply_report(agent, report)
        state = parse_state(verified.payload)
        self._check_identity(agent, state.agent_id, state.school_id)
        return await self._apply_state(agent, state)

    @staticmethod
    def _check_identity(agent: AgentRow, agent_id: str, school_id: str) -> None:
        if agent_id != agent.agent_id or school_id != agent.school_id:
            log.warning(
                "identity mismatch: key of agent=%s school=%s signed a payload for agent=%s school=%s",
                agent.agent_id,
                agent.school_id,
                agent_id,
                school_id,
            )
            raise IdentityError(f"payload names agent {agent_id!r} / school {school_id!r}, not the key's")

    async def _apply_report(self, agent: AgentRow, report: Report) -> IngestResult:
        received = self.clock.now()
        now = iso(received)
        skew = (from_iso(report.sent_at) - received).total_seconds()
        version = _sender_version(report.extra)
        # One serialisation per event: the sorted-key text is both what is stored and what is digested.
        # The data's own text is kept too: device rows store it instead of encoding the data again.
        canonical = [canonical_parts(event) for event in report.events]
        try:
            async with self.store.transaction() as tx:
                current = self._still_signer(agent, await tx.get_agent(agent.agent_id))
                ack = current.acked_seq
                if report.seq_from > ack + 1:
                    raise GapError(f"batch starts at {report.seq_from}, expected {ack + 1}", expected_seq=ack + 1)
                if report.seq_from <= ack:
                    held = await tx.event_digests(agent.agent_id, report.seq_from, min(report.seq_to, ack))
                    for event, (_, digest, _) in zip(report.events, canonical, strict=True):
                        if event.seq > ack:
                            break
                        if held.get(event.seq) != digest:
                            raise ConflictError(f"seq {event.seq} is held with other content", expected_seq=ack + 1)
                fresh = [(e, c) for e, c in zip(report.events, canonical, strict=True) if e.seq > ack]
                if fresh:
                    aid, sid = agent.agent_id, agent.school_id
                    rows = [_event_row(aid, e.seq, sid, e.kind, e.at, d, t) for e, (t, d, _) in fresh]
                    await tx.insert_events(rows, now)
                    await aggregate.apply_events(tx, current, [e for e, _ in fresh], now, [c[2] for _, c in fresh])
                    ack = report.seq_to
                await tx.record_contact(agent.agent_id, ack, now, skew, version)
                await tx.resolve_central_incident(agent.school_id, SILENT_INCIDENT, now)
        except ConflictError as exc:
            await self._forked(agent, report, exc, now)
            raise
        if fresh:
            log.info(
                "stored events %d..%d agent=%s school=%s acked=%d",
                fresh[0][0].seq,
                report.seq_to,
                agent.agent_id,
                agent.school_id,
                ack,
            )
            if self.metrics is not None:
                self.metrics.events_stored.inc(len(fresh))
        else:
            log.debug("replayed batch %d..%d agent=%s acked=%d", report.seq_from, report.seq_to, agent.agent_id, ack)
        if self.metrics is not None:
            self.metrics.reports.labels("report", "stored" if fresh else "replay").inc()
        return IngestResult(agent.agent_id, agent.school_id, "report", ack, stored=len(fresh))

    async def _forked(self, agent: AgentRow, report: Report, exc: ConflictError, now: str) -> None:
        """A restored or cloned agent: alert in the log and a central incident for the school."""
        log.error(
            "ALERT agent history forked agent=%s school=%s batch=%d..%d: %s",
            agent.agent_id,
            agent.school_id,
            report.seq_from,
            report.seq_to,
            exc.message,
        )
        if self.metrics is not None:
            self.metrics.conflicts.inc()
        await self.store.raise_central_incident(
            agent.school_id,
            FORKED_INCIDENT + agent.agent_id,
            "agent",
            "critical",
            "Agent history forked (restored from backup or cloned?)",
            agent.agent_id,
            now,
            code="central.history_fork",
        )

    async def _apply_state(self, agent: AgentRow, state: StatePayload) -> IngestResult:
        now = iso(self.clock.now())
        async with self.store.transaction() as tx:
            current = self._still_signer(agent, await tx.get_agent(agent.agent_id))
            applied = await aggregate.apply_state(tx, current, state, now)
            await tx.record_contact(agent.agent_id, current.acked_seq, now, None, _sender_version(state.extra))
            await tx.resolve_central_incident(agent.school_id, SILENT_INCIDENT, now)
        outcome = "applied" if applied else "stale"
        log.info(
            "state %s agent=%s school=%s last_seq=%d acked=%d",
            outcome,
            agent.agent_id,
            agent.school_id,
            state.last_seq,
            current.acked_seq,
        )
        if self.metrics is not None:
            self.metrics.reports.labels("state", outcome).inc()
        return IngestResult(agent.agent_id, agent.school_id, "state", current.acked_seq, state=outcome)

    async def import_bundle(self, body: bytes) -> ImportSummary:
        """Verify a bundle and feed each inner envelope through ``ingest``, in order."""
        agent, verified = await self.verify(body, {BUNDLE_TYPE}, max_bytes=MAX_BUNDLE_BYTES)
        bundle = parse_bundle(verified.payload)
        self._check_identity(agent, bundle.agent_id, bundle.school_id)
        stored = applied = 0
        acked = self._still_signer(agent, await self.store.get_agent(agent.agent_id)).acked_seq
        for index, text in enumerate(bundle.envelopes):
            try:
                result = await self.ingest(text.encode("utf-8"), expected_agent=agent.agent_id)
            except ProtocolError as exc:
                # Keep the type (and expected_seq), say which envelope: the operator needs both.
                exc.args = (f"envelope {index + 1} of {len(bundle.envelopes)} refused: {exc.message}",)
                raise
            stored += result.stored
            applied += result.state == "applied"
            acked = result.acked_through
        log.info(
            "imported bundle agent=%s school=%s envelopes=%d stored=%d acked=%d",
            agent.agent_id,
            agent.school_id,
            len(bundle.envelopes),
            stored,
            acked,
        )
        return ImportSummary(agent.agent_id, agent.school_id, len(bundle.envelopes), stored, acked, applied)
