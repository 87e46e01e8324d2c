"""The DSSE envelope (Dead Simple Signing Envelope) with Ed25519.

The signature covers ``PAE(payloadType, payload)`` over the exact payload bytes; the
verifier checks it over the bytes it received before anything parses them, so no
canonical-JSON step exists anywhere. ``keyid`` only selects the key to try.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .encoding import b64decode_strict, b64encode, dumps, loads_strict
from .errors import BadSignatureError, MalformedError, TooLargeError, UnknownKeyError, UnsupportedError
from .keys import keyid as key_id

__all__ = [
    "DEFAULT_MAX_ENVELOPE_BYTES",
    "KeyLookup",
    "Verified",
    "pae",
    "sign",
    "sign_envelope",
    "verify",
]

DEFAULT_MAX_ENVELOPE_BYTES = 1024 * 1024
SIGNATURE_BYTES = 64
_FIELDS = frozenset({"payloadType", "payload", "signatures"})
_SIG_FIELDS = frozenset({"keyid", "sig"})

KeyLookup = Mapping[str, Ed25519PublicKey] | Callable[[str], Ed25519PublicKey | None]


@dataclass(frozen=True, slots=True)
class Verified:
    """What a verified envelope yields: its type, its payload bytes and the signer's keyid."""

    payload_type: str
    payload: bytes
    keyid: str


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: ``DSSEv1 SP LEN(type) SP type SP LEN(body) SP body``."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def sign_envelope(payload: bytes, payload_type: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The envelope as a JSON-ready dict."""
    signature = key.sign(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": b64encode(payload),
        "signatures": [{"keyid": key_id(key), "sig": b64encode(signature)}],
    }


def sign(payload: bytes, payload_type: str, key: Ed25519PrivateKey) -> bytes:
    """The envelope as the compact JSON bytes we send."""
    return dumps(sign_envelope(payload, payload_type, key))


def _lookup(keys: KeyLookup, kid: str) -> Ed25519PublicKey:
    found = keys.get(kid) if isinstance(keys, Mapping) else keys(kid)
    if found is None:
        raise UnknownKeyError(f"no trusted key with keyid {kid[:16]}…")
    return found


def _parse(envelope: object, max_bytes: int) -> tuple[str, str, str, str]:
    if isinstance(envelope, Mapping):
        doc: Any = envelope
    elif not isinstance(envelope, (bytes, bytearray, str)):
        # A caller that parsed first may hand over a list or a number: refuse, never TypeError.
        raise MalformedError("envelope is not a JSON object", reason="bad_envelope")
    else:
        if len(envelope) > max_bytes:
            raise TooLargeError(f"envelope of {len(envelope)} bytes is over the cap of {max_bytes}")
        doc = loads_strict(envelope if isinstance(envelope, str) else bytes(envelope), max_depth=4)
    if not isinstance(doc, dict):
        raise MalformedError("envelope is not a JSON object", reason="bad_envelope")
    if set(doc) != _FIELDS:
        missing = sorted(_FIELDS - set(doc))
        extra = sorted(str(k)[:40] for k in set(doc) - _FIELDS)
        raise MalformedError(f"envelope fields wrong (missing {missing}, extra {extra})", reason="bad_envelope")
    payload_type, payload_b64, signatures = doc["payloadType"], doc["payload"], doc["signatures"]
    if not isinstance(payload_type, str) or not isinstance(payload_b64, str):
        raise MalformedError("payloadType and payload must be strings", reason="bad_envelope")
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise MalformedError("envelope must carry exactly one signature", reason="bad_envelope")
    entry = signatures[0]
    if not isinstance(entry, dict) or set(entry) != _SIG_FIELDS:
        raise MalformedError("signature entry must have exactly keyid and sig", reason="bad_envelope")
    kid, sig_b64 = entry["keyid"], entry["sig"]
    if not isinstance(kid, str) or not isinstance(sig_b64, str) or len(kid) > 128:
        raise MalformedError("keyid and sig must be short strings", reason="bad_envelope")
    return payload_type, payload_b64, kid, sig_b64


def verify(
    envelope: bytes | Mapping[str, Any] | object,
    keys: KeyLookup,
    allowed_types: Collection[str],
    *,
    max_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES,
) -> Verified:
    """Verify an envelope and return its payload bytes, unparsed.

    Order: size cap, strict JSON and base64, the key by keyid, the signature over
    PAE, then the payloadType. Each refusal raises one ProtocolError subclass.
    """
    payload_type, payload_b64, kid, sig_b64 = _parse(envelope, max_bytes)
    payload = b64decode_strict(payload_b64, field="payload")
    signature = b64decode_strict(sig_b64, field="sig")
    if len(signature) != SIGNATURE_BYTES:
        raise MalformedError(
            f"signature must be {SIGNATURE_BYTES} bytes, got {len(signature)}", reason="bad_signature_length"
        )
    public_key = _lookup(keys, kid)
    try:
        public_key.verify(signature, pae(payload_type, payload))
    except InvalidSignature:
        raise BadSignatureError("signature does not verify") from None
    if payload_type not in allowed_types:
        raise UnsupportedError(f"payloadType {payload_type[:80]!r} is not accepted here", reason="unsupported_type")
    return Verified(payload_type=payload_type, payload=payload, keyid=kid)
