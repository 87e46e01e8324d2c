"""The pure parts of alert routing: backoff, the holiday calendar, quiet hours, the wording."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from base.errors import ConfigError
from central.alerts.delivery import backoff
from central.alerts.schedule import Holidays, Schedule, parse_holidays
from central.alerts.wording import IncidentFacts, compose

BERLIN = ZoneInfo("Europe/Berlin")


def test_backoff_doubles_is_capped_and_jittered_into_the_upper_half() -> None:
    base, cap = timedelta(seconds=30), timedelta(minutes=30)
    assert backoff(1, base, cap, 0.0) == timedelta(seconds=15)
    assert backoff(1, base, cap, 1.0) == timedelta(seconds=30)
    assert backoff(3, base, cap, 1.0) == timedelta(minutes=2)
    assert backoff(50, base, cap, 0.999) <= cap and backoff(50, base, cap, 0.0) == cap / 2


def ics(*events: str) -> bytes:
    body = "".join(f"BEGIN:VEVENT\r\nUID:{n}@t\r\n{e}END:VEVENT\r\n" for n, e in enumerate(events))
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//DE\r\n{body}END:VCALENDAR\r\n".encode()


def test_holidays_from_ics_dates_are_half_open_and_date_times_count_by_local_day() -> None:
    holidays = parse_holidays(
        ics(
            "DTSTART;VALUE=DATE:20241021\r\nDTEND;VALUE=DATE:20241026\r\nSUMMARY:Herbstferien\r\n",
            "DTSTART;VALUE=DATE:20241003\r\nSUMMARY:Tag der Deutschen Einheit\r\n",  # no DTEND: one day
            "DTSTART:20241223T230000Z\r\nDURATION:P2D\r\nSUMMARY:Weihnachten\r\n",  # 24 Dec 00:00 in Berlin
        ),
        BERLIN,
    )
    assert date(2024, 10, 21) in holidays and date(2024, 10, 25) in holidays
    assert date(2024, 10, 26) not in holidays and date(2024, 10, 20) not in holidays
    assert date(2024, 10, 3) in holidays and date(2024, 10, 4) not in holidays
    assert date(2024, 12, 23) not in holidays and date(2024, 12, 25) in holidays and date(2024, 12, 26) not in holidays
    assert holidays.next_school_day(date(2024, 10, 22)) == date(2024, 10, 26)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"not a calendar", "not an iCalendar file"),
        (ics("SUMMARY:no start\r\n"), "has no DTSTART"),
        (ics("DTSTART;VALUE=DATE:20241026\r\nDTEND;VALUE=DATE:20241021\r\nSUMMARY:x\r\n"), "not a holiday period"),
    ],
)
def test_a_bad_holidays_file_is_refused_with_one_line(data: bytes, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        parse_holidays(data, BERLIN, source="holidays file f.ics")
    assert info.value.message.startswith("holidays file f.ics: ") and "\n" not in info.value.message


def test_quiet_hours_wrap_midnight_in_local_time() -> None:
    schedule = Schedule(BERLIN, time(20, 0), time(7, 0))
    evening = datetime(2024, 1, 15, 19, 30, tzinfo=UTC)  # 20:30 in Berlin (winter)
    decision = schedule.decide(evening, "warning", follow_up=False)
    assert decision.send and decision.due == datetime(2024, 1, 16, 6, 0, tzinfo=UTC) and decision.reason
    assert schedule.decide(evening, "critical", follow_up=False).due == evening
    noon = datetime(2024, 1, 15, 11, 0, tzinfo=UTC)
    assert schedule.decide(noon, "info", follow_up=False).due == noon


def test_holiday_silence_drops_openings_but_defers_follow_ups_to_the_next_school_day() -> None:
    holidays = Holidays(((date(2024, 5, 6), date(2024, 5, 8)),))
    schedule = Schedule(BERLIN, time(20, 0), time(7, 0), holidays, "silence")
    inside = datetime(2024, 5, 6, 10, 0, tzinfo=UTC)
    assert not schedule.decide(inside, "critical", follow_up=False).send
    follow = schedule.decide(inside, "warning", follow_up=True)
    assert follow.send and follow.due == datetime(2024, 5, 8, 5, 0, tzinfo=UTC)  # 07:00 local, after quiet hours


def test_wording_is_german_by_default_and_english_on_request_and_a_title_cannot_add_a_header() -> None:
    facts = IncidentFacts("gs-nord", "GS Nord", "Musterstadt", "i1", "agent", "k", "wlan", "warning",
                          "WLAN down\r\nBcc: everyone@example.org", "ap-3", "2024-05-06T08:00:00.000000Z")  # fmt: skip
    german = compose("opened", (facts,), public_url="https://c.example/", zone=BERLIN)
    assert german.subject == "[Schulwart] Warnung: GS Nord \u2013 WLAN down  Bcc: everyone@example.org"
    assert "Schule: GS Nord (gs-nord)" in german.text and "https://c.example/v1/schools/gs-nord" in german.text
    english = compose("resolved", (facts,), language="en", public_url="https://c.example", zone=BERLIN)
    assert english.subject.startswith("[Schulwart] Resolved: Warning: GS Nord") and "School: GS Nord" in english.text
    with pytest.raises(ValueError, match="cannot word"):
        compose("opened", (), public_url="https://c.example", zone=BERLIN)


def test_a_coded_incident_is_titled_in_the_message_language_from_the_catalogue() -> None:
    facts = IncidentFacts("gs-nord", "GS Nord", "Musterstadt", "i2", "agent", "k", "cabinet", "critical",
                          "Cabinet Schrank 1 has no power during its charging window (0.4 W)", "c1",
                          "2024-05-06T20:00:00.000000Z", code="cabinet.no_power",
                          params={"cabinet": "Schrank 1", "power_w": 0.4})  # fmt: skip
    german = compose("opened", (facts,), public_url="https://c.example", zone=BERLIN)
    assert "Schrank 1: kein Strom im Ladefenster (0,4 W)" in german.subject
    english = compose("opened", (facts,), language="en", public_url="https://c.example", zone=BERLIN)
    assert "Cabinet Schrank 1 has no power during its charging window (0.4 W)" in english.subject
    uncoded = compose("opened", (replace(facts, code=None),), public_url="https://c.example", zone=BERLIN)
    assert "Cabinet Schrank 1 has no power" in uncoded.subject  # an older agent: the title as it came
