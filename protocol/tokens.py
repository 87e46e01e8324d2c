"""Technician tokens: PASETO ``v4.public`` (Ed25519), on pyca/cryptography alone.

Central signs them with its token-issuer key; the agent verifies them offline with the
issuer public key it got at enrollment. Only the ``v4.public.`` header is accepted, the
key is pinned (never taken from the token), and "now" is never below the newest
central-signed time the agent has seen, so winding its clock back revives nothing.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .encoding import b64url_decode_nopad, b64url_encode_nopad, dumps, loads_strict
from .errors import MalformedError, ScopeError, TokenError
from .schema import format_time, parse_time

__all__ = [
    "DEFAULT_SKEW",
    "HEADER",
    "MAX_LIFETIME",
    "TechnicianClaims",
    "issue_technician_token",
    "paseto_pae",
    "paseto_sign",
    "paseto_verify",
    "scope_covers",
    "validate_scope",
    "verify_technician_token",
]

HEADER = "v4.public."
MAX_LIFETIME = timedelta(hours=12)
DEFAULT_SKEW = timedelta(minutes=5)
MAX_TOKEN_CHARS = 4096
_SIG = 64
_SCOPE_RE = re.compile(r"all|school:[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}|carrier:[^\x00-\x1f]{1,128}")


def paseto_pae(pieces: list[bytes]) -> bytes:
    """PASETO pre-authentication encoding: LE64 count, then LE64 length + bytes of each piece."""

    def le64(n: int) -> bytes:
        return (n & 0x7FFF_FFFF_FFFF_FFFF).to_bytes(8, "little")

    return le64(len(pieces)) + b"".join(le64(len(p)) + p for p in pieces)


def paseto_sign(key: Ed25519PrivateKey, message: bytes, footer: bytes = b"", implicit: bytes = b"") -> str:
    """A v4.public token over ``message`` with an optional footer and implicit assertion."""
    header = HEADER.encode("ascii")
    signature = key.sign(paseto_pae([header, message, footer, implicit]))
    token = HEADER + b64url_encode_nopad(message + signature)
    return token + "." + b64url_encode_nopad(footer) if footer else token


def paseto_verify(token: str, key: Ed25519PublicKey, implicit: bytes = b"") -> tuple[bytes, bytes]:
    """Verify a v4.public token with a pinned key; returns (message, footer)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise TokenError("token is not a string of sane length", reason="token_malformed")
    if not token.startswith(HEADER):
        raise TokenError("token is not a v4.public PASETO", reason="token_header")
    parts = token[len(HEADER) :].split(".")
    if len(parts) not in (1, 2) or not parts[0]:
        raise TokenError("token has the wrong number of parts", reason="token_malformed")
    try:
        body = b64url_decode_nopad(parts[0], field="token")
        footer = b64url_decode_nopad(parts[1], field="footer") if len(parts) == 2 else b""
    except MalformedError:
        raise TokenError("token is not valid base64url", reason="token_malformed") from None
    if len(body) < _SIG:
        raise TokenError("token is too short to hold a signature", reason="token_malformed")
    message, signature = body[:-_SIG], body[-_SIG:]
    try:
        key.verify(signature, paseto_pae([HEADER.encode("ascii"), message, footer, implicit]))
    except InvalidSignature:
        raise TokenError("token signature does not verify", reason="token_signature") from None
    return message, footer


@dataclass(frozen=True, slots=True)
class TechnicianClaims:
    """The claims of a verified technician token."""

    sub: str
    scope: str
    iat: datetime
    nbf: datetime
    exp: datetime
    jti: str


def validate_scope(scope: str) -> str:
    """``all``, ``school:ID`` or ``carrier:NAME``; anything else raises ValueError."""
    if not isinstance(scope, str) or not _SCOPE_RE.fullmatch(scope):
        raise ValueError(f"scope must be all, school:ID or carrier:NAME, not {str(scope)[:60]!r}")
    return scope


def scope_covers(scope: str, school_id: str, carrier: str | None) -> bool:
    """Whether a token scope covers this school (directly, by its carrier, or all)."""
    if scope == "all":
        return True
    kind, _, name = scope.partition(":")
    if kind == "school":
        return name == school_id
    return kind == "carrier" and carrier is not None and name == carrier


def issue_technician_token(
    key: Ed25519PrivateKey,
    technician: str,
    scope: str,
    now: datetime,
    ttl: timedelta = timedelta(hours=8),
    jti: str | None = None,
) -> str:
    """Sign a technician token valid from ``now`` for ``ttl`` (at most 12 h)."""
    if not technician or len(technician) > 128:
        raise ValueError("technician name must be 1..128 characters")
    if ttl <= timedelta(0) or ttl > MAX_LIFETIME:
        raise ValueError("ttl must be more than 0 and at most 12 h")
    # Whole seconds: verifiers that truncate their own clock (pyseto does) would otherwise
    # see a fresh token's nbf a fraction of a second in the future and refuse it.
    now = now.replace(microsecond=0)
    claims = {
        "sub": technician,
        "scope": validate_scope(scope),
        "iat": format_time(now),
        "nbf": format_time(now),
        "exp": format_time(now + ttl),
        "jti": jti or secrets.token_hex(16),
    }
    return paseto_sign(key, dumps(claims))


def _claim_time(claims: dict[str, object], name: str) -> datetime:
    value = claims.get(name)
    if not isinstance(value, str):
        raise TokenError(f"token claim {name} is missing", reason="token_claims")
    try:
        return parse_time(value, field_name=name)
    except MalformedError:
        raise TokenError(f"token claim {name} is not a timestamp", reason="token_claims") from None


def _claim_str(claims: dict[str, object], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > 256:
        raise TokenError(f"token claim {name} is missing or not a short string", reason="token_claims")
    return value


def verify_technician_token(
    token: str,
    issuer_key: Ed25519PublicKey,
    *,
    school_id: str,
    carrier: str | None,
    now: datetime,
    time_floor: datetime | None = None,
    skew: timedelta = DEFAULT_SKEW,
) -> TechnicianClaims:
    """Verify a token for this school at this time; raises TokenError/ScopeError saying why."""
    message, _footer = paseto_verify(token, issuer_key)
    try:
        claims = loads_strict(message)
    except MalformedError:
        raise TokenError("token claims are not valid JSON", reason="token_claims") from None
    if not isinstance(claims, dict):
        raise TokenError("token claims are not an object", reason="token_claims")
    sub, scope, jti = _claim_str(claims, "sub"), _claim_str(claims, "scope"), _claim_str(claims, "jti")
    iat, nbf, exp = _claim_time(claims, "iat"), _claim_time(claims, "nbf"), _claim_time(claims, "exp")
    if exp - iat > MAX_LIFETIME or exp <= iat:
        raise TokenError("token lifetime is over 12 h or negative", reason="token_lifetime")
    effective_now = max(now, time_floor) if time_floor is not None else now
    if effective_now + skew < nbf or effective_now + skew < iat:
        raise TokenError("token is not valid yet", reason="token_not_yet_valid")
    if effective_now - skew >= exp:
        raise TokenError("token has expired", reason="token_expired")
    try:
        validate_scope(scope)
    except ValueError:
        raise TokenError("token scope is malformed", reason="token_claims") from None
    if not scope_covers(scope, school_id, carrier):
        raise ScopeError(f"token scope {scope!r} does not cover school {school_id!r}")
    return TechnicianClaims(sub=sub, scope=scope, iat=iat, nbf=nbf, exp=exp, jti=jti)
