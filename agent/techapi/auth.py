"""Who may read this school's state: a technician token central signed, or the local admin token.

Tokens are verified offline with the issuer key from enrollment, at max(now, time floor).
Failed attempts are counted and rate-limited per source address; a token is never logged.
"""

from __future__ import annotations

import hmac
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from agent.techapi.view import LocalView, SiteIdentity
from base.ratelimit import FailureLimiter
from protocol.errors import ScopeError, TokenError
from protocol.tokens import HEADER, TechnicianClaims, verify_technician_token

log = logging.getLogger(__name__)


class AuthError(Exception):
    """A request that may not proceed: status and a short reason for the JSON body."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the technician's name from the token, or the local admin."""

    name: str
    kind: str  # "technician" or "admin"
    scope: str


class Authenticator:
    """Checks the Authorization header of a request against this agent's identity."""

    def __init__(
        self,
        view: LocalView,
        admin_token: str | None,
        now: Callable[[], datetime],
        limiter: FailureLimiter,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._view = view
        self._admin_token = admin_token
        self._now = now
        self._limiter = limiter
        self._on_failure = on_failure or (lambda _reason: None)
        self._seen_jti: OrderedDict[str, None] = OrderedDict()

    def _refuse(self, source: str, status: int, reason: str, detail: str = "") -> AuthError:
        self._limiter.fail(source)
        self._on_failure(reason)
        identity = self._view.identity()
        school = identity.school_id if identity else "-"
        log.warning("auth refused school=%s source=%s reason=%s %s", school, source, reason, detail)
        return AuthError(status, reason)

    def _verify(self, token: str, identity: SiteIdentity) -> TechnicianClaims:
        """The claims of a token signed by any issuer key central told us to trust (two during a rotation)."""
        keys = list(self._view.token_keys()) or [identity.token_public_key]
        for index, key in enumerate(keys):
            try:
                return verify_technician_token(
                    token, key, school_id=identity.school_id, carrier=identity.carrier, now=self._now(),
                    time_floor=self._view.time_floor(),
                )  # fmt: skip
            except TokenError as exc:
                if exc.reason != "token_signature" or index == len(keys) - 1:
                    raise
        raise AssertionError("unreachable: the last key re-raises")  # pragma: no cover

    def check(self, header: str | None, source: str) -> Principal:
        """The principal behind the header, or AuthError (401/403/429)."""
        if self._limiter.blocked(source):
            self._on_failure("rate_limited")
            raise AuthError(429, "too_many_failed_attempts")
        if not header or not header.startswith("Bearer "):
            raise self._refuse(source, 401, "missing_token")
        token = header[len("Bearer ") :].strip()
        # Every token we issue is printable ASCII; header bytes that are not UTF-8 arrive here as
        # surrogate escapes, which str.encode() would raise on.
        if not (token.isascii() and token.isprintable()):
            raise self._refuse(source, 401, "malformed_token")
        if self._admin_token and hmac.compare_digest(token.encode(), self._admin_token.encode()):
            return Principal(name="local admin", kind="admin", scope="local")
        identity = self._view.identity()
        if identity is None:
            raise self._refuse(source, 401, "not_enrolled", "(only the admin token works before enrollment)")
        if not token.startswith(HEADER):
            raise self._refuse(source, 401, "not_a_technician_token")
        try:
            claims = self._verify(token, identity)
        except ScopeError as exc:
            raise self._refuse(source, 403, exc.reason, exc.message) from None
        except TokenError as exc:
            raise self._refuse(source, 401, exc.reason, exc.message) from None
        if claims.jti in self._view.revoked_tokens():
            raise self._refuse(source, 401, "token_revoked", f"(jti {claims.jti} was revoked at central)")
        if claims.jti not in self._seen_jti:  # the page polls: log a token's first use, not every request
            log.info(
                "technician authenticated school=%s technician=%s jti=%s", identity.school_id, claims.sub, claims.jti
            )
            self._seen_jti[claims.jti] = None
            if len(self._seen_jti) > 1024:
                self._seen_jti.popitem(last=False)
        return Principal(name=claims.sub, kind="technician", scope=claims.scope)
