"""Ed25519 keys: PEM and raw encodings, key ids, and refusing small-order public keys."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol import envelope, errors, schema
from protocol.keys import (
    generate_private_key,
    has_small_order,
    keyid,
    load_public_key,
    load_public_key_b64,
    private_key_from_pem,
    private_key_to_pem,
    public_key_b64,
    public_key_raw,
    stored_public_key,
)

P = 2**255 - 19
D = (-121665 * pow(121666, P - 2, P)) % P
IDENTITY = bytes([1]) + bytes(31)


def _sqrt(a: int) -> int | None:
    """Square root mod p (p ≡ 5 mod 8), derived independently of protocol.keys."""
    a %= P
    root = pow(a, (P + 3) // 8, P)
    if root * root % P == a:
        return root
    root = root * pow(2, (P - 1) // 4, P) % P
    return root if root * root % P == a else None


def _encode_y(y: int, sign: int) -> bytes:
    raw = bytearray(y.to_bytes(32, "little"))
    raw[31] |= sign << 7
    return bytes(raw)


def _torsion_y_values() -> set[int]:
    """y of all points of order 1, 2, 4 and 8 on edwards25519, from the curve equation.

    Order 1/2: x = 0, y = ±1. Order 4: y = 0. Order 8: 2P has y = 0, so y² = -x² and
    d·x⁴ - 2x² - 1 = 0, i.e. x² = (1 ± sqrt(1 + d)) / d.
    """
    ys = {1, P - 1, 0}
    s = _sqrt(1 + D)
    assert s is not None
    for x2 in ((1 + s) * pow(D, P - 2, P) % P, (1 - s) * pow(D, P - 2, P) % P):
        if _sqrt(x2) is not None:
            ys.add(_sqrt(-x2 % P))  # y² = -x²
            ys.add(P - _sqrt(-x2 % P))
    return ys


def test_torsion_points_match_the_published_blocklist() -> None:
    # libsodium's ed25519 blocklist names these two order-8 y encodings.
    published = {
        bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
        bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    }
    derived = {_encode_y(y, 0) for y in _torsion_y_values()}
    assert published <= derived
    assert len(_torsion_y_values()) == 5


def _small_order_encodings() -> list[bytes]:
    encodings = []
    for y in _torsion_y_values():
        for sign in (0, 1):
            encodings.append(_encode_y(y, sign))
    # Non-canonical encodings of y = 0 and y = 1 (y + p still fits in 255 bits).
    encodings += [_encode_y(P, 0), _encode_y(P + 1, 0), _encode_y(P, 1), _encode_y(P + 1, 1)]
    return encodings


@pytest.mark.parametrize("raw", _small_order_encodings(), ids=lambda b: b.hex()[:12] + "…" + b.hex()[-2:])
def test_every_small_order_encoding_is_refused(raw: bytes) -> None:
    assert has_small_order(raw)
    with pytest.raises(errors.WeakKeyError):
        load_public_key(raw)


def test_a_forged_envelope_under_the_identity_key_is_refused_by_our_verification() -> None:
    """With the identity as public key, (R=identity, S=0) verifies any message in pyca/cryptography.

    Our key loader must refuse that key, so an envelope forged that way never verifies: the
    lookup loads keys as central and the agent do (``load_public_key_b64``).
    """
    report = schema.REPORT_TYPE
    forged_sig = IDENTITY + bytes(32)
    body = b'{"v": 1, "seq": 1}'
    Ed25519PublicKey.from_public_bytes(IDENTITY).verify(forged_sig, envelope.pae(schema.REPORT_TYPE, body))
    kid = hashlib.sha256(IDENTITY).hexdigest()
    forged = {
        "payloadType": schema.REPORT_TYPE,
        "payload": base64.b64encode(body).decode(),
        "signatures": [{"keyid": kid, "sig": base64.b64encode(forged_sig).decode()}],
    }
    with pytest.raises(errors.WeakKeyError):
        envelope.verify(forged, lambda _kid: load_public_key_b64(base64.b64encode(IDENTITY).decode()), [report])


def test_random_keys_are_not_flagged() -> None:
    for _ in range(300):
        raw = public_key_raw(generate_private_key())
        assert not has_small_order(raw)
        assert public_key_raw(load_public_key(raw)) == raw


@pytest.mark.parametrize("raw", [b"", bytes(31), bytes(33)])
@pytest.mark.parametrize("load", [load_public_key, stored_public_key])
def test_wrong_length_is_refused(raw: bytes, load: Any) -> None:
    with pytest.raises(errors.WeakKeyError) as info:
        load(raw)
    assert info.value.reason == "bad_key_length"


def test_a_stored_key_reads_back_as_the_key_that_was_stored() -> None:
    for _ in range(20):
        raw = public_key_raw(generate_private_key())
        assert public_key_raw(stored_public_key(raw)) == public_key_raw(load_public_key(raw)) == raw


def test_not_a_curve_point_is_refused() -> None:
    # y = 2 gives x² = 3 / (4d + 1), which is not a square mod p.
    raw = _encode_y(2, 0)
    assert has_small_order(raw)
    with pytest.raises(errors.WeakKeyError):
        load_public_key(raw)


def test_pem_round_trip_and_keyid() -> None:
    key = generate_private_key()
    pem = private_key_to_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    again = private_key_from_pem(pem)
    assert public_key_raw(again) == public_key_raw(key)
    assert keyid(key) == hashlib.sha256(public_key_raw(key)).hexdigest()
    assert keyid(key) == keyid(key.public_key()) == keyid(public_key_raw(key))
    assert public_key_raw(load_public_key_b64(public_key_b64(key))) == public_key_raw(key)


@pytest.mark.parametrize(
    "pem",
    [
        b"garbage",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\n!!not base64!!\n-----END PRIVATE KEY-----\n",
    ],
)
def test_unreadable_pem_is_a_malformed_error(pem: bytes) -> None:
    with pytest.raises(errors.MalformedError) as info:
        private_key_from_pem(pem)
    assert info.value.reason == "bad_key_file"


def test_pem_of_another_key_type_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(errors.MalformedError):
        private_key_from_pem(pem)


def _cryptography_pem(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_pem_is_what_cryptography_writes_and_reads_back_as_the_same_key() -> None:
    from cryptography.hazmat.primitives import serialization

    for _ in range(50):  # every seed, including ones whose base64 ends in '+', '/' or a padding-free run
        key = generate_private_key()
        pem = private_key_to_pem(key)
        assert pem == _cryptography_pem(key)
        assert private_key_from_pem(pem).private_bytes_raw() == key.private_bytes_raw()
        loaded = serialization.load_pem_private_key(pem, password=None)
        assert loaded.private_bytes_raw() == key.private_bytes_raw()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "reformat",
    [
        lambda pem: pem.replace(b"\n", b"\r\n"),  # written on Windows
        lambda pem: pem.rstrip(b"\n"),  # no final newline
        lambda pem: b"\n" + pem + b"\n\n",  # blank lines around it
        lambda pem: pem.replace(b"\n-----END", b"  \n-----END"),  # trailing blanks in the body
    ],
    ids=["crlf", "no-final-newline", "blank-lines", "trailing-blanks"],
)
def test_pem_with_other_line_endings_and_blanks_reads_as_the_same_key(reformat: Any) -> None:
    key = generate_private_key()
    assert private_key_from_pem(reformat(private_key_to_pem(key))).private_bytes_raw() == key.private_bytes_raw()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_pem_that_openssl_writes_is_read(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(path)], check=True, timeout=30)
    raw = subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"],
                         check=True, timeout=30, capture_output=True).stdout[-32:]  # fmt: skip
    assert public_key_raw(private_key_from_pem(path.read_bytes())) == raw


def test_pem_with_explanatory_text_before_it_is_read() -> None:
    """RFC 7468 §2 lets text precede the PEM block (openssl's 'Bag Attributes', an operator's note)."""
    key = generate_private_key()
    pem = b"# the school server's agent key\n" + private_key_to_pem(key)
    assert private_key_from_pem(pem).private_bytes_raw() == key.private_bytes_raw()


def test_pem_of_an_x25519_key_is_refused() -> None:
    """Same length and layout as an Ed25519 key, another algorithm identifier (RFC 8410 §3: 1.3.101.110)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    pem = _cryptography_pem(X25519PrivateKey.generate())
    assert len(pem) == len(private_key_to_pem(generate_private_key()))
    with pytest.raises(errors.MalformedError):
        private_key_from_pem(pem)


def test_encrypted_pem_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization

    pem = generate_private_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    with pytest.raises(errors.MalformedError):
        private_key_from_pem(pem)
