"""Central's own refusals, beside the protocol's error tree, and the one HTTP status table.

SchulwartError
├── ProtocolError (protocol/errors.py: malformed, key, signature, identity, sequence, token)
│   └── UnsupportedEncodingError   Content-Encoding other than identity or gzip
└── CentralError
    ├── InvalidCodeError            enrollment code unknown, used or expired
    ├── KeyEnrolledError            public key already enrolled
    ├── RateLimitedError            too many wrong codes from one address
    ├── NotFoundError               no such school or agent
    ├── AlreadyExistsError          a school with that id exists
    ├── UnauthorizedError           read API without a valid bearer token
    └── StorageFullError            the disk under the database is full (507; nothing half-stored)
"""

from __future__ import annotations

from protocol.errors import (
    BadSignatureError,
    IdentityError,
    MalformedError,
    ProtocolError,
    RevokedKeyError,
    SchulwartError,
    ScopeError,
    SequenceError,
    TokenError,
    TooLargeError,
    UnknownKeyError,
    UnsupportedError,
    WeakKeyError,
)


class UnsupportedEncodingError(ProtocolError):
    """A request body in a Content-Encoding central does not take."""

    reason = "unsupported_encoding"


class CentralError(SchulwartError):
    """A refusal that is central's own, not the wire protocol's."""

    reason = "central"


class InvalidCodeError(CentralError):
    """The enrollment code is unknown, already used or expired."""

    reason = "invalid_code"

    def __init__(self, message: str, *, school_id: str | None = None) -> None:
        super().__init__(message)
        self.school_id = school_id  # known for a used or expired code; logged, never answered


class KeyEnrolledError(CentralError):
    """The public key is already enrolled."""

    reason = "key_enrolled"


class StorageFullError(CentralError):
    """The database could not be written: its disk is full. The write was rolled back whole."""

    reason = "store_full"


class RateLimitedError(CentralError):
    """Too many wrong enrollment codes from this address."""

    reason = "rate_limited"


class NotFoundError(CentralError):
    """No such school or agent."""

    reason = "not_found"


class AlreadyExistsError(CentralError):
    """The record to create exists already."""

    reason = "exists"


class UnauthorizedError(CentralError):
    """Missing or unknown bearer token."""

    reason = "unauthorized"


class RequestTimeoutError(CentralError):
    """The request body did not arrive within its deadline (a slow or stalled client)."""

    reason = "request_timeout"


# Most specific class first: the first isinstance match wins.
_STATUS: tuple[tuple[type[SchulwartError], int], ...] = (
    (TooLargeError, 413),
    (MalformedError, 400),
    (UnsupportedEncodingError, 415),
    (UnsupportedError, 400),
    (WeakKeyError, 400),
    (UnknownKeyError, 401),
    (RevokedKeyError, 403),
    (BadSignatureError, 401),
    (IdentityError, 403),
    (SequenceError, 409),
    (ScopeError, 403),
    (TokenError, 401),
    (InvalidCodeError, 403),
    (KeyEnrolledError, 409),
    (RateLimitedError, 429),
    (NotFoundError, 404),
    (AlreadyExistsError, 409),
    (UnauthorizedError, 401),
    (RequestTimeoutError, 408),
    (StorageFullError, 507),
)


def http_status(exc: SchulwartError) -> int:
    """The HTTP status for a refusal; anything unlisted is a plain 400."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400
