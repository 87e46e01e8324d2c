"""Staff accounts of the dashboard: roles and password hashes (Argon2id via argon2-cffi).

A role is ``admin``, ``staff`` or ``carrier:NAME``; a carrier user sees only the schools of
that carrier (Schulträger), in the pages and in the read API. Passwords are never stored or
logged, only their Argon2id hash (argon2-cffi's defaults: 64 MiB, 3 passes, about 50 ms).
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("admin", "staff", "carrier")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024

_HASHER = PasswordHasher()
# Verified against when the user does not exist, so that a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


def parse_role(text: str) -> tuple[str, str | None]:
    """``"admin"`` → ("admin", None), ``"carrier:Kreis A"`` → ("carrier", "Kreis A"); ValueError otherwise."""
    kind, sep, carrier = text.partition(":")
    if kind in ("admin", "staff") and not sep:
        return kind, None
    if kind == "carrier" and sep and carrier.strip() and len(carrier) <= 128:
        return kind, carrier
    raise ValueError("role must be admin, staff or carrier:NAME")


def check_password(password: str) -> str:
    """The password if it is acceptable; ValueError naming the rule otherwise."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValueError(f"the password must be {MIN_PASSWORD}..{MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    """The Argon2id hash of a password (PHC string, salt included); CPU-bound, about 50 ms."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; a missing user (None) is checked against a dummy hash, always False."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password[:MAX_PASSWORD]) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
