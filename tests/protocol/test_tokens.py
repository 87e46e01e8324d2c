"""PASETO v4.public technician tokens: published vectors, pyseto cross-check, every refusal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import errors
from protocol.encoding import b64url_decode_nopad, b64url_encode_nopad, dumps
from protocol.keys import generate_private_key
from protocol.tokens import (
    issue_technician_token,
    paseto_sign,
    paseto_verify,
    scope_covers,
    validate_scope,
    verify_technician_token,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "paseto_v4_public.json").read_text("utf-8"))["tests"]
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
ISSUER = generate_private_key()


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_published_v4_public_vectors_verify(vector: dict) -> None:
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(vector["public-key"]))
    message, footer = paseto_verify(vector["token"], public, vector["implicit-assertion"].encode())
    assert json.loads(message) == vector["payload"]
    assert footer.decode() == vector["footer"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_signing_reproduces_published_tokens(vector: dict) -> None:
    secret = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["secret-key"])[:32])
    message, _ = paseto_verify(
        vector["token"],
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(vector["public-key"])),
        vector["implicit-assertion"].encode(),
    )
    token = paseto_sign(secret, message, vector["footer"].encode(), vector["implicit-assertion"].encode())
    assert token == vector["token"]


def test_vector_with_wrong_implicit_assertion_fails() -> None:
    vector = VECTORS[2]
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(vector["public-key"]))
    with pytest.raises(errors.TokenError) as info:
        paseto_verify(vector["token"], public, b'{"test-vector":"another"}')
    assert info.value.reason == "token_signature"


def test_pyseto_cross_check_both_directions() -> None:
    pyseto = pytest.importorskip("pyseto")
    from cryptography.hazmat.primitives import serialization

    pem_priv = ISSUER.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem_pub = ISSUER.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # pyseto checks nbf/exp against the real clock with no leeway: a token issued this very
    # second must already be valid for it (it truncates its clock to whole seconds).
    ours = issue_technician_token(ISSUER, "A. Weber", "school:gs-nord", datetime.now(UTC))
    decoded = pyseto.decode(pyseto.Key.new(4, "public", pem_pub), ours, deserializer=json)
    assert decoded.payload["sub"] == "A. Weber"
    theirs = pyseto.encode(pyseto.Key.new(4, "public", pem_priv), b'{"sub":"x"}').decode()
    assert paseto_verify(theirs, ISSUER.public_key())[0] == b'{"sub":"x"}'


def _verify(token: str, *, school: str = "gs-nord", carrier: str | None = "Kreis A", now: datetime = NOW, **kw):
    return verify_technician_token(token, ISSUER.public_key(), school_id=school, carrier=carrier, now=now, **kw)


def _custom(claims: dict, key: Ed25519PrivateKey = ISSUER) -> str:
    return paseto_sign(key, dumps(claims))


def _claims(**over: object) -> dict:
    base = {
        "sub": "A. Weber",
        "scope": "school:gs-nord",
        "iat": "2026-11-21T10:00:00Z",
        "nbf": "2026-11-21T10:00:00Z",
        "exp": "2026-11-21T18:00:00Z",
        "jti": "j1",
    }
    base.update(over)
    return base


def test_a_valid_token_yields_its_claims() -> None:
    claims = _verify(issue_technician_token(ISSUER, "A. Weber", "school:gs-nord", NOW, jti="abc"))
    assert (claims.sub, claims.scope, claims.jti) == ("A. Weber", "school:gs-nord", "abc")
    assert claims.exp - claims.iat == timedelta(hours=8)


@pytest.mark.parametrize(
    ("scope", "covered"),
    [
        ("all", True),
        ("school:gs-nord", True),
        ("carrier:Kreis A", True),
        ("school:gs-sued", False),
        ("carrier:Kreis B", False),
    ],
)
def test_scope(scope: str, covered: bool) -> None:
    token = issue_technician_token(ISSUER, "A. Weber", scope, NOW)
    if covered:
        assert _verify(token).scope == scope
    else:
        with pytest.raises(errors.ScopeError):
            _verify(token)


def test_carrier_scope_needs_the_agent_to_know_its_carrier() -> None:
    assert not scope_covers("carrier:Kreis A", "gs-nord", None)


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (NOW - timedelta(minutes=5, seconds=1), "token_not_yet_valid"),
        (NOW + timedelta(hours=8, minutes=5), "token_expired"),
        (NOW + timedelta(days=3), "token_expired"),
    ],
)
def test_time_window_with_five_minutes_of_skew(now: datetime, reason: str) -> None:
    token = issue_technician_token(ISSUER, "A. Weber", "school:gs-nord", NOW)
    with pytest.raises(errors.TokenError) as info:
        _verify(token, now=now)
    assert info.value.reason == reason


def test_just_inside_the_skew_is_accepted() -> None:
    token = issue_technician_token(ISSUER, "A. Weber", "school:gs-nord", NOW)
    assert _verify(token, now=NOW - timedelta(minutes=4, seconds=59))
    assert _verify(token, now=NOW + timedelta(hours=8, minutes=4, seconds=59))


def test_winding_the_clock_back_does_not_revive_an_expired_token() -> None:
    token = issue_technician_token(ISSUER, "A. Weber", "school:gs-nord", NOW)
    floor = NOW + timedelta(hours=9)  # central-signed time the agent saw at its last sync
    with pytest.raises(errors.TokenError) as info:
        _verify(token, now=NOW + timedelta(hours=1), time_floor=floor)
    assert info.value.reason == "token_expired"
    assert _verify(token, now=NOW + timedelta(hours=1), time_floor=NOW)


def test_lifetime_over_twelve_hours_is_refused_even_if_signed() -> None:
    token = _custom(_claims(exp="2026-11-22T10:00:01Z"))
    with pytest.raises(errors.TokenError) as info:
        _verify(token)
    assert info.value.reason == "token_lifetime"
    with pytest.raises(ValueError):
        issue_technician_token(ISSUER, "A. Weber", "all", NOW, ttl=timedelta(hours=13))


def test_token_signed_by_another_key_is_refused() -> None:
    token = issue_technician_token(generate_private_key(), "A. Weber", "school:gs-nord", NOW)
    with pytest.raises(errors.TokenError) as info:
        _verify(token)
    assert info.value.reason == "token_signature"


def test_flipping_any_byte_of_the_token_body_is_refused() -> None:
    token = issue_technician_token(ISSUER, "A. Weber", "school:gs-nord", NOW)
    body = bytearray(b64url_decode_nopad(token[len("v4.public.") :]))
    for index in range(0, len(body), 7):
        flipped = bytearray(body)
        flipped[index] ^= 0x20
        with pytest.raises(errors.TokenError):
            _verify("v4.public." + b64url_encode_nopad(bytes(flipped)))


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("v4.local.AAAA", "token_header"),
        ("v3.public.AAAA", "token_header"),
        ("V4.PUBLIC.AAAA", "token_header"),
        ("v4.public.", "token_malformed"),
        ("v4.public.AAAA", "token_malformed"),
        ("v4.public.a.b.c", "token_malformed"),
        ("v4.public.!!!!", "token_malformed"),
        ("v4.public." + "A" * 5000, "token_malformed"),
    ],
)
def test_malformed_tokens(token: str, reason: str) -> None:
    with pytest.raises(errors.TokenError) as info:
        _verify(token)
    assert info.value.reason == reason


def test_central_read_api_tokens_are_not_technician_tokens() -> None:
    with pytest.raises(errors.TokenError) as info:
        _verify("sw_api_3f9c0e1a2b")
    assert info.value.reason == "token_header"


@pytest.mark.parametrize(
    "claims",
    [
        _claims(sub=""),
        _claims(scope="everything"),
        _claims(exp="tomorrow"),
        {k: v for k, v in _claims().items() if k != "jti"},
        _claims(iat=1763719200),
    ],
    ids=["empty sub", "bad scope", "bad exp", "no jti", "numeric iat"],
)
def test_bad_claims_are_refused(claims: dict) -> None:
    with pytest.raises(errors.TokenError) as info:
        _verify(_custom(claims))
    assert info.value.reason == "token_claims"


def test_claims_that_are_not_an_object_are_refused() -> None:
    with pytest.raises(errors.TokenError):
        _verify(paseto_sign(ISSUER, b"[1,2]"))
    with pytest.raises(errors.TokenError):
        _verify(paseto_sign(ISSUER, b'{"sub":"a","sub":"b"}'))


def test_validate_scope() -> None:
    assert validate_scope("carrier:Landkreis Nord") == "carrier:Landkreis Nord"
    for bad in ("", "school:", "district:x", "school:a b"):
        with pytest.raises(ValueError):
            validate_scope(bad)
