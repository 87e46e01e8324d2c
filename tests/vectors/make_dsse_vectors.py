"""Writes tests/vectors/dsse_vectors.json: fixed keys, payloads and their envelopes.

Run it only to add a vector on purpose (``python -m tests.vectors.make_dsse_vectors``);
the tests check that today's code reproduces the stored bytes exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import envelope, schema
from protocol.encoding import b64encode
from protocol.keys import keyid, public_key_raw

# RFC 8032 §7.1 test keys 1 and 2: public, well known, never used outside tests.
KEY_A = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
KEY_B = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"

AT = "2026-03-02T07:15:00Z"


def _payloads() -> list[tuple[str, str, bytes]]:
    events = [
        schema.make_event(41, AT, "health.snapshot", {"host": {"disk_used_pct": 41.5}, "counts": {"tablets": 24}}),
        schema.make_event(
            42,
            AT,
            "incident.opened",
            {
                "id": "inc-7f3a",
                "key": "cabinet-no-power:schrank-3",
                "category": "cabinet",
                "severity": "critical",
                "title": "Ladeschrank 3 hat keinen Strom im Ladefenster",
                "subject": "schrank-3",
            },
        ),
        schema.make_event(43, AT, "incident.acknowledged", {"id": "inc-7f3a", "by": "A. Weber"}),
    ]
    report = schema.build_report("agent-0001", "gs-nord", events, AT)
    state = schema.build_state("agent-0001", "gs-nord", 43, AT, [events[1]["data"]], {"host": {"load1": 0.2}})
    config = schema.build_config_payload("agent-0001", 3, AT, {"snapshot_interval_s": 300})
    return [
        ("report", schema.REPORT_TYPE, report),
        ("state", schema.STATE_TYPE, state),
        ("config", schema.CONFIG_TYPE, config),
        ("empty-payload", schema.REPORT_TYPE, b""),
    ]


def build() -> dict[str, object]:
    """All vectors as one JSON-ready document."""
    keys = {
        name: Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed)) for name, seed in (("A", KEY_A), ("B", KEY_B))
    }
    vectors = []
    for name, payload_type, payload in _payloads():
        key = keys["A"]
        vectors.append(
            {
                "name": name,
                "key": "A",
                "payloadType": payload_type,
                "payload_b64": b64encode(payload),
                "envelope": envelope.sign(payload, payload_type, key).decode("utf-8"),
            }
        )
    return {
        "keys": {
            name: {"seed": seed, "public_b64": b64encode(public_key_raw(keys[name])), "keyid": keyid(keys[name])}
            for name, seed in (("A", KEY_A), ("B", KEY_B))
        },
        "vectors": vectors,
    }


if __name__ == "__main__":
    out = Path(__file__).with_name("dsse_vectors.json")
    out.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
