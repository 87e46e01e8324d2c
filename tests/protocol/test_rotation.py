"""Key rotation payloads (protocol.rotation): the proof binds the new key to the agent and its old key."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from protocol.errors import BadSignatureError, MalformedError, WeakKeyError
from protocol.keys import generate_private_key, keyid
from protocol.rotation import build_rotation, parse_rotation

OLD = keyid(generate_private_key())
NEW = generate_private_key()
AT = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def test_a_rotation_round_trips() -> None:
    parsed = parse_rotation(build_rotation("ag-1", "gs-nord", OLD, NEW, AT), OLD)
    assert (parsed.agent_id, parsed.school_id, parsed.made_at) == ("ag-1", "gs-nord", "2026-11-30T10:00:00Z")
    assert parsed.new_keyid == keyid(NEW)


def test_the_proof_names_the_agent_and_its_old_key() -> None:
    payload = build_rotation("ag-1", "gs-nord", OLD, NEW, AT)
    with pytest.raises(BadSignatureError) as caught:
        parse_rotation(payload, keyid(generate_private_key()))  # verified with another old key
    assert caught.value.reason == "bad_proof"
    doc = json.loads(payload)
    doc["agent_id"] = "ag-2"  # moved to another agent
    with pytest.raises(BadSignatureError):
        parse_rotation(json.dumps(doc).encode(), OLD)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"extra": 1}, MalformedError),
        ({"v": 2}, MalformedError),
        ({"made_at": "yesterday"}, MalformedError),
        ({"new_public_key": "AAAA"}, WeakKeyError),
        ({"new_public_key": "AQ" + "A" * 41 + "="}, WeakKeyError),
        ({"proof": "!!"}, MalformedError),
        ({"school_id": None}, MalformedError),
    ],
)
def test_a_bad_payload_is_refused(change: dict[str, object], error: type[Exception]) -> None:
    doc = json.loads(build_rotation("ag-1", "gs-nord", OLD, NEW, AT)) | change
    with pytest.raises(error):
        parse_rotation(json.dumps(doc).encode(), OLD)
