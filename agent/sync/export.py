"""``schulwart-agent export``: the unsent outbox as a signed bundle to carry to central by hand.

The bundle holds the same signed report envelopes sync would send; central imports them
idempotently (each ``(agent_id, seq)`` once). Nothing is acknowledged here: the events stay
queued until central acknowledges them, and they are marked as sent so thinning spares them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from agent.identity import load_agent_key, load_identity
from agent.store import Store
from agent.store.outbox import Outbox
from agent.sync.client import report_envelope
from base.clock import Clock
from base.errors import ConfigError
from base.secretfile import write_secret_file
from protocol.envelope import sign
from protocol.schema import BUNDLE_TYPE, build_bundle

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What went into the bundle."""

    events: int
    envelopes: int
    seq_from: int | None
    seq_to: int | None
    bytes: int


def export_bundle(
    store: Store, data_dir: Path, out: Path, clock: Clock, *, batch_events: int = 500, batch_bytes: int = 256 * 1024
) -> ExportResult:
    """Write the bundle to ``out`` (atomically, 0600: it is the school's history)."""
    identity = load_identity(store)
    if identity is None:
        raise ConfigError(f"the agent in {data_dir} is not enrolled: nothing can be signed for central")
    key = load_agent_key(data_dir, identity)
    outbox = Outbox(store, clock)
    now = clock.now()
    envelopes: list[bytes] = []
    count = 0
    first = last = None
    for events in outbox.unsent(batch_events, batch_bytes):
        envelopes.append(report_envelope(identity, key, events, now))
        count += len(events)
        first = events[0].seq if first is None else first
        last = events[-1].seq
    bundle = sign(build_bundle(identity.agent_id, identity.school_id, now, envelopes), BUNDLE_TYPE, key)
    write_secret_file(out, bundle)
    if last is not None:
        outbox.mark_sent(last)
    log.info(
        "school=%s exported %d events (seq %s..%s) in %d reports to %s",
        identity.school_id,
        count,
        first,
        last,
        len(envelopes),
        out,
    )
    return ExportResult(count, len(envelopes), first, last, len(bundle))
