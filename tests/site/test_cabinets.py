"""Charging windows and cabinet rules with an injected clock; the cabinet monitor against simulated meters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.monitors.cabinets.meters import MeterError, MeterReading
from agent.monitors.cabinets.monitor import CabinetMonitor
from agent.monitors.cabinets.rules import CabinetState, evaluate
from agent.monitors.interface import Signal
from base.agentconfig.cabinets import CabinetConfig, MeterSpec, parse_cabinets
from base.agentconfig.window import parse_days, parse_window
from base.errors import ConfigError

BERLIN = ZoneInfo("Europe/Berlin")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def test_window_crossing_midnight_on_school_days() -> None:
    w = parse_window("15:00-07:00", "mon-fri")
    assert w.current(local(2025, 3, 3, 14, 59)) is None  # Monday before
    assert w.current(local(2025, 3, 3, 15, 0)) == (local(2025, 3, 3, 15, 0), local(2025, 3, 4, 7, 0))
    assert w.current(local(2025, 3, 4, 6, 59)) is not None  # Tuesday morning: Monday's window
    assert w.current(local(2025, 3, 4, 7, 0)) is None
    assert w.current(local(2025, 3, 8, 6, 0)) is not None  # Saturday morning: Friday's window
    assert w.current(local(2025, 3, 8, 16, 0)) is None  # Saturday afternoon: none starts
    assert w.last_end(local(2025, 3, 4, 8, 0)) == local(2025, 3, 4, 7, 0)
    assert w.last_end(local(2025, 3, 10, 8, 0)) == local(2025, 3, 10, 7, 0) - timedelta(days=2)  # Sat 07:00


def test_all_day_window_skip_dates_and_day_parsing() -> None:
    always = parse_window("00:00-00:00", "all")
    assert all(always.current(local(2025, 3, d, h, 0)) for d in range(1, 8) for h in (0, 12, 23))
    holiday = parse_window("15:00-07:00", "mon-fri", ["2025-03-03"])
    assert holiday.current(local(2025, 3, 3, 16, 0)) is None
    assert parse_days("fri-mon") == frozenset({4, 5, 6, 0})
    assert parse_days(["sat", "sun"]) == frozenset({5, 6})
    with pytest.raises(ConfigError):
        parse_days("someday")
    with pytest.raises(ConfigError):
        parse_window("3pm to 7am")


def cabinet(**kwargs: object) -> CabinetConfig:
    return CabinetConfig(id="3", name="Ladeschrank 3", room="Raum 12",
                         meter=MeterSpec("shelly-gen2", "http://x"), window=parse_window("15:00-07:00"),
                         **kwargs)  # type: ignore[arg-type]


def verdicts(signals: list[Signal]) -> dict[str, bool]:
    return {s.key.split(":")[0]: s.bad for s in signals}


def test_no_power_in_window_is_critical_and_fine_outside() -> None:
    cab, state = cabinet(), CabinetState()
    flat = MeterReading(power_w=0.0, switch_on=True)
    night = evaluate(cab, flat, None, local(2025, 3, 3, 22, 0).astimezone(UTC), BERLIN, state)
    assert verdicts(night)["cabinet-no-power"] is True
    bad = next(s for s in night if s.key == "cabinet-no-power:3")
    assert bad.severity == "critical" and bad.category == "cabinet" and bad.subject == "3"
    assert bad.details["name"] == "Ladeschrank 3" and "Ladeschrank 3" in bad.title
    noon = evaluate(cab, flat, None, local(2025, 3, 4, 12, 0), BERLIN, state)
    assert verdicts(noon)["cabinet-no-power"] is False


def test_switched_off_is_reported_instead_of_no_power() -> None:
    v = verdicts(evaluate(cabinet(), MeterReading(0.0, switch_on=False), None, local(2025, 3, 3, 20, 0), BERLIN,
                          CabinetState()))
    assert v["cabinet-switched-off"] is True and v["cabinet-no-power"] is False


def test_unreachable_meter_matters_in_the_window_only_and_leaves_other_verdicts_open() -> None:
    err = MeterError("timeout", "no reply")
    night = evaluate(cabinet(), None, err, local(2025, 3, 3, 20, 0), BERLIN, CabinetState())
    assert {s.key: s.bad for s in night} == {"cabinet-meter-unreachable:3": True, "cabinet-meter-unreadable:3": False}
    assert "timeout" in night[0].title
    noon = evaluate(cabinet(), None, err, local(2025, 3, 4, 12, 0), BERLIN, CabinetState())
    assert not noon[0].bad


def test_still_charging_after_the_window_latches_until_power_drops() -> None:
    cab, state = cabinet(charging_above_w=30.0), CabinetState()
    high, low = MeterReading(250.0, switch_on=True), MeterReading(5.0, switch_on=True)

    def still(reading: MeterReading, at: datetime) -> bool:
        return verdicts(evaluate(cab, reading, None, at, BERLIN, state))["cabinet-still-charging"]

    assert still(high, local(2025, 3, 4, 6, 30)) is False  # in the window: charging is the point
    assert still(high, local(2025, 3, 4, 7, 5)) is True  # just after the end
    assert still(high, local(2025, 3, 4, 11, 0)) is True  # latched while it keeps drawing
    assert still(low, local(2025, 3, 4, 11, 5)) is False
    assert still(high, local(2025, 3, 4, 12, 0)) is False  # someone charges at noon: not this rule


def test_over_temperature_from_reading_or_device_error() -> None:
    hot = evaluate(cabinet(max_temperature_c=60), MeterReading(100.0, temperature_c=72.0), None,
                   local(2025, 3, 4, 12, 0), BERLIN, CabinetState())
    assert verdicts(hot)["cabinet-over-temperature"] is True
    flagged = evaluate(cabinet(), MeterReading(100.0, errors=("overtemp",)), None, local(2025, 3, 4, 12, 0), BERLIN,
                       CabinetState())
    assert verdicts(flagged)["cabinet-over-temperature"] is True


def test_parse_cabinets_defaults_and_errors() -> None:
    cfg = parse_cabinets({"cabinets": {"cabinet": [{"name": "A", "meter": {"url": "http://10.0.0.5"}}]}})
    [cab] = cfg.cabinets
    assert cab.id == "1" and cab.meter.kind == "shelly-gen2" and cab.window.start.hour == 15
    assert cfg.interval == 60 and cfg.timezone == "Europe/Berlin"
    assert parse_cabinets({}).cabinets == ()
    for bad in (
        {"cabinets": {"cabinet": [{"meter": {"url": "ftp://x"}}]}},
        {"cabinets": {"cabinet": [{"meter": {"url": "http://x", "kind": "fritz"}}]}},
        {"cabinets": {"cabinet": [{"id": "a", "meter": {"url": "http://x"}}, {"id": "a", "meter": {"url": "http://y"}}]}},
        {"cabinets": {"timezone": "Mars/Olympus"}},
        {"cabinets": {"cabinet": [{"meter": {"url": "http://x"}, "window": "late"}]}},
    ):
        with pytest.raises(ConfigError):
            parse_cabinets(bad)


async def test_cabinet_monitor_against_the_sim(sim_factory, tag: str) -> None:  # type: ignore[no-untyped-def]
    sim = await sim_factory(school=tag, devices=0, receivers=0, printers=0, aps=0, cabinets=3,
                            window="00:00-00:00", days="all")
    section = {"cabinet": [
        {"id": str(c["index"]), "name": c["name"], "window": "00:00-00:00", "days": "all",
         "meter": {"kind": c["kind"], "url": c["url"], "timeout": 2}}
        for c in sim.state()["cabinets"]
    ]}
    monitor = CabinetMonitor(parse_cabinets({"cabinets": section}), school=tag)
    await monitor.start()
    try:
        now = datetime.now(UTC)
        first = await monitor.collect(now)
        assert not [s.key for s in first.signals if s.bad]
        assert {c["meter"] for c in first.snapshot["cabinets"].values()} == {"shelly-gen2", "shelly-gen1", "tasmota"}
        for fault in ("cabinet-no-power:1", "cabinet-switched-off:2", "meter-down:3"):
            await sim.set_fault(fault, True)
        second = await monitor.collect(now)
        assert sorted(s.key for s in second.signals if s.bad) == [
            "cabinet-meter-unreachable:3", "cabinet-no-power:1", "cabinet-switched-off:2",
        ]
        assert second.snapshot["cabinets"]["3"]["errors"] == {"http-503": 1}
        for fault in ("cabinet-no-power:1", "cabinet-switched-off:2", "meter-down:3"):
            await sim.set_fault(fault, False)
        third = await monitor.collect(now)
        assert not [s.key for s in third.signals if s.bad]
    finally:
        await monitor.stop()
