"""Signed HTTP requests: a fixed profile of HTTP Message Signatures (RFC 9421) with Ed25519.

An agent proves it holds its enrolled key when it asks central for something that is only its
own (``GET /v1/agents/{id}/config``). The request carries two headers (RFC 9421 §4)::

    Signature-Input: sw=("@method" "@path");created=1732960000;keyid="<hex keyid>";alg="ed25519"
    Signature: sw=:<base64 of the 64-byte Ed25519 signature>:

and the signature covers the signature base (RFC 9421 §2.5), lines joined by LF::

    "@method": GET
    "@path": /v1/agents/<id>/config
    "@signature-params": ("@method" "@path");created=1732960000;keyid="<hex keyid>";alg="ed25519"

Only this profile is accepted: the label ``sw``, exactly the components ``@method`` and
``@path`` in that order, then ``created`` (integer seconds since the epoch), ``keyid`` and
``alg="ed25519"``. ``keyid`` is the hex SHA-256 of the raw public key, as in envelopes.
The verifier refuses a ``created`` more than ``max_age_s`` away from its own clock, so a
captured request is useless after that window; the agent signs with its clock corrected by
the offset it read from central's ``Date`` header. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .encoding import b64decode_strict, b64encode
from .errors import BadSignatureError, MalformedError
from .keys import keyid as key_id

__all__ = [
    "DEFAULT_MAX_AGE_S",
    "SIGNATURE_HEADER",
    "SIGNATURE_INPUT_HEADER",
    "RequestSignature",
    "parse_request_signature",
    "sign_request",
    "signature_base",
    "verify_request",
]

SIGNATURE_INPUT_HEADER = "Signature-Input"
SIGNATURE_HEADER = "Signature"
DEFAULT_MAX_AGE_S = 300
_LABEL = "sw"
_MAX_HEADER = 512
_SIGNATURE_BYTES = 64  # Ed25519
_INPUT = re.compile(
    r'sw=\("@method" "@path"\);created=(?P<created>[0-9]{1,12});keyid="(?P<keyid>[0-9a-f]{64})";alg="ed25519"'
)
_SIG = re.compile(r"sw=:(?P<sig>[A-Za-z0-9+/=]{1,120}):")
# What the two headers must look like, for the OpenAPI document: the profile's parameters, and
# a 64-byte signature in canonical base64 (86 characters, the last one's low 4 bits zero, "==").
SIGNATURE_INPUT_PATTERN = _INPUT.pattern
SIGNATURE_PATTERN = r"sw=:[A-Za-z0-9+/]{85}[AQgw]==:"


@dataclass(frozen=True, slots=True)
class RequestSignature:
    """The parsed headers: who claims to sign (``keyid``), when (``created``, epoch seconds) and the signature."""

    keyid: str
    created: int
    signature: bytes


def _params(created: int, kid: str) -> str:
    return f'("@method" "@path");created={created};keyid="{kid}";alg="ed25519"'


def signature_base(method: str, path: str, created: int, kid: str) -> bytes:
    """The RFC 9421 signature base of this profile (UTF-8 bytes); ``method`` is upper-cased."""
    lines = (
        f'"@method": {method.upper()}',
        f'"@path": {path}',
        f'"@signature-params": {_params(created, kid)}',
    )
    return "\n".join(lines).encode("utf-8")


def sign_request(method: str, path: str, created: int, key: Ed25519PrivateKey) -> dict[str, str]:
    """The two headers that sign ``method path`` at ``created`` (epoch seconds) with ``key``."""
    kid = key_id(key)
    signature = key.sign(signature_base(method, path, created, kid))
    return {
        SIGNATURE_INPUT_HEADER: f"{_LABEL}={_params(created, kid)}",
        SIGNATURE_HEADER: f"{_LABEL}=:{b64encode(signature)}:",
    }


def parse_request_signature(headers: Mapping[str, str]) -> RequestSignature:
    """Read the two headers of this profile; MalformedError (reason ``bad_request_signature``) otherwise."""
    raw_input = headers.get(SIGNATURE_INPUT_HEADER)
    raw_sig = headers.get(SIGNATURE_HEADER)
    if raw_input is None or raw_sig is None:
        raise BadSignatureError("the request is not signed (Signature-Input and Signature missing)",
                                reason="unsigned_request")
    if len(raw_input) > _MAX_HEADER or len(raw_sig) > _MAX_HEADER:
        raise MalformedError("request signature headers too long", reason="bad_request_signature")
    found_input = _INPUT.fullmatch(raw_input.strip())
    found_sig = _SIG.fullmatch(raw_sig.strip())
    if found_input is None or found_sig is None:
        raise MalformedError("request signature headers do not follow the profile", reason="bad_request_signature")
    signature = b64decode_strict(found_sig["sig"], field="Signature")
    if len(signature) != _SIGNATURE_BYTES:
        raise MalformedError(f"the signature must be {_SIGNATURE_BYTES} bytes", reason="bad_request_signature")
    return RequestSignature(keyid=found_input["keyid"], created=int(found_input["created"]), signature=signature)


def verify_request(
    method: str,
    path: str,
    parsed: RequestSignature,
    public_key: Ed25519PublicKey,
    now: float,
    *,
    max_age_s: int = DEFAULT_MAX_AGE_S,
) -> None:
    """Check the signature with the enrolled key, then freshness against ``now`` (epoch seconds).

    Raises BadSignatureError: ``bad_signature`` when it does not verify (or the key is not the
    one ``keyid`` names), ``stale_signature`` when ``created`` is more than ``max_age_s`` away.
    """
    if key_id(public_key) != parsed.keyid:
        raise BadSignatureError("the request is signed with another key", reason="bad_signature")
    try:
        public_key.verify(parsed.signature, signature_base(method, path, parsed.created, parsed.keyid))
    except InvalidSignature:
        raise BadSignatureError("the request signature does not verify", reason="bad_signature") from None
    if abs(now - parsed.created) > max_age_s:
        raise BadSignatureError(
            f"the request was signed {now - parsed.created:+.0f} s from central's time (window ±{max_age_s} s)",
            reason="stale_signature",
        )
