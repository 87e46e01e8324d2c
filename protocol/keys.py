"""Ed25519 keys: generation, PEM and raw encodings, key ids, and the small-order check.

pyca/cryptography loads any 32 bytes that decode to a curve point, including the
identity, and with the identity key the signature (R=identity, S=0) verifies for every
message. So every public key that comes from outside goes through ``load_public_key``,
which refuses the points of small order (and non-canonical encodings of them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .encoding import b64decode_strict, b64encode
from .errors import MalformedError, WeakKeyError

__all__ = [
    "ENROLL_PIN_CHARS",
    "enroll_pin",
    "generate_private_key",
    "pin_matches",
    "split_enroll_code",
    "has_small_order",
    "keyid",
    "load_public_key",
    "load_public_key_b64",
    "stored_public_key",
    "private_key_from_pem",
    "private_key_to_pem",
    "public_key_b64",
    "public_key_raw",
]

_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key from the OS's CSPRNG."""
    return Ed25519PrivateKey.generate()


# An unencrypted Ed25519 private key in PKCS#8 (RFC 8410 §7) is these 16 DER bytes, then the
# 32-byte seed: what cryptography and `openssl genpkey -algorithm ed25519` write. Reading and
# writing that one form here spares a running agent cryptography's serialization package
# (its PEM, SSH and cipher modules: about 2 MiB RSS, bench/bench_footprint.py).
_PKCS8_ED25519_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN = b"-----BEGIN PRIVATE KEY-----"
_PEM_END = b"-----END PRIVATE KEY-----"


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM (RFC 8410 §7, RFC 7468 §10), unencrypted: the file that holds it is mode 0600.

    Byte for byte what cryptography's ``private_bytes(PEM, PKCS8, NoEncryption())`` writes.
    """
    der = _PKCS8_ED25519_PREFIX + key.private_bytes_raw()
    return _PEM_BEGIN + b"\n" + base64.b64encode(der) + b"\n" + _PEM_END + b"\n"


def private_key_from_pem(data: bytes) -> Ed25519PrivateKey:
    """Load a PEM private key; anything but an unencrypted Ed25519 key is refused (MalformedError).

    The RFC 8410 form (a 48-byte PKCS#8 body) is read here; any other PEM goes to
    cryptography's full parser, which also reads the form with the public key attached.
    """
    lines = data.strip().splitlines()
    if len(lines) >= 3 and lines[0].strip() == _PEM_BEGIN and lines[-1].strip() == _PEM_END:
        try:
            der = base64.b64decode(b"".join(line.strip() for line in lines[1:-1]), validate=True)
        except binascii.Error:
            der = b""
        if len(der) == len(_PKCS8_ED25519_PREFIX) + 32 and der.startswith(_PKCS8_ED25519_PREFIX):
            return Ed25519PrivateKey.from_private_bytes(der[len(_PKCS8_ED25519_PREFIX) :])
    return _private_key_from_other_pem(data)


def _private_key_from_other_pem(data: bytes) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization  # rare: see _PKCS8_ED25519_PREFIX

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise MalformedError(f"not a readable PEM private key: {exc}", reason="bad_key_file") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise MalformedError("PEM key is not an Ed25519 key", reason="bad_key_file")
    return key


def public_key_raw(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes_raw()


def public_key_b64(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The raw public key in standard base64, as enrollment sends it."""
    return b64encode(public_key_raw(key))


def keyid(key: Ed25519PublicKey | Ed25519PrivateKey | bytes) -> str:
    """Hex SHA-256 of the raw 32-byte public key."""
    raw = key if isinstance(key, bytes) else public_key_raw(key)
    return hashlib.sha256(raw).hexdigest()


# The enrollment pin: central's two public keys, hashed into the one-time code, as kubeadm's
# --discovery-token-ca-cert-hash pins the CA. Whoever sits between agent and central can
# swap the keys in the enrollment answer, but not make them hash to the pin the operator
# carried over by hand. 128 bits: finding other keys with the same pin is a second preimage.
_PIN_DOMAIN = b"schulwart enroll pin v1\x00"
_PIN_BYTES = 16
ENROLL_PIN_CHARS = 22  # base64url of 16 bytes, unpadded
_CODE_SEPARATOR = "."  # not in the base64url alphabet of the code's secret part


def enroll_pin(config_public_key: bytes, token_public_key: bytes) -> str:
    """The pin of central's config-signing and token-issuer keys (raw 32 bytes each): 22 base64url characters."""
    if len(config_public_key) != 32 or len(token_public_key) != 32:
        raise ValueError("enroll_pin takes two raw 32-byte public keys")
    digest = hashlib.sha256(_PIN_DOMAIN + config_public_key + token_public_key).digest()[:_PIN_BYTES]
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def split_enroll_code(code: str) -> tuple[str, str | None]:
    """``SECRET.PIN`` into (secret, pin); a code without a pin gives (code, None). Surrounding blanks are dropped."""
    secret, sep, pin = code.strip().rpartition(_CODE_SEPARATOR)
    if not sep:
        return code.strip(), None
    return secret, pin


def pin_matches(pin: str, config_public_key: bytes, token_public_key: bytes) -> bool:
    """Whether ``pin`` is the pin of these two raw keys (compared in constant time)."""
    expected = enroll_pin(config_public_key, token_public_key)
    return hmac.compare_digest(pin.encode("utf-8", "replace"), expected.encode("ascii"))


def _decode_point(raw: bytes) -> tuple[int, int] | None:
    """RFC 8032 §5.1.3 point decoding; None when the bytes are no canonical point."""
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    sign = raw[31] >> 7
    if y >= _P:
        return None
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    vxx = (v * x * x) % _P
    if vxx == u:
        pass
    elif vxx == (-u) % _P:
        x = (x * _SQRT_M1) % _P
    else:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y


def _double(point: tuple[int, int]) -> tuple[int, int]:
    x, y = point
    t = (_D * x * x * y * y) % _P
    x3 = (2 * x * y * pow((1 + t) % _P, _P - 2, _P)) % _P
    y3 = ((y * y + x * x) * pow((1 - t) % _P, _P - 2, _P)) % _P
    return x3, y3


def has_small_order(raw: bytes) -> bool:
    """True when 8·P is the identity, or the bytes are no canonical point at all."""
    point = _decode_point(raw)
    if point is None:
        return True
    for _ in range(3):
        point = _double(point)
    return point == (0, 1)


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    """A public key from its raw 32 bytes; weak or malformed keys are refused."""
    if len(raw) != 32:
        raise WeakKeyError(f"public key must be 32 bytes, got {len(raw)}", reason="bad_key_length")
    if has_small_order(raw):
        raise WeakKeyError("public key is of small order or not a canonical curve point")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:  # pragma: no cover - cryptography accepts every canonical point
        raise WeakKeyError(f"public key refused: {exc}") from None


def stored_public_key(raw: bytes) -> Ed25519PublicKey:
    """A public key read back from our own storage, where only keys ``load_public_key`` accepted are written.

    The small-order check is not run again: it is pure Python (about a millisecond), and a
    central verifying thousands of agents' reports and signed requests a minute would spend a
    core's tenth on repeating it. WeakKeyError when ``raw`` is not 32 bytes.
    """
    if len(raw) != 32:
        raise WeakKeyError(f"public key must be 32 bytes, got {len(raw)}", reason="bad_key_length")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_public_key_b64(text: str) -> Ed25519PublicKey:
    """A public key from base64 of its raw 32 bytes."""
    return load_public_key(b64decode_strict(text, field="public_key"))
