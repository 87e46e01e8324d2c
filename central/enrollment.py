"""Enrollment: one-time codes (stored only as hashes) traded for an agent identity.

A code is ``SECRET.PIN``: the secret carries 144 random bits, works once and expires; the pin
is a hash of central's two public keys (``protocol.keys.enroll_pin``), which the agent checks
the enrollment answer against, so a code is safe to use over plain http. Only the secret's
hash is stored. Wrong codes are counted per
source address and, past a limit within a window, answered 429 before any lookup.
Every attempt is logged on one line with the school (when known) and the address, never
the code itself.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from base.clock import Clock
from central.config import AgentSyncPolicy
from central.errors import InvalidCodeError, KeyEnrolledError, NotFoundError, RateLimitedError
from central.keystore import Keystore
from central.limits import SharedFailureLimiter
from central.metrics import Metrics
from central.storage.interface import SchoolRow, Storage
from central.timestamps import from_iso, iso
from protocol.encoding import loads_strict
from protocol.errors import MalformedError, SchulwartError
from protocol.keys import enroll_pin, keyid, load_public_key_b64, pin_matches, public_key_raw, split_enroll_code

log = logging.getLogger(__name__)

CODE_BYTES = 18
MAX_ENROLL_BODY = 16 * 1024
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a high-entropy secret (codes, API tokens): enough, they are not passwords."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def valid_id(text: str) -> bool:
    """Whether ``text`` is usable as a school or agent id on the wire."""
    return bool(_ID_RE.fullmatch(text))


def keys_pin(keys: Keystore) -> str:
    """The pin of this central's config-signing and token-issuer public keys (22 base64url characters)."""
    return enroll_pin(public_key_raw(keys.config_key), public_key_raw(keys.token_key))


async def create_code(store: Storage, school_id: str, ttl: timedelta, now: datetime, keys: Keystore) -> str:
    """A new one-time code ``SECRET.PIN`` for a school (24 + 1 + 22 characters); only the secret's hash is stored.

    Raises NotFoundError for an unknown school.
    """
    if await store.get_school(school_id) is None:
        raise NotFoundError(f"no school with id {school_id!r} (add it with `school add`)")
    secret = secrets.token_urlsafe(CODE_BYTES)
    await store.add_enroll_code(hash_secret(secret), school_id, iso(now + ttl), iso(now))
    log.info("enrollment code created school=%s expires=%s", school_id, iso(now + ttl))
    return f"{secret}.{keys_pin(keys.at(now))}"


@dataclass(frozen=True, slots=True)
class EnrollRequest:
    """The fields of POST /v1/enroll."""

    code: str
    public_key: str
    hostname: str
    agent_version: str


def parse_enroll_request(body: bytes) -> EnrollRequest:
    """Strict JSON with the four string fields (extra fields are ignored)."""
    doc = loads_strict(body, max_bytes=MAX_ENROLL_BODY, max_depth=4)
    if not isinstance(doc, dict):
        raise MalformedError("enrollment request must be a JSON object", reason="bad_request")
    limits = {"code": 128, "public_key": 128, "hostname": 255, "agent_version": 64}
    values = {}
    for name, limit in limits.items():
        value = doc.get(name)
        if not isinstance(value, str) or not value or len(value) > limit:
            raise MalformedError(f"{name} must be a string of 1..{limit} characters", reason="bad_request")
        values[name] = value
    return EnrollRequest(**values)


class Enroller:
    """POST /v1/enroll as a plain object: parse, rate-limit, check key and code, create the agent."""

    def __init__(
        self,
        store: Storage,
        keys: Keystore,
        clock: Clock,
        limiter: SharedFailureLimiter,
        sync: AgentSyncPolicy,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.keys = keys
        self.clock = clock
        self.limiter = limiter
        self.sync = sync
        self.metrics = metrics

    async def enroll(self, body: bytes, source: str) -> dict[str, Any]:
        """The 201 answer; a SchulwartError says why not."""
        now = self.clock.now()
        school = "-"
        try:
            request = parse_enroll_request(body)
            if await self.limiter.blocked(source):
                raise RateLimitedError("too many wrong enrollment codes from this address; try again later")
            public_key = load_public_key_b64(request.public_key)
            raw = public_key_raw(public_key)
            agent_id = "ag-" + secrets.token_hex(8)
            school_row = await self._claim(request.code, raw, request, agent_id, now, source)
            school = school_row.id
        except SchulwartError as exc:
            if isinstance(exc, InvalidCodeError) and exc.school_id:
                school = exc.school_id
            log.warning("enroll refused from=%s school=%s reason=%s: %s", source, school, exc.reason, exc.message)
            raise
        log.info("enrolled agent=%s school=%s host=%r from=%s", agent_id, school, request.hostname[:80], source)
        if self.metrics is not None:
            self.metrics.enrollments.inc()
        return {
            "agent_id": agent_id,
            "school_id": school_row.id,
            "carrier": school_row.carrier,
            "school_name": school_row.name,
            "central_public_key": self.keys.at(now).config_public_b64,
            "token_public_key": self.keys.at(now).token_public_b64,
            "central_time": iso(now),
            "sync": self.sync.to_json(),
        }

    async def _claim(
        self, code: str, raw_key: bytes, request: EnrollRequest, agent_id: str, now: datetime, source: str
    ) -> SchoolRow:
        """In one transaction: the code is valid and unused, the key is new; use the code, add the agent."""
        try:
            return await self._claim_code(code, raw_key, request, agent_id, now)
        except InvalidCodeError:
            # Counted after the transaction: the count is shared by every node, and is kept.
            await self.limiter.fail(source)
            raise

    async def _claim_code(
        self, code: str, raw_key: bytes, request: EnrollRequest, agent_id: str, now: datetime
    ) -> SchoolRow:
        secret, pin = split_enroll_code(code)
        keys = self.keys.at(now)  # after a key rotation's switch, codes carry the new keys' pin
        if pin is not None and not pin_matches(pin, public_key_raw(keys.config_key), public_key_raw(keys.token_key)):
            raise InvalidCodeError("enrollment code was made by another central (its key pin does not match)")
        async with self.store.transaction() as tx:
            row = await tx.find_code(hash_secret(secret))
            if row is None or row.used_at is not None or from_iso(row.expires_at) <= now:
                state = "unknown" if row is None else ("used" if row.used_at else "expired")
                raise InvalidCodeError(f"enrollment code is {state}", school_id=row.school_id if row else None)
            kid = keyid(raw_key)
            if await tx.keyid_enrolled(kid):
                raise KeyEnrolledError(f"this public key is already enrolled (school {row.school_id})")
            await tx.use_code(row.code_hash, iso(now), agent_id)
            await tx.add_agent(agent_id, row.school_id, kid, raw_key, request.hostname, request.agent_version, iso(now))
        school = await self.store.get_school(row.school_id)
        if school is None:  # pragma: no cover - schools are never deleted
            raise NotFoundError(f"school {row.school_id} vanished")
        return school
