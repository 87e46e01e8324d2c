"""DSSE envelope: fixed vectors, every rejection reason, and property tests."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import envelope, errors, schema
from protocol.encoding import b64encode
from protocol.keys import generate_private_key, keyid, load_public_key_b64
from tests.vectors.make_dsse_vectors import build

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "dsse_vectors.json").read_text("utf-8"))
KEY_A = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(VECTORS["keys"]["A"]["seed"]))
KEY_B = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(VECTORS["keys"]["B"]["seed"]))
TRUSTED = {VECTORS["keys"]["A"]["keyid"]: load_public_key_b64(VECTORS["keys"]["A"]["public_b64"])}
ALLOWED = {schema.REPORT_TYPE, schema.STATE_TYPE, schema.CONFIG_TYPE}


def _vector(name: str) -> dict[str, str]:
    return next(v for v in VECTORS["vectors"] if v["name"] == name)


def _doc(name: str = "report") -> dict[str, object]:
    return json.loads(_vector(name)["envelope"])


def _raw(doc: dict[str, object]) -> bytes:
    return json.dumps(doc).encode()


def test_pae_matches_the_dsse_spec_example() -> None:
    assert envelope.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert envelope.pae("ü", b"\xff") == b"DSSEv1 2 \xc3\xbc 1 \xff"


def test_stored_vectors_are_reproduced_byte_for_byte() -> None:
    # Ed25519 is deterministic: the same key and payload must give the same envelope.
    assert build() == VECTORS


@pytest.mark.parametrize("name", [v["name"] for v in VECTORS["vectors"]])
def test_each_vector_verifies_to_its_payload(name: str) -> None:
    vector = _vector(name)
    verified = envelope.verify(vector["envelope"].encode(), TRUSTED, ALLOWED)
    assert verified.payload == base64.b64decode(vector["payload_b64"])
    assert verified.payload_type == vector["payloadType"]
    assert verified.keyid == VECTORS["keys"]["A"]["keyid"]


def _flip_payload(doc: dict) -> None:
    payload = bytearray(base64.b64decode(doc["payload"]))
    payload[10] ^= 0x01
    doc["payload"] = b64encode(bytes(payload))


def _swap_type(doc: dict) -> None:
    doc["payloadType"] = schema.STATE_TYPE


def _other_keyid(doc: dict) -> None:
    doc["signatures"][0]["keyid"] = keyid(KEY_B)


def _junk_sig(doc: dict) -> None:
    doc["signatures"][0]["sig"] = doc["signatures"][0]["sig"][:-4] + "!!=="


def _truncated_sig(doc: dict) -> None:
    sig = base64.b64decode(doc["signatures"][0]["sig"])
    doc["signatures"][0]["sig"] = b64encode(sig[:63])


def _extra_field(doc: dict) -> None:
    doc["unsigned_note"] = "hello"


def _missing_field(doc: dict) -> None:
    del doc["payloadType"]


def _two_signatures(doc: dict) -> None:
    doc["signatures"] = doc["signatures"] * 2


def _no_signatures(doc: dict) -> None:
    doc["signatures"] = []


def _sig_extra_field(doc: dict) -> None:
    doc["signatures"][0]["alg"] = "none"


def _signed_by_b(doc: dict) -> None:
    payload = base64.b64decode(doc["payload"])
    doc.clear()
    doc.update(envelope.sign_envelope(payload, schema.REPORT_TYPE, KEY_B))


def _non_ascii_payload_b64(doc: dict) -> None:
    doc["payload"] = "äöü" + doc["payload"]


TAMPERED = [
    ("payload bit flip", _flip_payload, errors.BadSignatureError, "bad_signature"),
    ("payloadType swapped", _swap_type, errors.BadSignatureError, "bad_signature"),
    ("keyid of an untrusted key", _other_keyid, errors.UnknownKeyError, "unknown_key"),
    ("signed by an untrusted key", _signed_by_b, errors.UnknownKeyError, "unknown_key"),
    ("junk in sig base64", _junk_sig, errors.MalformedError, "bad_base64"),
    ("non-ASCII payload base64", _non_ascii_payload_b64, errors.MalformedError, "bad_base64"),
    ("truncated signature", _truncated_sig, errors.MalformedError, "bad_signature_length"),
    ("extra envelope field", _extra_field, errors.MalformedError, "bad_envelope"),
    ("missing envelope field", _missing_field, errors.MalformedError, "bad_envelope"),
    ("two signatures", _two_signatures, errors.MalformedError, "bad_envelope"),
    ("no signature", _no_signatures, errors.MalformedError, "bad_envelope"),
    ("extra signature field", _sig_extra_field, errors.MalformedError, "bad_envelope"),
]


@pytest.mark.parametrize(("label", "tamper", "exc", "reason"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_tampered_vector_is_refused_for_the_right_reason(label, tamper, exc, reason) -> None:
    doc = _doc()
    tamper(doc)
    with pytest.raises(exc) as info:
        envelope.verify(_raw(doc), TRUSTED, ALLOWED)
    assert info.value.reason == reason, label


def test_type_not_allowed_here_is_refused_after_the_signature() -> None:
    with pytest.raises(errors.UnsupportedError) as info:
        envelope.verify(_vector("config")["envelope"].encode(), TRUSTED, {schema.REPORT_TYPE})
    assert info.value.reason == "unsupported_type"


def test_envelope_over_the_cap_is_refused_before_parsing() -> None:
    raw = _vector("report")["envelope"].encode()
    with pytest.raises(errors.TooLargeError):
        envelope.verify(raw, TRUSTED, ALLOWED, max_bytes=len(raw) - 1)
    assert envelope.verify(raw, TRUSTED, ALLOWED, max_bytes=len(raw)).payload


@pytest.mark.parametrize(
    "raw",
    [
        b'{"payloadType":"a","payloadType":"b","payload":"","signatures":[]}',
        b'{"payloadType":NaN,"payload":"","signatures":[]}',
        b"[" * 5000 + b"]" * 5000,
        b"\xff\xfe not utf-8",
        b"not json",
        b"[]",
    ],
    ids=["duplicate keys", "NaN", "deep nesting", "bad utf-8", "not json", "array"],
)
def test_malformed_json_envelope_is_a_malformed_error(raw: bytes) -> None:
    with pytest.raises(errors.MalformedError):
        envelope.verify(raw, TRUSTED, ALLOWED)


def test_both_base64_alphabets_and_missing_padding_are_accepted() -> None:
    key = generate_private_key()
    keys = {keyid(key): key.public_key()}
    # Payload bytes chosen so that standard base64 contains '+' and '/'.
    payload = bytes([0xFB, 0xFF, 0xBF]) * 7 + b"x"
    doc = envelope.sign_envelope(payload, schema.REPORT_TYPE, key)
    assert "+" in doc["payload"] or "/" in doc["payload"]
    url = dict(doc)
    url["payload"] = doc["payload"].replace("+", "-").replace("/", "_").rstrip("=")
    url["signatures"] = [
        {"keyid": doc["signatures"][0]["keyid"], "sig": doc["signatures"][0]["sig"].replace("+", "-").replace("/", "_")}
    ]
    assert envelope.verify(_raw(url), keys, ALLOWED).payload == payload


def test_key_lookup_may_be_a_callable_that_raises_revoked() -> None:
    def lookup(kid: str):
        raise errors.RevokedKeyError(f"key {kid[:8]} revoked")

    with pytest.raises(errors.RevokedKeyError):
        envelope.verify(_vector("report")["envelope"].encode(), lookup, ALLOWED)


KEY_P = generate_private_key()
KEYS_P = {keyid(KEY_P): KEY_P.public_key()}


@settings(max_examples=60, deadline=None)
@given(payload=st.binary(max_size=512))
def test_every_payload_round_trips(payload: bytes) -> None:
    raw = envelope.sign(payload, schema.REPORT_TYPE, KEY_P)
    verified = envelope.verify(raw, KEYS_P, ALLOWED)
    assert verified.payload == payload


@settings(max_examples=150, deadline=None)
@given(payload=st.binary(min_size=1, max_size=256), data=st.data())
def test_flipping_any_byte_of_payload_type_or_signature_is_refused(payload: bytes, data: st.DataObject) -> None:
    doc = envelope.sign_envelope(payload, schema.REPORT_TYPE, KEY_P)
    part = data.draw(st.sampled_from(["payload", "payloadType", "sig"]))
    if part == "payload":
        raw = bytearray(payload)
    elif part == "payloadType":
        raw = bytearray(doc["payloadType"].encode())
    else:
        raw = bytearray(base64.b64decode(doc["signatures"][0]["sig"]))
    index = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    raw[index] ^= 1 << bit
    if part == "payload":
        doc["payload"] = b64encode(bytes(raw))
    elif part == "payloadType":
        doc["payloadType"] = raw.decode("utf-8", errors="replace")
    else:
        doc["signatures"][0]["sig"] = b64encode(bytes(raw))
    with pytest.raises(errors.ProtocolError):
        envelope.verify(_raw(doc), KEYS_P, ALLOWED)


@settings(max_examples=150, deadline=None)
@given(payload=st.binary(min_size=1, max_size=64), data=st.data())
def test_changing_any_character_of_the_encoded_envelope_fields_is_refused(payload: bytes, data: st.DataObject) -> None:
    # Also catches base64 malleability: a changed padding bit must not decode to the same bytes.
    doc = envelope.sign_envelope(payload, schema.REPORT_TYPE, KEY_P)
    field = data.draw(st.sampled_from(["payload", "sig"]))
    text = doc["payload"] if field == "payload" else doc["signatures"][0]["sig"]
    index = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="))
    if replacement == text[index]:
        return
    changed = text[:index] + replacement + text[index + 1 :]
    if field == "payload":
        doc["payload"] = changed
    else:
        doc["signatures"][0]["sig"] = changed
    with pytest.raises(errors.ProtocolError):
        envelope.verify(_raw(doc), KEYS_P, ALLOWED)


def test_non_canonical_signature_s_plus_l_is_refused() -> None:
    # Ed25519 signature malleability: S and S+L satisfy the same equation; only S < L is valid.
    group_order = 2**252 + 27742317777372353535851937790883648493
    doc = envelope.sign_envelope(b'{"seq":1}', schema.REPORT_TYPE, KEY_P)
    sig = base64.b64decode(doc["signatures"][0]["sig"])
    s_value = int.from_bytes(sig[32:], "little") + group_order
    assert s_value < 2**256
    doc["signatures"][0]["sig"] = b64encode(sig[:32] + s_value.to_bytes(32, "little"))
    with pytest.raises(errors.BadSignatureError):
        envelope.verify(_raw(doc), KEYS_P, ALLOWED)
