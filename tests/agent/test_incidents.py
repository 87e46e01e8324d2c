"""The incident engine: hysteresis, flapping, one event per transition, restarts, privacy."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from agent.incidents.engine import IncidentEngine, list_incidents
from agent.monitors.interface import Signal
from agent.privacy import Privacy
from agent.store import Store
from agent.store.outbox import Outbox
from base.clock import FakeClock


def sig(clock: FakeClock, bad: bool, key: str = "ap-down:ap-7", **kw: object) -> Signal:
    base = {
        "category": "wlan",
        "severity": "warning",
        "title": "Access point down",
        "subject": "ap-7",
        "at": clock.now(),
    }
    base.update(kw)
    return Signal(key=key, bad=bad, **base)  # type: ignore[arg-type]


def events(outbox: Outbox) -> list[tuple[str, dict]]:
    return [(k, json.loads(d)) for k, d in outbox.store.query("SELECT kind, data FROM outbox ORDER BY seq")]


def feed(engine: IncidentEngine, clock: FakeClock, pattern: str, **kw: object) -> None:
    for ch in pattern:
        engine.observe([sig(clock, ch == "x", **kw)])
        clock.advance(30)


def test_opens_after_n_bad_and_resolves_after_m_good(engine: IncidentEngine, outbox: Outbox, clock: FakeClock) -> None:
    feed(engine, clock, "xx")
    assert engine.open_incidents() == []
    feed(engine, clock, "x")
    (incident,) = engine.open_incidents()
    assert incident.opened_at == clock.now() - timedelta(seconds=30)
    feed(engine, clock, "..")
    assert len(engine.open_incidents()) == 1
    feed(engine, clock, ".")
    assert engine.open_incidents() == []
    assert [k for k, _ in events(outbox)] == ["incident.opened", "incident.resolved"]


def test_flapping_opens_one_incident_not_fifty(engine: IncidentEngine, outbox: Outbox, clock: FakeClock) -> None:
    feed(engine, clock, "xxx" + "x." * 50 + "xx")
    (incident,) = engine.open_incidents()
    assert incident.flap_count == 50
    assert [k for k, _ in events(outbox)] == ["incident.opened"]
    feed(engine, clock, "...")
    kinds = [k for k, _ in events(outbox)]
    assert kinds == ["incident.opened", "incident.resolved"]
    assert events(outbox)[1][1]["flap_count"] == 50


def test_isolated_bad_never_opens(engine: IncidentEngine, outbox: Outbox, clock: FakeClock) -> None:
    feed(engine, clock, "xx.xx.x.xx." * 10)
    assert engine.open_incidents() == []
    assert events(outbox) == []


def test_severity_change_is_one_update(engine: IncidentEngine, outbox: Outbox, clock: FakeClock) -> None:
    feed(engine, clock, "xxx")
    feed(engine, clock, "xxx", severity="critical")
    kinds = [k for k, _ in events(outbox)]
    assert kinds == ["incident.opened", "incident.updated"]
    assert events(outbox)[1][1]["severity"] == "critical"


def test_per_signal_hysteresis_override(engine: IncidentEngine, outbox: Outbox, clock: FakeClock) -> None:
    engine.observe(
        [sig(clock, True, key="agent-revoked", category="agent", subject=None, open_after=1, resolve_after=1)]
    )
    assert len(engine.open_incidents()) == 1
    engine.observe(
        [sig(clock, False, key="agent-revoked", category="agent", subject=None, open_after=1, resolve_after=1)]
    )
    assert engine.open_incidents() == []


def test_acknowledge_is_one_event(engine: IncidentEngine, outbox: Outbox, clock: FakeClock) -> None:
    feed(engine, clock, "xxx")
    (incident,) = engine.open_incidents()
    acked = engine.acknowledge(incident.id, "tech-anna")
    assert acked.acknowledged_by == "tech-anna"
    kinds = [k for k, _ in events(outbox)]
    assert kinds == ["incident.opened", "incident.acknowledged"]
    assert events(outbox)[1][1] == {"id": incident.id, "by": "tech-anna", "at": events(outbox)[1][1]["at"]}


def test_open_incident_survives_restart_with_same_id(
    data_dir: Path, store: Store, privacy: Privacy, clock: FakeClock
) -> None:
    engine = IncidentEngine(store, Outbox(store, clock), privacy, clock, open_after=1, resolve_after=2)
    feed(engine, clock, "x")
    (before,) = engine.open_incidents()
    again = IncidentEngine(store, Outbox(store, clock), privacy, clock, open_after=1, resolve_after=2)
    assert [i.id for i in again.open_incidents()] == [before.id]
    feed(again, clock, "x")  # still bad after restart: no second incident
    assert len(list_incidents(store)) == 1
    feed(again, clock, "..")
    assert again.open_incidents() == []
    (resolved,) = list_incidents(store)
    assert resolved.id == before.id and resolved.resolved_at is not None


def test_reopening_after_resolve_is_a_new_incident(engine: IncidentEngine, clock: FakeClock, store: Store) -> None:
    feed(engine, clock, "xxx...xxx")
    ids = {i.id for i in list_incidents(store)}
    assert len(ids) == 2


def test_device_subject_leaves_only_as_pseudonym(engine: IncidentEngine, outbox: Outbox, clock: FakeClock) -> None:
    feed(
        engine,
        clock,
        "xxx",
        key="ipad-offline:Lenas iPad",
        subject="Lenas iPad",
        category="device",
        details={"name": "Lenas iPad", "battery": 12},
    )
    _, data = events(outbox)[0]
    assert "Lenas" not in json.dumps(data)
    assert data["subject"].startswith("d-") and data["key"].startswith("ipad-offline:d-")
    assert data["details"] == {"battery": 12}
    (local,) = engine.open_incidents()
    assert local.subject == "Lenas iPad"  # technicians on site see the real name


def _stored_last_seen(store: Store) -> str:
    (row,) = store.query("SELECT last_seen FROM incidents WHERE resolved_at IS NULL")
    return str(row[0])


def test_a_steady_open_incident_is_not_rewritten_every_round(
    engine: IncidentEngine, store: Store, clock: FakeClock
) -> None:
    # Each rewrite is a transaction with an fsync; a steady incident's row is refreshed every 5 min.
    feed(engine, clock, "xxx")
    stored = _stored_last_seen(store)
    changes = store.conn.total_changes
    feed(engine, clock, "x" * 9)  # 4.5 min of rounds, nothing but last_seen moves
    assert store.conn.total_changes == changes
    assert _stored_last_seen(store) == stored
    (incident,) = engine.open_incidents()
    assert incident.last_seen == clock.now() - timedelta(seconds=30)  # memory (state payload) is current
    feed(engine, clock, "x")  # 5 min since the row was written
    assert store.conn.total_changes == changes + 1
    assert _stored_last_seen(store) != stored
    (row,) = list_incidents(store, open_only=True)
    assert row.last_seen == incident.last_seen + timedelta(seconds=30)


def test_a_flap_and_a_resolution_are_written_at_once(engine: IncidentEngine, store: Store, clock: FakeClock) -> None:
    feed(engine, clock, "xxx.x")
    (row,) = list_incidents(store, open_only=True)
    assert row.flap_count == 1
    feed(engine, clock, "...")
    (row,) = list_incidents(store)
    assert row.resolved_at is not None
    assert row.last_seen == clock.now() - timedelta(seconds=30 * 4)  # the last bad round, not a stale refresh


def test_an_acknowledgement_keeps_the_fresh_last_seen(engine: IncidentEngine, store: Store, clock: FakeClock) -> None:
    feed(engine, clock, "xxxxx")
    (fresh,) = engine.open_incidents()
    acked = engine.acknowledge(fresh.id, "tech")
    assert acked.last_seen == fresh.last_seen
    (row,) = list_incidents(store, open_only=True)
    assert row.last_seen == fresh.last_seen and row.acknowledged_by == "tech"
