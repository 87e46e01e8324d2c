"""Signed requests (protocol.httpsig): the RFC 9421 profile, checked byte for byte and against tampering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import BadSignatureError, MalformedError
from protocol.httpsig import parse_request_signature, sign_request, signature_base, verify_request
from protocol.keys import generate_private_key, keyid

KEY = generate_private_key()
PATH = "/v1/agents/ag-1/config"
T = 1_732_960_000


def test_the_signature_base_is_rfc_9421_section_2_5() -> None:
    kid = "ab" * 32
    assert signature_base("get", PATH, T, kid) == (
        b'"@method": GET\n'
        b'"@path": /v1/agents/ag-1/config\n'
        b'"@signature-params": ("@method" "@path");created=1732960000;keyid="' + kid.encode() + b'";alg="ed25519"'
    )


def test_a_fresh_signature_verifies_within_the_window_only() -> None:
    headers = sign_request("GET", PATH, T, KEY)
    parsed = parse_request_signature(headers)
    assert parsed.keyid == keyid(KEY) and parsed.created == T
    for now in (T - 300, T, T + 300):
        verify_request("GET", PATH, parsed, KEY.public_key(), now)
    for now in (T - 301, T + 301, T + 86_400):
        with pytest.raises(BadSignatureError) as caught:
            verify_request("GET", PATH, parsed, KEY.public_key(), now)
        assert caught.value.reason == "stale_signature"


@pytest.mark.parametrize(("method", "path"), [("POST", PATH), ("GET", "/v1/agents/ag-2/config"), ("GET", PATH + "/")])
def test_another_method_or_path_does_not_verify(method: str, path: str) -> None:
    parsed = parse_request_signature(sign_request("GET", PATH, T, KEY))
    with pytest.raises(BadSignatureError) as caught:
        verify_request(method, path, parsed, KEY.public_key(), T)
    assert caught.value.reason == "bad_signature"


def test_another_key_or_a_moved_time_does_not_verify() -> None:
    other = generate_private_key()
    headers = sign_request("GET", PATH, T, KEY)
    with pytest.raises(BadSignatureError):  # the keyid names KEY, the key offered is another
        verify_request("GET", PATH, parse_request_signature(headers), other.public_key(), T)
    moved = dict(headers, **{"Signature-Input": headers["Signature-Input"].replace(f"created={T}", f"created={T + 1}")})
    with pytest.raises(BadSignatureError):
        verify_request("GET", PATH, parse_request_signature(moved), KEY.public_key(), T)


def test_missing_headers_are_an_unsigned_request() -> None:
    for headers in ({}, {"Signature": "sw=:AAAA:"}, {"Signature-Input": "sw=()"}):
        with pytest.raises(BadSignatureError) as caught:
            parse_request_signature(headers)
        assert caught.value.reason == "unsigned_request"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h: {**h, "Signature-Input": h["Signature-Input"].replace('"@path"', '"@authority"')},
        lambda h: {**h, "Signature-Input": h["Signature-Input"].replace("sw=", "sig1=")},
        lambda h: {**h, "Signature-Input": h["Signature-Input"].replace('alg="ed25519"', 'alg="hmac-sha256"')},
        lambda h: {**h, "Signature-Input": h["Signature-Input"] + ";nonce=\"x\""},
        lambda h: {**h, "Signature": h["Signature"].replace("sw=:", "sw=")},
        lambda h: {**h, "Signature": "sw=:" + "A" * 600 + ":"},
        lambda h: {**h, "Signature": "sw=:AAAA:"},  # three bytes, not an Ed25519 signature
    ],
)
def test_headers_outside_the_profile_are_malformed(mutate: object) -> None:
    headers = mutate(sign_request("GET", PATH, T, KEY))  # type: ignore[operator]
    with pytest.raises(MalformedError):
        parse_request_signature(headers)


@given(st.text(max_size=300), st.text(max_size=300))
def test_any_header_text_is_refused_or_parsed_never_crashes(signature_input: str, signature: str) -> None:
    try:
        parse_request_signature({"Signature-Input": signature_input, "Signature": signature})
    except (MalformedError, BadSignatureError):
        pass


def test_the_documented_header_patterns_match_what_is_signed_and_what_is_read() -> None:
    """The OpenAPI document's patterns: every signed request matches them, and whatever matches them parses."""
    import base64
    import re

    from protocol.httpsig import SIGNATURE_INPUT_PATTERN, SIGNATURE_PATTERN

    for created in range(1732960000, 1732960050):
        headers = sign_request("GET", "/v1/agents/a/config", created, generate_private_key())
        assert re.fullmatch(SIGNATURE_PATTERN, headers["Signature"])
        assert re.fullmatch(SIGNATURE_INPUT_PATTERN, headers["Signature-Input"])
    for last in "AQgw":  # the only last characters whose low 4 bits are zero: canonical base64 of 64 bytes
        signature = "sw=:" + "/" * 85 + last + "==:"
        assert re.fullmatch(SIGNATURE_PATTERN, signature)
        headers = {"Signature-Input": f'sw=("@method" "@path");created=1;keyid="{"0" * 64}";alg="ed25519"',
                   "Signature": signature}  # fmt: skip
        assert parse_request_signature(headers).signature == base64.b64decode("/" * 85 + last + "==")
