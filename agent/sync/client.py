"""The sync task: signed, gzipped reports to central, with retries that never give up on data.

One cycle: after (re)connecting, a signed state payload (open incidents, latest snapshot,
devices) so central is right about the present at once; then the history drains in
order, batch by batch, under a byte-rate cap; then central's signed configuration is
fetched for the trusted time floor. Network errors, timeouts and 5xx retry with full-jitter
exponential backoff, forever. 401/403 stops sending (data kept) and raises a critical
agent incident; a history central disagrees with (fork) is kept and alerted on, too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, assert_never

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_never, wait_random_exponential

from agent.config import SyncSection
from agent.identity import Identity, agent_version, raise_time_floor, trusted_central_keys
from agent.monitors.interface import Signal
from agent.store import Store, StoreError
from agent.store.outbox import Outbox, QueuedEvent
from agent.sync.transport import Accepted, Conflict, Gap, NotModified, Refused, RetryLater, Transport
from base.clock import Clock
from base.errors import ConfigError
from protocol.envelope import sign, verify
from protocol.errors import ProtocolError
from protocol.httpsig import sign_request
from protocol.keys import keyid
from protocol.schema import (
    CONFIG_SECTIONS,
    CONFIG_TYPE,
    MAX_EVENTS,
    REPORT_TYPE,
    STATE_TYPE,
    ConfigPayload,
    ConfigReport,
    build_report,
    build_state,
    parse_config_payload,
    parse_time,
)

log = logging.getLogger(__name__)

REVOKED_KEY = "agent-revoked"
FORK_KEY = "agent-history-fork"
REFUSED_KEY = "agent-sync-refused"
# The title codes of the sync incidents (protocol.messages), so readers show them in their language.
# While `rotate-key` is under way (its next key file exists), central may already hold the new key
# before the command has switched the files: a refused key is then asked again this often, for at
# most this long, before it counts as revoked (and waits revoked_retry).
_ROTATION_RECHECK_S = 1.0
_ROTATION_GRACE_S = 60.0
_TITLE_CODES = {REVOKED_KEY: "agent.revoked", FORK_KEY: "agent.history_fork", REFUSED_KEY: "agent.sync_refused"}


class TransientError(Exception):
    """The network, a timeout or a 5xx: try again later."""


class RevokedError(Exception):
    """Central rejects our key (401/403)."""


class BlockedError(Exception):
    """Central refuses the history as it is (fork, conflict, a 4xx): keep the data, alert, retry rarely."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """The effective sync settings: config file over central's config over enrollment over defaults."""

    report_interval: float = 60.0
    max_batch_events: int = 500
    max_batch_bytes: int = 256 * 1024
    max_bytes_per_s: int = 32_768
    request_timeout: float = 30.0
    backoff_max: float = 60.0
    revoked_retry: float = 3600.0
    config_interval: float = 300.0

    @classmethod
    def resolve(cls, local: SyncSection, *central: Mapping[str, Any]) -> SyncSettings:
        """Merge: later central mappings win over earlier ones; keys set in the config file win over all.

        The byte-rate cap is the school's own line, so only the config file sets it.
        """
        merged: dict[str, float] = {}
        for source in central:
            for name, key in (
                ("report_interval", "report_interval_s"),
                ("max_batch_events", "max_batch_events"),
                ("max_batch_bytes", "max_batch_bytes"),
            ):
                value = source.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                    merged[name] = value
        defaults = cls()
        report_interval = local.report_interval or merged.get("report_interval") or defaults.report_interval
        events = local.max_batch_events or merged.get("max_batch_events") or defaults.max_batch_events
        size = local.max_batch_bytes or merged.get("max_batch_bytes") or defaults.max_batch_bytes
        return cls(
            report_interval=float(report_interval),
            max_batch_events=max(1, min(int(events), MAX_EVENTS)),
            max_batch_bytes=max(4096, min(int(size), 700_000)),
            max_bytes_per_s=local.max_bytes_per_s,
            request_timeout=local.request_timeout,
            backoff_max=local.backoff_max,
            revoked_retry=local.revoked_retry,
            config_interval=local.config_interval,
        )


def report_envelope(
    identity: Identity, key: Ed25519PrivateKey, events: Sequence[QueuedEvent], sent_at: datetime
) -> bytes:
    """A signed report over consecutive queued events."""
    payload = build_report(
        identity.agent_id, identity.school_id, [e.to_wire() for e in events], sent_at, agent_version=agent_version()
    )
    return sign(payload, REPORT_TYPE, key)


def _refusal(config: ConfigPayload, agent_id: str, held: Mapping[str, Any]) -> str | None:
    """Why a verified config must not replace the one held (None: it may)."""
    if config.agent_id != agent_id:
        return f"it names agent {config.agent_id}, not this one"
    held_version = held.get("version")
    if not isinstance(held_version, int):
        return None
    if config.version < held_version:
        return f"older than version {held_version} held (rollback)"
    held_at = held.get("issued_at")
    replayed = isinstance(held_at, str) and parse_time(config.issued_at) < parse_time(held_at)
    if config.version == held_version and replayed:
        return f"issued {config.issued_at}, before the copy of version {held_version} held ({held_at}): a replay"
    return None


@dataclass(frozen=True, slots=True)
class Reconfiguration:
    """A configuration from central, checked under the school's file and ready to apply.

    ``overrides`` are the keys the school's file sets otherwise; ``apply`` puts it in force
    (monitors whose section changed restart; nothing else does).
    """

    overrides: tuple[str, ...]
    apply: Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class StateParts:
    """The present, as the state payload carries it."""

    open_incidents: Sequence[Mapping[str, Any]]
    snapshot: Mapping[str, Any] | None
    devices: Sequence[Mapping[str, Any]]
    dropped_events: int = 0


# Seconds between stores of last_sync_at while the cycles have nothing to send.
LAST_SYNC_REFRESH_S = 300.0


class SyncClient:
    """Moves the outbox to central; one instance, one task.

    It only decides what to do with each :mod:`agent.sync.transport` outcome; the transport
    says what central answered. ``wake`` is the event that makes the task sync at once: pass
    one to let parts built before the client wake it (``wake.set``); :meth:`kick` sets it too.
    """

    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        identity: Identity,
        key: Ed25519PrivateKey,
        local: SyncSection,
        clock: Clock,
        *,
        transport: Transport,
        state: Callable[[], StateParts],
        signal: Callable[[Signal], None] = lambda s: None,
        wake: asyncio.Event | None = None,
        dropped_events: Callable[[], int] = lambda: 0,
        configure: Callable[[Mapping[str, Any]], Reconfiguration] | None = None,
        config_report: ConfigReport | None = None,
        reload_key: Callable[[], tuple[Identity, Ed25519PrivateKey] | None] | None = None,
        rotation_pending: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.identity = identity
        self.key = key
        self.local = local
        self.settings = settings = SyncSettings.resolve(local, identity.sync, self._central_settings())
        self.clock = clock
        self._transport = transport
        self._state = state
        self._signal = signal
        self._need_state = True
        self._dropped = dropped_events
        self._dropped_sent = 0
        self._wake = wake if wake is not None else asyncio.Event()
        self._last_config: float | None = None
        self._configure = configure
        self._reload_key = reload_key
        self._rotation_pending = rotation_pending
        self._rotation_seen: float | None = None  # loop time a refusal first met a rotation under way
        self.config_report = config_report
        self.clock_offset: float | None = store.get_setting("clock_offset_s")
        self._exchanged = False  # this cycle sent central something (last_sync_at, below)
        self._sync_written_at: float | None = None  # monotonic time last_sync_at was last stored
        self.batch_events = settings.max_batch_events
        self.batch_bytes = settings.max_batch_bytes
        self.school = identity.school_id
        self.consecutive_failures = 0

    def _took_new_key(self) -> bool:
        """Whether the key on disk is another than the one in use (a key rotation); if so, use it from now on."""
        fresh = self._reload_key() if self._reload_key is not None else None
        if fresh is None or keyid(fresh[1]) == keyid(self.key):
            return False
        self.identity, self.key = fresh
        log.warning("school=%s central refused the old key; signing with the rotated key %s… from now on",
                    self.school, keyid(self.key)[:16])  # fmt: skip
        return True

    def _rotation_under_way(self) -> bool:
        """Whether a refused key may be a rotation central finished before `rotate-key` switched the files.

        True for at most ``_ROTATION_GRACE_S`` from the first such refusal; a command that died
        after central's answer leaves its next key behind, and the agent must not wait on it forever.
        """
        if not self._rotation_pending():
            self._rotation_seen = None
            return False
        now = asyncio.get_running_loop().time()
        if self._rotation_seen is None:
            self._rotation_seen = now
            log.info("school=%s central refused the key while rotate-key is under way; asking again", self.school)
        return now - self._rotation_seen < _ROTATION_GRACE_S

    def _central_settings(self) -> Mapping[str, Any]:
        stored = self.store.get_setting("central_config") or {}
        settings = stored.get("settings") if isinstance(stored, dict) else None
        return settings if isinstance(settings, dict) else {}

    # ------------------------------------------------------------------ the task

    def kick(self) -> None:
        """Sync now rather than at the next interval."""
        self._wake.set()

    async def run(self) -> None:
        """Forever: a cycle, then wait for the interval (or longer after a refusal); closes the transport at the end."""
        try:
            while True:
                wait = self.settings.report_interval
                try:
                    await self.cycle_with_retries()
                except RevokedError as exc:
                    if self._took_new_key():
                        self._rotation_seen = None
                        continue  # `rotate-key` ran meanwhile: go again at once, signing with the new key
                    if self._rotation_under_way():
                        wait = _ROTATION_RECHECK_S
                    else:
                        self._refused(REVOKED_KEY, "Agent revoked / key rejected by central", str(exc))
                        wait = self.settings.revoked_retry
                except StoreError as exc:  # e.g. a full disk while recording an ack: try again later
                    log.error("school=%s sync cannot use the store: %s", self.school, exc.message)
                    wait = self.settings.backoff_max
                except BlockedError as exc:
                    title = (
                        "Central's history of this agent disagrees with the outbox (restored or cloned agent?)"
                        if exc.key == FORK_KEY
                        else "Central refuses this agent's reports"
                    )
                    self._refused(exc.key, title, str(exc))
                    wait = self.settings.revoked_retry
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
        finally:
            await self._transport.aclose()

    async def cycle_with_retries(self) -> None:
        """One cycle, retried on transient errors with capped full-jitter backoff, never giving up."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            wait=wait_random_exponential(multiplier=1, max=self.settings.backoff_max),
            stop=stop_never,
            reraise=True,
            before_sleep=self._before_retry,
        )
        async for attempt in retrying:
            with attempt:
                await self.cycle()

    def _before_retry(self, state: RetryCallState) -> None:
        self._need_state = True  # reconnecting: the present goes first again
        self.consecutive_failures += 1
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "school=%s sync failed (attempt %d): %s; retrying in %.1fs; outbox depth %d",
            self.school,
            state.attempt_number,
            exc,
            delay,
            self.outbox.stats().depth,
        )

    async def cycle(self) -> int:
        """State (when reconnecting), then the backlog, then the config; returns events acknowledged.

        Raises TransientError (retry soon), RevokedError (401/403), BlockedError (fork or refusal)
        and StoreError.
        """
        before = self.outbox.acked_seq
        # Events dropped on a full disk cannot travel in the outbox: a new count goes out in a state.
        if self._need_state or self._dropped() > self._dropped_sent:
            await self.send_state()
            self._need_state = False
        await self.drain()
        self._succeeded()
        if self._last_config is None or self.clock.monotonic() - self._last_config >= self.settings.config_interval:
            await self.fetch_config()
        return self.outbox.acked_seq - before

    # ------------------------------------------------------------------ requests

    async def _post(self, envelope: bytes) -> Accepted | Gap | Conflict | Refused:
        """Send one envelope; RetryLater becomes TransientError and a rejected key RevokedError."""
        outcome = await self._transport.post(envelope)
        self._exchanged = True
        self._note_offset(self._transport.clock_offset)
        if isinstance(outcome, RetryLater):
            raise TransientError(outcome.reason)
        if isinstance(outcome, Refused) and outcome.revoked:
            raise RevokedError(f"central answered {outcome.status}: {outcome.error}")
        return outcome

    def _note_offset(self, offset: float | None) -> None:
        # Written only when it moved by 2 s or more: the store is not a log of jitter.
        if offset is None:
            return
        if self.clock_offset is None or abs(offset - self.clock_offset) >= 2.0:
            self.clock_offset = offset
            self._quiet_write(lambda: self.store.put_setting("clock_offset_s", offset))

    async def send_state(self) -> None:
        """The signed present, outside the sequence."""
        parts = self._state()
        payload = build_state(
            self.identity.agent_id,
            self.identity.school_id,
            self.outbox.last_seq,
            self.clock.now(),
            parts.open_incidents,
            parts.snapshot,
            parts.devices,
            agent_version=agent_version(),
            dropped_events=parts.dropped_events,
            config=self.config_report,
        )
        outcome = await self._post(sign(payload, STATE_TYPE, self.key))
        if not isinstance(outcome, Accepted):
            self._refuse(outcome)
        self._dropped_sent = parts.dropped_events
        self._apply_ack(outcome.acked_through, None)
        log.info(
            "school=%s state sent (last_seq %d, %d open incidents)",
            self.school,
            self.outbox.last_seq,
            len(parts.open_incidents),
        )

    async def drain(self) -> None:
        """Send the history in order until the outbox is empty."""
        while True:
            first = self.outbox.acked_seq + 1
            events = self.outbox.batch(first, self.batch_events, self.batch_bytes)
            if not events:
                return
            if events[0].seq != first:  # never expected: a hole in our own outbox; do not spin on it
                raise BlockedError(f"outbox has no event {first} (next is {events[0].seq})", REFUSED_KEY)
            envelope = report_envelope(self.identity, self.key, events, self.clock.now())
            self._quiet_write(functools.partial(self.outbox.mark_sent, events[-1].seq))
            outcome = await self._post(envelope)
            match outcome:
                case Accepted(acked_through=acked):
                    self._apply_ack(acked, events)
                case Gap(expected_seq=expected) | Conflict(expected_seq=int(expected)):
                    # A conflict central can name a next seq for is resumed like a gap when that
                    # seq fits what this agent holds; when it does not, it is a fork (below).
                    self._resume_from(expected, outcome.error, events)
                case Conflict() | Refused(status=409):
                    raise BlockedError(
                        f"central answered 409 without an expected_seq: {outcome.error}", REFUSED_KEY
                    )
                case Refused(status=413) if self.batch_events > 1:
                    self.batch_events = max(1, len(events) // 2)
                    self.batch_bytes = max(4096, self.batch_bytes // 2)
                    log.warning(
                        "school=%s central says a batch is too large; now %d events", self.school, self.batch_events
                    )
                case Refused():
                    self._refuse(outcome)
                case _:
                    assert_never(outcome)

    def _apply_ack(self, acked: int, events: Sequence[QueuedEvent] | None) -> None:
        last = self.outbox.last_seq
        if acked > last:
            raise BlockedError(
                f"central holds seq {acked} but this agent only made {last}: a restored or cloned agent", FORK_KEY
            )
        before = self.outbox.acked_seq
        now_acked = self.outbox.ack(acked)
        if events is not None and now_acked < events[0].seq:
            raise BlockedError(f"central acknowledged only up to {acked} for a batch from {events[0].seq}", FORK_KEY)
        if now_acked > before:
            log.debug("school=%s acked through %d", self.school, now_acked)

    def _resume_from(self, expected: int, error: str, events: Sequence[QueuedEvent]) -> None:
        acked, last = self.outbox.acked_seq, self.outbox.last_seq
        if expected <= acked or expected - 1 > last or expected == events[0].seq:
            log.critical(
                "school=%s FORK: central expects seq %d, this agent acked %d and holds %d..%d (%s); keeping data",
                self.school,
                expected,
                acked,
                acked + 1,
                last,
                error,
            )
            raise BlockedError(f"central expects seq {expected}; agent holds {acked + 1}..{last}", FORK_KEY)
        log.info("school=%s central expects seq %d: resending from there", self.school, expected)
        self.outbox.ack(expected - 1)

    def _refuse(self, outcome: Gap | Conflict | Refused) -> NoReturn:
        status = outcome.status if isinstance(outcome, Refused) else 409
        raise BlockedError(f"central refused with {status}: {outcome.error}", REFUSED_KEY)

    def _held_config(self) -> dict[str, Any]:
        stored = self.store.get_setting("central_config")
        return stored if isinstance(stored, dict) else {}

    async def fetch_config(self) -> None:
        """Central's signed config: verified, never older than the one held, applied without a restart.

        The request is signed with the agent's key (``protocol.httpsig``) at central's time as the
        last ``Date`` told it, and names the held ETag (``304``: nothing to do). Every refusal is
        one log line with its reason; the configuration held stays in force.
        """
        self._last_config = self.clock.monotonic()
        agent_id = self.identity.agent_id
        created = int(self.clock.now().timestamp() - (self.clock_offset or 0.0))
        headers = sign_request("GET", f"/v1/agents/{agent_id}/config", created, self.key)
        held = self._held_config()
        if isinstance(held.get("etag"), str):
            headers["If-None-Match"] = held["etag"]
        answer = await self._transport.fetch_config(agent_id, headers)
        self._note_offset(self._transport.clock_offset)
        match answer:
            case NotModified():
                log.debug("school=%s config unchanged (v%s)", self.school, held.get("version"))
                return
            case RetryLater(reason=reason):
                log.info("school=%s config fetch failed: %s", self.school, reason)
                return
            case Refused(status=status, error=error):
                if status in (401, 403) and self._took_new_key():
                    # `rotate-key` ran while this agent was running: central has retired the old key,
                    # so ask again at once, signed with the new one, instead of waiting for a report.
                    await self.fetch_config()
                    return
                log.warning("school=%s central refuses the config request (%d %s)", self.school, status, error)
                return
        try:
            # Central's own config keys as its newest config named them (two during a key rotation).
            trusted = trusted_central_keys(self.store, "config") or [self.identity.central_key()]
            verified = verify(answer.body, {keyid(k): k for k in trusted}, [CONFIG_TYPE])
            config = parse_config_payload(verified.payload)
        except ProtocolError as exc:
            log.error("school=%s config refused (%s): %s", self.school, exc.reason, exc.message)
            return
        refusal = _refusal(config, agent_id, held)
        if refusal is not None:
            log.error("school=%s config version %d refused: %s", self.school, config.version, refusal)
            return
        sections = config.settings.get(CONFIG_SECTIONS, {})
        held_settings = held.get("settings")
        changed = not isinstance(held_settings, dict) or held_settings.get(CONFIG_SECTIONS, {}) != sections
        reconfiguration = None
        if changed and self._configure is not None:
            try:
                if not isinstance(sections, dict):
                    raise ConfigError(f"config: {CONFIG_SECTIONS} must be an object")
                reconfiguration = self._configure(sections)
            except ConfigError as exc:
                log.error("school=%s config version %d refused: %s", self.school, config.version, exc.message)
                return
        with self.store.transaction() as conn:
            floor = raise_time_floor(self.store, conn, config.issued_at)
            record = {"version": config.version, "issued_at": config.issued_at, "settings": dict(config.settings)}
            if isinstance(answer.etag, str) and len(answer.etag) <= 200:
                record["etag"] = answer.etag
            self.store.set_setting(conn, "central_config", record)
        self.settings = SyncSettings.resolve(self.local, self.identity.sync, config.settings)
        self.batch_events = self.settings.max_batch_events
        self.batch_bytes = self.settings.max_batch_bytes
        overrides = self.config_report.overrides if self.config_report is not None else ()
        if reconfiguration is not None:
            await reconfiguration.apply()
            overrides = reconfiguration.overrides
        report = ConfigReport(config.version, overrides)
        if report != self.config_report:
            self.config_report = report
            self._need_state = True  # central learns the version in force with the next state
            self.kick()
            log.info(
                "school=%s config version %d in force (local overrides: %s)",
                self.school, config.version, ", ".join(overrides) or "none",
            )
        log.debug("school=%s config v%d, time floor %s", self.school, config.version, floor)

    # ------------------------------------------------------------------ outcomes

    def _succeeded(self) -> None:
        self.consecutive_failures = 0
        now = self.clock.now()
        # A cycle with an empty outbox sends nothing: storing its time (a transaction with an
        # fsync every report interval) is refreshed only every LAST_SYNC_REFRESH_S then.
        exchanged, self._exchanged = self._exchanged, False
        mono = self.clock.monotonic()
        if exchanged or self._sync_written_at is None or mono - self._sync_written_at >= LAST_SYNC_REFRESH_S:
            self._sync_written_at = mono
            self._quiet_write(lambda: self.store.put_setting("last_sync_at", now.isoformat()))
        for key in (REVOKED_KEY, FORK_KEY, REFUSED_KEY):
            self._signal(Signal(key, False, "agent", "critical", "", None, now, open_after=1, resolve_after=1))

    def _refused(self, key: str, title: str, message: str) -> None:
        self._need_state = True
        log.critical(
            "school=%s sync stopped: %s (data kept; retry in %.0fs)", self.school, message, self.settings.revoked_retry
        )
        self._signal(
            Signal(
                key, True, "agent", "critical", title, None, self.clock.now(), details={}, open_after=1, resolve_after=1,  # noqa: E501
                code=_TITLE_CODES.get(key, "agent.sync_refused"),
            )
        )

    def _quiet_write(self, write: Callable[[], Any]) -> None:
        try:
            write()
        except StoreError as exc:
            log.error("school=%s cannot record sync progress: %s", self.school, exc.message)
