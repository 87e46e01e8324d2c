"""Title codes: a signal's code and params reach the outbox event, the store and the local view in German."""

from __future__ import annotations

from agent.incidents.engine import IncidentEngine, list_incidents
from agent.monitors.interface import Signal
from agent.store.outbox import Outbox
from base.clock import FakeClock
from tests.agent.test_incidents import events


def _signal(clock: FakeClock, temperature: float) -> Signal:
    return Signal(
        key="cabinet-over-temperature:c1", bad=True, category="cabinet", severity="critical",
        title=f"Cabinet S1 over temperature ({temperature} °C)", subject="S1", at=clock.now(),
        code="cabinet.over_temperature", params={"cabinet": "S1", "temperature_c": temperature},
    )  # fmt: skip


def test_code_and_params_go_out_and_come_back_in_german(
    engine: IncidentEngine, outbox: Outbox, clock: FakeClock
) -> None:
    for _ in range(3):
        engine.observe([_signal(clock, 48.5)])
    (kind, data), = events(outbox)
    assert kind == "incident.opened"
    assert data["code"] == "cabinet.over_temperature" and data["params"] == {"cabinet": "S1", "temperature_c": 48.5}
    assert data["title"] == "Cabinet S1 over temperature (48.5 °C)"  # the English title stays for older readers
    (incident,) = list_incidents(engine.store)  # read back from SQLite, not from memory
    view = incident.to_json()
    assert view["titles"] == {"de": "S1: zu heiß (48,5 °C)", "en": "Cabinet S1 over temperature (48.5 °C)"}
    engine.observe([_signal(clock, 51.0)])  # the title changed: an update carries the new params
    kind, data = events(outbox)[-1]
    assert kind == "incident.updated" and data["params"]["temperature_c"] == 51.0 and data["code"]


def test_an_incident_without_code_falls_back_to_its_title(engine: IncidentEngine, clock: FakeClock) -> None:
    for _ in range(3):
        engine.observe([Signal("k", True, "host", "warning", "Something odd", None, clock.now())])
    (incident,) = list_incidents(engine.store)
    assert incident.to_json()["titles"] == {"de": "Something odd", "en": "Something odd"}




def test_the_cabinet_rules_give_codes_the_catalogue_renders() -> None:
    from agent.monitors.cabinets.meters import MeterReading
    from agent.monitors.cabinets.rules import CabinetState, evaluate
    from protocol.messages import render_title
    from tests.site.test_cabinets import BERLIN, cabinet, local

    signals = evaluate(cabinet(), MeterReading(0.4), None, local(2025, 3, 3, 22, 0), BERLIN, CabinetState())
    bad = [s for s in signals if s.bad]
    assert [s.code for s in bad] == ["cabinet.no_power"]
    assert render_title(bad[0].code, bad[0].params, "de", bad[0].title) == (
        "Ladeschrank 3 (Raum 12): kein Strom im Ladefenster (0,4 W)"
    )
    assert all(s.code and s.code.startswith("cabinet.") for s in signals)
