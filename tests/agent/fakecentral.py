"""A small stand-in for central that keeps the ingest contract of docs/protocol.md, for the agent's own tests.

It is a peer, not a mock of the thing under test: it verifies the agent's envelopes with
protocol/, stores each (agent_id, seq) once, acknowledges the contiguous prefix, answers
409 with the expected seq past a gap or on a conflict, and can be told to fail.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.encoding import loads_strict
from protocol.envelope import sign, verify
from protocol.errors import ProtocolError
from protocol.keys import enroll_pin, generate_private_key, keyid, load_public_key_b64, public_key_b64, public_key_raw
from protocol.schema import (
    BUNDLE_TYPE,
    CONFIG_TYPE,
    REPORT_TYPE,
    STATE_TYPE,
    build_config_payload,
    event_digest,
    format_time,
    parse_bundle,
    parse_report,
    parse_state,
)


@dataclass
class AgentRecord:
    agent_id: str
    school_id: str
    key: Ed25519PublicKey
    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    acked: int = 0
    states: list[Any] = field(default_factory=list)
    revoked: bool = False
    reports: int = 0
    duplicates: int = 0


class FakeCentral:
    """Enrollment, ingest and config, in memory."""

    def __init__(self) -> None:
        self.config_key = generate_private_key()
        self.token_key = generate_private_key()
        self.codes: dict[str, str] = {}
        self.agents: dict[str, AgentRecord] = {}
        self.by_keyid: dict[str, AgentRecord] = {}
        self.fail_next: deque[int] = deque()
        self.requests: list[tuple[str, int]] = []
        self.encodings: list[str | None] = []
        self.wire_bytes: list[int] = []  # each report request's body as it crossed the line (gzip)
        self.types: list[str] = []
        self.config_issued_at = datetime(2030, 1, 1, tzinfo=UTC)
        self.sync_settings = {"report_interval_s": 1, "max_batch_events": 100, "max_batch_bytes": 65536}

    def code(self, school_id: str = "s1") -> str:
        """A one-time code pinned to this central's keys, as the real central makes them."""
        code = f"{secrets.token_hex(6)}.{enroll_pin(public_key_raw(self.config_key), public_key_raw(self.token_key))}"
        self.codes[code] = school_id
        return code

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/v1/enroll", self.enroll)
        app.router.add_post("/v1/reports", self.reports)
        app.router.add_get("/v1/agents/{agent_id}/config", self.config)
        return app

    def only(self) -> AgentRecord:
        (record,) = self.agents.values()
        return record

    async def enroll(self, request: web.Request) -> web.Response:
        doc = await request.json()
        school = self.codes.pop(doc.get("code", ""), None)
        if school is None:
            return web.json_response({"error": "bad_code"}, status=403)
        key = load_public_key_b64(doc["public_key"])
        agent_id = f"a-{secrets.token_hex(4)}"
        record = AgentRecord(agent_id, school, key)
        self.agents[agent_id] = record
        self.by_keyid[keyid(key)] = record
        return web.json_response(
            {
                "agent_id": agent_id,
                "school_id": school,
                "carrier": "Kreis A",
                "school_name": "GS Nord",
                "central_public_key": public_key_b64(self.config_key),
                "token_public_key": public_key_b64(self.token_key),
                "central_time": format_time(datetime.now(UTC)),
                "sync": self.sync_settings,
            },
            status=201,
        )

    def _lookup(self, kid: str) -> Ed25519PublicKey | None:
        record = self.by_keyid.get(kid)
        return record.key if record else None

    def ingest_envelope(self, envelope: bytes) -> tuple[int, dict[str, Any]]:
        try:
            verified = verify(envelope, self._lookup, [REPORT_TYPE, STATE_TYPE], max_bytes=4 * 1024 * 1024)
        except ProtocolError as exc:
            return 401 if exc.reason in ("unknown_key", "bad_signature") else 400, {"error": exc.reason}
        record = self.by_keyid[verified.keyid]
        self.types.append(verified.payload_type)
        if record.revoked:
            return 403, {"error": "revoked_key"}
        if verified.payload_type == STATE_TYPE:
            state = parse_state(verified.payload)
            record.states.append(state)
            return 200, {"acked_through": record.acked, "state": "accepted"}
        report = parse_report(verified.payload)
        if report.agent_id != record.agent_id:
            return 400, {"error": "identity_mismatch"}
        record.reports += 1
        if report.seq_from > record.acked + 1:
            return 409, {"error": "sequence_gap", "expected_seq": record.acked + 1}
        for event in report.events:
            wire = event.to_json()
            held = record.events.get(event.seq)
            if held is not None:
                if event_digest(held) != event_digest(wire):
                    return 409, {"error": "sequence_conflict", "expected_seq": record.acked + 1}
                record.duplicates += 1
                continue
            record.events[event.seq] = wire
        while record.acked + 1 in record.events:
            record.acked += 1
        return 200, {"acked_through": record.acked}

    async def reports(self, request: web.Request) -> web.Response:
        raw = await request.read()  # aiohttp has already undone Content-Encoding: gzip
        self.encodings.append(request.headers.get("Content-Encoding"))
        self.wire_bytes.append(request.content_length or 0)
        if self.fail_next:
            status = self.fail_next.popleft()
            self.requests.append(("report", status))
            return web.json_response({"error": "injected"}, status=status)
        status, body = self.ingest_envelope(raw)
        self.requests.append(("report", status))
        return web.json_response(body, status=status)

    def import_bundle(self, data: bytes) -> int:
        verified = verify(data, self._lookup, [BUNDLE_TYPE], max_bytes=64 * 1024 * 1024)
        bundle = parse_bundle(verified.payload)
        for text in bundle.envelopes:
            status, _ = self.ingest_envelope(text.encode())
            assert status == 200, status
        return len(bundle.envelopes)

    async def config(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["agent_id"]
        if agent_id not in self.agents:
            return web.json_response({"error": "unknown_agent"}, status=404)
        payload = build_config_payload(agent_id, 3, self.config_issued_at, {"report_interval_s": 1})
        return web.Response(body=sign(payload, CONFIG_TYPE, self.config_key), content_type="application/json")


def seqs(record: AgentRecord) -> list[int]:
    return sorted(record.events)


def loads(raw: bytes) -> Any:
    return loads_strict(raw)
