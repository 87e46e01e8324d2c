"""The one exception tree of the wire protocol.

Central maps these to HTTP statuses in one middleware; the CLIs map them to one-line
errors (exit 2). Every exception carries a short machine ``reason`` that a log line or
a JSON ``{"error": ...}`` can hold, and a human message.

    SchulwartError
    └── ProtocolError
        ├── MalformedError          bad base64, bad JSON, wrong shape, missing/extra field
        │   └── TooLargeError       over a size, count or length cap
        ├── UnsupportedError        payloadType not allowed, unknown major version
        ├── KeyRefusedError         key problems
        │   ├── WeakKeyError        small-order or malformed public key
        │   ├── UnknownKeyError     keyid not among the trusted keys
        │   └── RevokedKeyError     key known but revoked
        ├── BadSignatureError       the signature does not verify
        ├── IdentityError           payload names another agent or school than its key
        ├── SequenceError
        │   ├── GapError            batch starts past the expected sequence
        │   └── ConflictError       same seq, different content (forked history)
        └── TokenError              technician token refused
            └── ScopeError          token valid, but its scope does not cover this school
"""

from __future__ import annotations

__all__ = [
    "BadSignatureError",
    "ConflictError",
    "GapError",
    "IdentityError",
    "KeyRefusedError",
    "MalformedError",
    "ProtocolError",
    "RevokedKeyError",
    "SchulwartError",
    "ScopeError",
    "SequenceError",
    "TokenError",
    "TooLargeError",
    "UnknownKeyError",
    "UnsupportedError",
    "WeakKeyError",
]


class SchulwartError(Exception):
    """Base of every error this project raises on purpose."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        """The human sentence, without the reason code."""
        return str(self.args[0]) if self.args else self.reason


class ProtocolError(SchulwartError):
    """Something on the wire was refused."""

    reason = "protocol"


class MalformedError(ProtocolError):
    """Input that cannot be decoded or does not have the required shape."""

    reason = "malformed"


class TooLargeError(MalformedError):
    """Input over a size, count or length cap."""

    reason = "too_large"


class UnsupportedError(ProtocolError):
    """A payloadType or major version this side does not speak."""

    reason = "unsupported"


class KeyRefusedError(ProtocolError):
    """A problem with a public key."""

    reason = "key"


class WeakKeyError(KeyRefusedError):
    """A public key that is malformed or of small order (it would verify forgeries)."""

    reason = "weak_key"


class UnknownKeyError(KeyRefusedError):
    """The envelope names a key that is not trusted here."""

    reason = "unknown_key"


class RevokedKeyError(KeyRefusedError):
    """The envelope names a key that was revoked."""

    reason = "revoked_key"


class BadSignatureError(ProtocolError):
    """The signature does not verify over the bytes received."""

    reason = "bad_signature"


class IdentityError(ProtocolError):
    """The payload claims another agent or school than the key was enrolled for."""

    reason = "identity_mismatch"


class SequenceError(ProtocolError):
    """The event sequence cannot be applied as sent."""

    reason = "sequence"

    def __init__(self, message: str, *, expected_seq: int, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.expected_seq = expected_seq


class GapError(SequenceError):
    """The batch starts past the next expected sequence number."""

    reason = "sequence_gap"


class ConflictError(SequenceError):
    """A sequence number already held with different content: a forked history."""

    reason = "sequence_conflict"


class TokenError(ProtocolError):
    """A technician token is refused (malformed, bad signature, expired, ...)."""

    reason = "bad_token"


class ScopeError(TokenError):
    """A valid technician token whose scope does not cover this school."""

    reason = "scope"
