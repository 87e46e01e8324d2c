"""The storage interface: everything central keeps goes through these two Protocols.

``Storage`` holds the short standalone reads and writes; ``Transaction`` is what the ingest
and enrollment logic uses inside one atomic unit (``async with store.transaction()``).
SQLite implements it now; a PostgreSQL backend implements the same methods later, so no
SQL lives outside ``central/storage``. Incidents and devices travel as plain dicts whose
keys are the column names listed in ``INCIDENT_FIELDS`` and ``DEVICE_FIELDS``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

INCIDENT_FIELDS = (
    "school_id",
    "origin",  # "agent" or "central"
    "agent_id",  # "" for school-wide central incidents
    "incident_id",
    "key",
    "category",
    "severity",
    "title",
    "subject",
    "status",  # "open" or "resolved"
    "status_seq",  # the agent sequence number that last decided status (see aggregate.py)
    "opened_at",
    "resolved_at",
    "acknowledged_by",
    "acknowledged_at",
    "notes",  # list of {"by", "text", "at"}
    "updated_at",  # central's clock: when this row last changed
    "code",  # the title's code in protocol.messages, or None
    "params",  # the title's params (an object), or None
)

# Time-series points older than this are dropped as new ones arrive (the school detail charts seven days).
SAMPLES_KEPT = timedelta(days=8)

DEVICE_FIELDS = (
    "school_id",
    "agent_id",
    "device_id",
    "class",
    "state",
    "data",
    "seq",
    "last_seen_at",
    "updated_at",
)


@dataclass(frozen=True, slots=True)
class SchoolRow:
    """A school and the carrier (Schulträger) it belongs to."""

    id: str
    name: str
    carrier: str
    created_at: str


@dataclass(frozen=True, slots=True)
class AgentRow:
    """An enrolled agent: its key, its progress and the watermarks of its current state."""

    agent_id: str
    school_id: str
    keyid: str
    public_key: bytes
    hostname: str
    version: str
    enrolled_at: str
    revoked_at: str | None
    acked_seq: int
    last_report_at: str | None
    clock_skew_s: float | None
    state_seq: int
    state_made_at: str | None
    devices_seq: int
    snapshot_seq: int
    revoked_by: str | None = None
    config_version: int | None = None  # the central configuration version its newest state says it runs
    config_overrides: tuple[str, ...] = ()  # dotted keys its school's own file sets otherwise

    @property
    def revoked(self) -> bool:
        """Whether reports from this agent are refused."""
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class ConfigLayer:
    """One version of one configuration layer that central's staff set (``config set``).

    ``version`` is the layer's number, unique and increasing across every layer; ``scope`` is
    ``carrier:NAME`` or ``school:ID``; ``toml`` is the text as given, ``settings`` the same as a
    JSON object text (dates and times as ISO text); ``created_at`` a stored time.
    """

    version: int
    scope: str
    toml: str
    settings: str
    created_at: str
    created_by: str


@dataclass(frozen=True, slots=True)
class CodeRow:
    """An enrollment code, known only by its hash."""

    code_hash: str
    school_id: str
    expires_at: str
    used_at: str | None


@dataclass(frozen=True, slots=True)
class ApiTokenRow:
    """A read-API bearer token; ``carrier`` None means every carrier."""

    name: str
    carrier: str | None


@dataclass(frozen=True, slots=True)
class ApiTokenInfo:
    """A read-API token as `api-token list` shows it (never the token or its hash); times RFC 3339."""

    name: str
    carrier: str | None
    created_at: str
    revoked_at: str | None
    revoked_by: str | None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """One line of the issued-technician-token log: who, scope, when, until when; never the token."""

    jti: str
    technician: str
    scope: str
    issued_at: str
    expires_at: str
    issued_by: str
    revoked_at: str | None
    revoked_by: str | None


@dataclass(frozen=True, slots=True)
class Revocation:
    """The newest revoked agent of a school: which, when (RFC 3339), by whom (an OS user name)."""

    agent_id: str
    at: str
    by: str | None


@dataclass(frozen=True, slots=True)
class SchoolSummary:
    """What the school list needs, read in one query (no history is replayed)."""

    school: SchoolRow
    agents: int
    last_report_at: str | None
    last_contact_at: str | None  # newest report, or enrollment when none yet
    open_critical: int
    open_warning: int
    open_info: int
    revoked_agents: int = 0
    last_revoked: Revocation | None = None
    history_last_report_at: str | None = None  # newest report of any agent, revoked ones too

    @property
    def open_incidents(self) -> int:
        """Open incidents of every severity."""
        return self.open_critical + self.open_warning + self.open_info


@dataclass(frozen=True, slots=True)
class UserRow:
    """A staff member of the dashboard. ``role``: admin, staff or carrier (then ``carrier`` is set)."""

    name: str
    role: str
    carrier: str | None
    password_hash: str
    created_at: str


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A logged-in browser: its user and the CSRF token every form of the session must carry."""

    user: UserRow
    csrf: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class OverviewRow:
    """One school's row on the dashboard overview, read in a few grouped queries.

    ``aps_down`` counts open ``ap-down`` incidents; ``cabinets_down`` the cabinets with an open
    no-power, switched-off or meter-unreachable incident; ``tablets_today`` the tablets seen since
    the given local midnight, ``tablets_usual`` those seen within the given recent period;
    ``max_clock_skew_s`` the largest absolute skew of its active agents (seconds).
    """

    summary: SchoolSummary
    aps_down: int
    cabinets_down: int
    tablets_today: int
    tablets_usual: int
    agent_version: str | None
    max_clock_skew_s: float | None


@dataclass(frozen=True, slots=True)
class Sample:
    """One point of a time series: ``series`` is ``cabinet:<id>`` (watts; ``flag`` 1 inside the
    charging window) or ``devices:<class>`` (devices present)."""

    series: str
    at: str
    value: float | None
    flag: int | None


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """Filters of GET /v1/incidents; None means no filter."""

    status: str | None = "open"
    school_id: str | None = None
    carrier: str | None = None
    severity: str | None = None
    since: str | None = None
    limit: int = 1000
    category: str | None = None


@dataclass(frozen=True, slots=True)
class EventRow:
    """One stored event of an agent's history."""

    agent_id: str
    seq: int
    school_id: str
    kind: str
    at: str
    digest: str
    body: str


@dataclass(frozen=True, slots=True)
class IncidentStep:
    """One step of an incident's timeline: the incident's identity, ``at`` (a stored time), the
    ``action`` (opened, updated, resolved, acknowledged, note, staff-ack, staff-note), who and what
    (``by``, ``text``, or None), and the incident's severity and title as they were after the step."""

    school_id: str
    origin: str
    agent_id: str
    incident_id: str
    at: str
    action: str
    by: str | None
    text: str | None
    severity: str
    title: str

    @classmethod
    def of(cls, incident: Mapping[str, Any], at: str, action: str, by: str | None, text: str | None) -> IncidentStep:
        """The step ``action`` on an incident row (``INCIDENT_FIELDS``) as the row is now."""
        return cls(
            incident["school_id"], incident["origin"], incident["agent_id"], incident["incident_id"], at, action, by,
            text, incident["severity"], incident["title"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class AlertThread:
    """What one channel was told about one incident episode (or one digest); the key deduplicates.

    ``mode``: ``single`` (its own messages), ``digested`` (announced in a digest, no follow-ups),
    ``suppressed`` (opened on a holiday with silence: never sent) or ``digest`` (the digest itself).
    ``state``: ``open`` while a follow-up may still be due, else ``closed``. ``external_ref`` is
    what the channel answered for the first message (a Zammad ticket id), for the follow-ups.
    """

    channel: str
    thread: str
    school_id: str | None
    origin: str | None
    agent_id: str | None
    incident_id: str | None
    cause: str
    mode: str
    state: str
    acked: bool
    external_ref: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class AlertDelivery:
    """One message in the alert outbox.

    ``kind``: opened, acknowledged, resolved or digest; ``payload``: JSON of the facts it is worded
    from; ``status``: pending, sent, dead (the dead-letter list) or cancelled (resolved before it
    went out). Times are RFC 3339 UTC text; ``lease_until`` is set while a sender holds it.
    """

    id: int
    channel: str
    thread: str
    kind: str
    school_id: str | None
    payload: str
    status: str
    attempts: int
    next_attempt_at: str
    lease_until: str | None
    last_error: str | None
    created_at: str
    sent_at: str | None


class Transaction(Protocol):
    """Reads and writes inside one atomic unit; the writer lock is held throughout."""

    async def get_agent(self, agent_id: str) -> AgentRow | None:
        """The agent as of now, inside the lock."""

    async def event_digests(self, agent_id: str, seq_from: int, seq_to: int) -> dict[int, str]:
        """Digests of the held events of that range."""

    async def insert_events(self, rows: Sequence[EventRow], received_at: str) -> None:
        """Store events; a duplicate (agent_id, seq) raises (it cannot happen under the lock)."""

    async def record_contact(
        self, agent_id: str, acked_seq: int, at: str, clock_skew_s: float | None, version: str | None
    ) -> None:
        """Set the agent's ack and last report time (and skew, when known)."""

    async def set_agent_state(self, agent_id: str, last_seq: int, made_at: str, state_json: str) -> None:
        """Keep this state payload as the agent's newest."""

    async def set_devices_seq(self, agent_id: str, seq: int) -> None:
        """Remember the sequence of the newest state that listed devices."""

    async def set_agent_config_report(self, agent_id: str, version: int, overrides: Sequence[str]) -> None:
        """Keep the configuration version the agent's newest state runs and the keys its own file overrides."""

    async def set_snapshot(self, agent_id: str, snapshot_json: str, seq: int, at: str) -> None:
        """Keep the agent's newest health snapshot."""

    async def get_incident(self, school_id: str, origin: str, agent_id: str, incident_id: str) -> dict[str, Any] | None:
        """One incident row, or None."""

    async def put_incident(self, row: dict[str, Any]) -> None:
        """Insert or replace one incident row."""

    async def open_agent_incidents(self, agent_id: str) -> list[dict[str, Any]]:
        """The open incidents an agent reported."""

    async def get_incidents(
        self, school_id: str, origin: str, agent_id: str, incident_ids: Collection[str]
    ) -> dict[str, dict[str, Any]]:
        """The incident rows among ``incident_ids`` that exist, by incident_id (one batch's worth: any number)."""

    async def put_incidents(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or replace incident rows (``INCIDENT_FIELDS`` each; at most one per key), in one statement."""

    async def get_devices(
        self, school_id: str, agent_id: str, device_ids: Collection[str]
    ) -> dict[str, dict[str, Any]]:
        """The device rows among ``device_ids`` that exist, by device_id (any number).

        Each row has every ``DEVICE_FIELDS`` key but ``data`` (folding a batch never reads it, and
        decoding it for every device of a batch cost more than the lookup itself).
        """

    async def put_devices(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or replace device rows (``DEVICE_FIELDS`` each; at most one per key), in one statement.

        ``data`` is the data object, or its JSON text when the caller has that already.
        """

    async def agent_devices(self, agent_id: str) -> list[dict[str, Any]]:
        """Every device row of one agent."""

    async def resolve_central_incident(self, school_id: str, incident_id: str, at: str) -> bool:
        """Resolve a central incident if open; True when it was open."""

    async def raise_central_incident(
        self,
        school_id: str,
        incident_id: str,
        category: str,
        severity: str,
        title: str,
        subject: str | None,
        at: str,
        code: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> bool:
        """Open a central incident unless it is open already; True when it was opened."""

    async def alert_candidates(self) -> list[dict[str, Any]]:
        """Incidents alert routing must look at: every open one, and every one with an open alert thread.

        Each is an incident row plus ``carrier`` and ``school_name``.
        """

    async def get_alert_thread(self, channel: str, thread: str) -> AlertThread | None:
        """One alert thread, or None."""

    async def put_alert_thread(self, row: AlertThread) -> None:
        """Insert or replace one alert thread."""

    async def open_alert_channels(self, thread: str) -> list[str]:
        """The channels on which this thread is still open."""

    async def add_alert_delivery(
        self, channel: str, thread: str, kind: str, school_id: str | None, payload: str, due: str, at: str
    ) -> int:
        """Queue a message; its id, or 0 when that (channel, thread, kind) is queued already."""

    async def get_alert_delivery_of(self, channel: str, thread: str, kind: str) -> AlertDelivery | None:
        """The message of that kind in that thread, or None."""

    async def cancel_alert_deliveries(self, channel: str, thread: str, at: str) -> int:
        """Mark the thread's pending messages cancelled; how many were."""

    async def count_alert_threads(self, channel: str, cause: str, since: str) -> int:
        """Incident threads of one cause on one channel begun at or after ``since`` (digests excluded)."""

    async def gathering_digest(self, channel: str, cause: str) -> AlertDelivery | None:
        """A digest of this cause on this channel not yet attempted (more members may join), or None."""

    async def set_alert_payload(self, delivery_id: int, payload: str) -> None:
        """Replace a queued message's facts (a digest that gained members)."""

    async def find_code(self, code_hash: str) -> CodeRow | None:
        """An enrollment code by its hash."""

    async def use_code(self, code_hash: str, at: str, agent_id: str) -> None:
        """Mark a code used."""

    async def keyid_enrolled(self, keyid: str) -> bool:
        """Whether any agent (revoked or not) has this key, or had it before a key rotation."""

    async def retired_keys(self, agent_id: str) -> list[tuple[str, bytes, str]]:
        """The keys an agent rotated away from: (keyid, raw public key, successor keyid), oldest first."""

    async def rotate_agent_key(self, agent_id: str, new_keyid: str, new_public_key: bytes, at: str) -> None:
        """Replace the agent's key with the new one and retire the old (recorded with its successor)."""

    async def add_agent(
        self, agent_id: str, school_id: str, keyid: str, public_key: bytes, hostname: str, version: str, at: str
    ) -> None:
        """Create an agent."""

    async def log_incident(
        self, incident: dict[str, Any], at: str, action: str, by: str | None, text: str | None
    ) -> None:
        """Append one step (opened, updated, resolved, acknowledged, note) to an incident's timeline;
        ``incident`` is the row (its identity, severity and title are recorded), ``at`` a stored time."""

    async def log_incidents(self, steps: Sequence[IncidentStep]) -> None:
        """Append timeline steps in the given order, in one statement."""

    async def add_samples(self, school_id: str, agent_id: str, samples: Sequence[Sample]) -> None:
        """Keep time-series points (a point already held at the same time is replaced)."""

    async def present_device_counts(self, school_id: str) -> dict[str, int]:
        """Devices of a school that are not lost, by class."""

    async def devices_changed(self, school_id: str) -> None:
        """Move the school's device generation on: its present devices by class may have changed
        (a device appeared, was lost, came back or changed class), so kept counts are stale."""

    async def kept_device_counts(self, school_id: str) -> tuple[int, dict[str, int] | None]:
        """The school's device generation, and the counts kept for it at that generation (None when
        the kept counts are older, or there are none). Read the generation before counting."""

    async def keep_device_counts(self, school_id: str, generation: int, counts: Mapping[str, int]) -> None:
        """Keep ``present_device_counts`` as made at device ``generation`` (from ``kept_device_counts``)."""


class Storage(Protocol):
    """Central's database."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """One atomic unit: commit on leaving, roll back on an exception."""

    async def close(self) -> None:
        """Release the connection."""

    async def add_school(self, school_id: str, name: str, carrier: str, at: str) -> None:
        """Create a school; AlreadyExistsError if the id is taken."""

    async def get_school(self, school_id: str) -> SchoolRow | None:
        """One school, or None."""

    async def list_schools(self, carrier: str | None = None) -> list[SchoolRow]:
        """Schools, optionally of one carrier, by id."""

    async def carrier_exists(self, carrier: str) -> bool:
        """Whether any school belongs to this carrier."""

    async def school_summaries(self, carrier: str | None = None, school_id: str | None = None) -> list[SchoolSummary]:
        """Per-school counts for the status list."""

    async def add_enroll_code(self, code_hash: str, school_id: str, expires_at: str, at: str) -> None:
        """Store a new enrollment code hash."""

    async def agent_by_keyid(self, keyid: str) -> AgentRow | None:
        """The agent enrolled with this key (revoked ones too)."""

    async def get_agent(self, agent_id: str) -> AgentRow | None:
        """One agent, or None."""

    async def list_agents(self, school_id: str | None = None) -> list[AgentRow]:
        """Agents, optionally of one school."""

    async def revoke_agent(self, agent_id: str, at: str, by: str | None = None) -> bool:
        """Revoke (recording when and by whom); False when no such agent."""

    async def agent_snapshot(self, agent_id: str) -> tuple[str | None, str | None]:
        """(snapshot JSON, its time) of one agent."""

    async def add_api_token(self, token_hash: str, name: str, carrier: str | None, at: str) -> None:
        """Store a read-API token hash."""

    async def find_api_token(self, token_hash: str) -> ApiTokenRow | None:
        """A read-API token by its hash; None when unknown or revoked."""

    async def api_token_name_active(self, name: str) -> bool:
        """Whether an unrevoked read-API token has this name."""

    async def list_api_tokens(self) -> list[ApiTokenInfo]:
        """Every read-API token, revoked ones too, oldest first."""

    async def revoke_api_token(self, name: str, at: str, by: str) -> int:
        """Revoke the unrevoked read-API tokens of this name; how many were revoked."""

    async def add_issued_token(self, token: IssuedToken) -> None:
        """Log an issued technician token (never the token itself)."""

    async def list_issued_tokens(self, expired_before: str | None = None) -> list[IssuedToken]:
        """The issued-token log, newest first; with ``expired_before`` only tokens expiring after it."""

    async def revoke_issued_token(self, jti: str, at: str, by: str) -> bool:
        """Mark a technician token revoked; False when no such jti."""

    async def revoked_token_ids(self, now: str) -> list[str]:
        """The jtis of revoked technician tokens that have not expired yet."""

    # ------------------------------------------------------------------ agent configuration

    async def add_config_layer(self, scope: str, toml: str, settings: str, at: str, by: str) -> int:
        """Store a new version of the ``scope`` layer (``carrier:NAME``/``school:ID``); its version number."""

    async def config_layers(self, scopes: Sequence[str]) -> list[ConfigLayer]:
        """The newest version of each of these scopes' layers (a scope never set is left out), in ``scopes`` order."""

    async def config_history(self, scope: str | None, limit: int = 100) -> list[ConfigLayer]:
        """Versions of one scope's layer (None: of every scope), newest first."""

    async def list_incidents(self, query: IncidentQuery) -> list[dict[str, Any]]:
        """Incidents matching the filters, newest change first."""

    async def list_devices(self, school_id: str) -> list[dict[str, Any]]:
        """The current devices of one school."""

    async def count_events(self, agent_id: str) -> int:
        """How many events of an agent are held (tests and `agent list`)."""

    async def get_events(self, agent_id: str) -> list[EventRow]:
        """Every held event of an agent, by seq."""

    async def raise_central_incident(
        self,
        school_id: str,
        incident_id: str,
        category: str,
        severity: str,
        title: str,
        subject: str | None,
        at: str,
        code: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> bool:
        """Open a central incident unless it is open already; True when it was opened."""

    async def resolve_central_incident(self, school_id: str, incident_id: str, at: str) -> bool:
        """Resolve a central incident if open; True when it was open."""

    # ------------------------------------------------------------------ dashboard

    async def add_user(self, name: str, role: str, carrier: str | None, password_hash: str, at: str) -> None:
        """Create a staff user; AlreadyExistsError if the name is taken."""

    async def get_user(self, name: str) -> UserRow | None:
        """One user, or None."""

    async def list_users(self) -> list[UserRow]:
        """Every user, by name."""

    async def remove_user(self, name: str) -> bool:
        """Delete a user and end its sessions; False when there is no such user."""

    async def set_password(self, name: str, password_hash: str, at: str) -> bool:
        """Replace a user's password hash and end its sessions; False when there is no such user."""

    async def add_session(self, id_hash: str, user_name: str, csrf: str, at: str, expires_at: str) -> None:
        """Store a new session (only the SHA-256 of its id)."""

    async def get_session(self, id_hash: str, now: str) -> SessionRow | None:
        """The session with this id hash if it has not expired and its user still exists."""

    async def delete_session(self, id_hash: str) -> None:
        """End one session (logout); expired sessions of anyone are removed too."""

    async def overview(self, carrier: str | None, today_since: str, usual_since: str) -> list[OverviewRow]:
        """Every school's overview row (optionally one carrier's); times are stored-format UTC."""

    async def get_incident(self, school_id: str, origin: str, agent_id: str, incident_id: str) -> dict[str, Any] | None:
        """One incident row (with its school's ``carrier``), or None."""

    async def incident_log(self, school_id: str) -> list[dict[str, Any]]:
        """Every recorded step of a school's incidents, oldest first (keys: the incident identity,
        ``at``, ``action``, ``by``, ``text``, ``source``, ``severity``, ``title``)."""

    async def staff_acknowledge(
        self, school_id: str, origin: str, agent_id: str, incident_id: str, by: str, at: str
    ) -> bool:
        """Central staff acknowledge an incident (recorded with their name); False when no such incident."""

    async def staff_note(
        self, school_id: str, origin: str, agent_id: str, incident_id: str, by: str, text: str, at: str
    ) -> bool:
        """Central staff add a note to an incident; False when no such incident."""

    async def samples(self, school_id: str, since: str) -> list[Sample]:
        """A school's time-series points since ``since``, by series and time."""

    async def staff_steps(self, school_id: str, agent_id: str, since: str, limit: int = 200) -> list[dict[str, Any]]:
        """Central staff's acks and notes on one agent's incidents that are open or resolved at/after ``since``.

        Oldest first (steps of the same moment in the order they were made), at most the newest
        ``limit``; each ``{"incident_id", "action" ("staff-ack" or
        "staff-note"), "by", "text" (None for an ack), "at"}`` (a stored time).
        """

    # ------------------------------------------------------------------ alert routing

    async def claim_alert_deliveries(
        self, now: str, lease_until: str, limit: int, delivery_id: int | None = None
    ) -> list[AlertDelivery]:
        """Lease due messages to this sender, oldest first; a message waits while an earlier one of its
        thread is pending or dead (so follow-ups never overtake). ``delivery_id`` claims only that one."""

    async def alert_delivered(self, delivery_id: int, at: str, external_ref: str | None) -> None:
        """Mark a message sent; a non-None ``external_ref`` is kept on its thread for the follow-ups."""

    async def alert_failed(
        self, delivery_id: int, attempts: int, status: str, next_attempt_at: str, error: str
    ) -> None:
        """Record a failed attempt: back to ``pending`` at ``next_attempt_at``, or ``dead``."""

    async def alert_thread_ref(self, channel: str, thread: str) -> str | None:
        """The channel's reference for the thread's first message (a Zammad ticket id), or None."""

    async def list_alert_deliveries(self, status: str | None, limit: int = 200) -> list[AlertDelivery]:
        """Messages of one status (None: every status), newest first."""

    async def requeue_alert_delivery(self, delivery_id: int, at: str) -> AlertDelivery | None:
        """A dead message back to pending with no attempts, due at ``at``; None when it is not dead."""

    # ------------------------------------------------------------------ shared failure limits

    async def count_failures(self, scope: str, source: str, since: str) -> int:
        """Failed attempts of one source in one scope at or after ``since`` (stored-format UTC)."""

    async def add_failure(self, scope: str, source: str, at: str, forget_before: str) -> None:
        """Record a failed attempt; the scope's attempts before ``forget_before`` are deleted."""
