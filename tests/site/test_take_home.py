"""Take-home tablets (1:1): absent outside school hours is normal, "not seen" counts school days only.

The calendar rules run with exact times; the monitor test runs over real multicast on IPv4
loopback with a tablet that leaves (an mDNS goodbye) and a chosen ``now`` for each round.
"""

from __future__ import annotations

import asyncio
import time as timer
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.monitors.discovery.config import parse_discovery
from agent.monitors.discovery.monitor import DiscoveryMonitor
from agent.monitors.discovery.presence import NotSeenList, SchoolCalendar, holiday_dates
from agent.monitors.discovery.tracker import DeviceTracker
from base.errors import ConfigError
from sim.mdns import Announcer, tablet_services
from tests.site.test_tracker import mobdev

BERLIN = ZoneInfo("Europe/Berlin")
CALENDAR = SchoolCalendar.parse("07:30-15:00", ["mon-fri"], ["2025-04-14..2025-04-25"], BERLIN)


def local(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=BERLIN)


def gone_tablets(last_seen: datetime, count: int = 1) -> DeviceTracker:
    """Tablets last seen at ``last_seen`` that said goodbye then."""
    inv = DeviceTracker()
    for i in range(count):
        obs = mobdev(f"12:34:56:78:90:b{i}", f"pupil{i}.local.")
        inv.observe(obs, last_seen)
        inv.service_removed(obs.service_name, last_seen)
    return inv


def test_school_hours_and_days() -> None:
    assert CALENDAR.in_school_hours(local(2025, 3, 3, 10))  # Monday morning
    assert not CALENDAR.in_school_hours(local(2025, 3, 3, 15))  # school is out at 15:00
    assert not CALENDAR.in_school_hours(local(2025, 3, 8, 10))  # Saturday
    assert not CALENDAR.in_school_hours(local(2025, 4, 16, 10))  # Easter holidays
    assert CALENDAR.in_school_hours(local(2025, 3, 3, 9).astimezone(UTC))  # any zone in, local hours out


def test_school_days_missed_counts_only_finished_school_days() -> None:
    friday = local(2025, 3, 7, 14)
    assert CALENDAR.school_days_missed(friday, local(2025, 3, 10, 14, 59), 99) == 0  # Monday not over yet
    assert CALENDAR.school_days_missed(friday, local(2025, 3, 10, 15), 99) == 1
    assert CALENDAR.school_days_missed(friday, local(2025, 3, 19, 7, 30), 99) == 7  # Mon-Fri, Mon, Tue
    assert CALENDAR.school_days_missed(friday, local(2025, 3, 19, 7, 30), 3) == 3  # stops at enough
    # Two weeks of holidays count nothing.
    before_easter = local(2025, 4, 11, 12)
    assert CALENDAR.school_days_missed(before_easter, local(2025, 4, 28, 7, 30), 99) == 0


def test_not_seen_counts_school_days_for_take_home_tablets_and_calendar_days_otherwise() -> None:
    friday = local(2025, 4, 11, 12)  # the last day before the Easter holidays
    after_holidays = local(2025, 4, 28, 7, 31)  # 17 calendar days, no school day
    take_home = NotSeenList(timedelta(days=7), time(7, 30), BERLIN, CALENDAR)
    plain = NotSeenList(timedelta(days=7), time(7, 30), BERLIN)
    devices = gone_tablets(friday, 2).devices()
    home = take_home.evaluate(devices, after_holidays)
    assert not home.bad and home.details["count"] == 0 and home.details["school_days"] is True
    listed = plain.evaluate(devices, after_holidays)
    assert listed.bad and listed.details["count"] == 2 and "school days" not in listed.title
    # Seven finished school days later the take-home tablets are listed too, and the title says how it counts.
    later = take_home.evaluate(devices, local(2025, 5, 7, 7, 31))  # Mon 28 Apr … Tue 6 May, 1 May a school day
    assert later.bad and later.details["count"] == 2 and "7+ school days" in later.title


def test_config_keys_are_checked() -> None:
    config = parse_discovery({"discovery": {"tablets_go_home": True, "school_hours": "08:00-13:00",
                                            "school_days": "mon-fri", "school_holidays": [date(2025, 12, 24)]}})
    assert config.tablets_go_home and config.school_days == ("mon-fri",)
    assert config.school_holidays == ("2025-12-24",)
    for bad in ({"school_hours": "15:00-07:30"}, {"school_days": ["monday"]},
                {"school_holidays": ["2025-09-03..2025-07-24"]}):
        with pytest.raises(ConfigError):
            parse_discovery({"discovery": bad})
    assert len(holiday_dates(["2025-07-24..2025-09-03"])) == 42


# -- the monitor, over real mDNS ------------------------------------------------------------------------


@pytest.fixture
async def announcer() -> AsyncIterator[Announcer]:
    announcer = Announcer("127.0.0.1")
    await announcer.start()
    yield announcer
    await announcer.stop()


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    started = timer.monotonic()
    while not predicate():
        if timer.monotonic() - started > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def missing(signals: Any, device_id: str) -> list[bool]:
    return [s.bad for s in signals if s.key == f"device-missing:{device_id}"]


@pytest.mark.usefixtures("fast_mdns")
@pytest.mark.parametrize("go_home", [True, False])
async def test_a_take_home_tablet_away_after_school_is_normal(announcer: Announcer, tag: str, go_home: bool) -> None:
    # Tablets must stay present here so that absence would be judged at all: a school that wants
    # to know when an iPad goes astray during the school day.
    section = {"interfaces": ["127.0.0.1"], "must_stay_present": ["tablet"], "missing_after": "30m",
               "probe_timeout": 0.5, "liveness_interval": 0, "tablets_go_home": go_home}
    monitor = DiscoveryMonitor(parse_discovery({"discovery": section}))
    await monitor.start()
    try:
        mac = f"a4:83:e7:{tag[1:3]}:{tag[3:5]}:{tag[5:7]}"
        services = tablet_services(f"Lenas iPad {tag}", f"lenas-ipad-{tag}", mac, "127.0.0.1")
        await announcer.register(services)
        device_id = f"mac:{mac}"
        await wait_for(lambda: monitor.tracker.get(device_id) is not None)
        await announcer.unregister(services)  # school is out: the iPad goes home (nothing listens on its ports)
        await wait_for(lambda: monitor.tracker.get(device_id).state == "absent")  # type: ignore[union-attr]
        # A weekday evening, hours after it left: absence outside school hours.
        evening = datetime.now(BERLIN).replace(hour=19, minute=0) + timedelta(days=7 - datetime.now(BERLIN).weekday())
        report = await monitor.collect(evening)
        assert missing(report.signals, device_id) == ([] if go_home else [True])
        # The next morning, minutes after school began: it still has time to come back.
        morning = evening.replace(hour=7, minute=45) + timedelta(days=1)
        report = await monitor.collect(morning)
        assert missing(report.signals, device_id) == ([False] if go_home else [True])
        # Still gone an hour into the school day: now it is missing for a take-home school too.
        report = await monitor.collect(morning + timedelta(hours=1))
        assert missing(report.signals, device_id) == [True]
    finally:
        await monitor.stop()


@pytest.mark.parametrize(("hour", "at_school"), [(10, True), (18, False)])
async def test_the_sim_announces_take_home_tablets_only_in_school_hours(  # type: ignore[no-untyped-def]
    sim_factory, tag: str, hour: int, at_school: bool
) -> None:
    monday = datetime(2025, 3, 3, hour, tzinfo=BERLIN)
    sim = await sim_factory(school=tag, devices=3, receivers=1, printers=0, aps=0, cabinets=0, take_home=True,
                            start=monday)  # fmt: skip
    assert {d.kind: d.announced for d in sim.devices} == {"tablet": at_school, "receiver": True}
    config = sim.agent_config()
    assert "tablets_go_home = true" in config and 'school_hours = "07:30-15:00"' in config
