"""The overview's order, the cabinet nights, the incident timeline and the human forms, exactly."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from central.storage.interface import Sample
from central.timestamps import iso
from central.web.i18n import BERLIN, Words, choose_language, duration
from central.web.views import SchoolLine, cabinet_nights, group_by_carrier, sort_lines, timeline
from tests.agent.procs import CENTRAL


def line(school_id: str, status: str, carrier: str = "K", critical: int = 0, warning: int = 0) -> SchoolLine:
    name = school_id.upper()
    return SchoolLine(school_id, name, carrier, status, critical, warning, 0, 0, 0, 0, 0, None, None, False)


def test_worst_first_and_carriers_by_their_worst_school() -> None:
    lines = [line("a", "ok", "A"), line("b", "degraded", "B", warning=1), line("c", "broken", "A", critical=1),
             line("d", "silent", "B"), line("e", "broken", "B", critical=3)]  # fmt: skip
    groups = group_by_carrier(lines)
    assert [(c, [s.id for s in members]) for c, members in groups] == [("B", ["e", "d", "b"]), ("A", ["c", "a"])]
    assert [s.id for s in sort_lines(lines, "school", descending=True)] == ["e", "d", "c", "b", "a"]


def _at(day: date, hour: int) -> str:
    return iso(datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN))


def test_night_verdicts() -> None:
    today = date(2024, 5, 8)
    yesterday, before, third = today - timedelta(days=1), today - timedelta(days=2), today - timedelta(days=3)
    samples = [
        Sample("cabinet:1", _at(yesterday, 20), 0.3, 1),  # in the window, no power
        Sample("cabinet:1", _at(yesterday, 14), 500.0, 0),  # outside the window: does not count
        Sample("cabinet:1", _at(before, 22), 410.0, 1),
        Sample("cabinet:1", _at(third + timedelta(days=1), 3), 35.0, 1),  # after midnight: still third's night
    ]
    nights = cabinet_nights(samples, today, nights=4)
    assert [(n.day, n.verdict) for n in nights] == [
        (yesterday, "no_power"), (before, "charged"), (third, "charged"), (today - timedelta(days=4), "no_data"),
    ]  # fmt: skip


def test_timeline_completes_what_a_state_carried() -> None:
    note = {"by": "A. Weber", "text": "vor Ort", "at": "2024-05-06T09:01:00Z"}
    row = {"opened_at": "2024-05-06T08:00:00.000000Z", "acknowledged_by": "A. Weber",
           "acknowledged_at": "2024-05-06T09:00:00.000000Z", "notes": [note], "status": "resolved",
           "resolved_at": "2024-05-06T10:00:00.000000Z"}  # fmt: skip
    logged = [{"at": "2024-05-06T09:30:00.000000Z", "action": "staff-note", "by": "hotline", "text": "Rückruf",
               "source": "central"}]  # fmt: skip
    steps = timeline(row, logged)
    assert [s["action"] for s in steps] == ["opened", "acknowledged", "note", "staff-note", "resolved"]


def test_human_forms() -> None:
    now = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
    w = Words("de", now)
    assert w.since(iso(now - timedelta(hours=3, minutes=5))) == "seit 3 Std."
    assert w.ago(iso(now - timedelta(seconds=40))) == "vor 40 Sek."
    assert w.span(3971849) == "45 Tage"
    assert w.number(412.4, 0, "W") == "412 W" and w.number(0.44, 1, "W") == "0,4 W"
    assert w.number(12345) == "12\u2009345"
    assert w.time("2024-05-06T12:00:00.000000Z") == "06.05.2024 14:00"  # Berlin, summer time
    assert w.time(None) == w.ago("kaputt")[:0] + "\u2013"
    assert duration(timedelta(minutes=12), "en") == "12 min"
    assert choose_language(None, None, "fr-FR,en;q=0.5") == "en" and choose_language(None, None, None) == "de"
    assert choose_language("xx", "en", "de") == "en"


def test_user_commands(tmp_path: Path) -> None:
    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([CENTRAL, *args, "--data-dir", str(tmp_path)], input=stdin, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip

    assert run("school", "add", "--id", "s", "--name", "S", "--carrier", "K").returncode == 0
    done = run("user", "add", "--name", "anna", "--role", "carrier:K", stdin="ein-gutes-passwort\n")
    assert done.returncode == 0 and done.stdout == "" and "ein-gutes-passwort" not in done.stderr
    listed = run("user", "list").stdout.splitlines()
    assert listed[0].split() == ["NAME", "ROLE", "CREATED"]
    assert listed[1].split()[:2] == ["anna", "carrier:K"]
    assert "ein-gutes" not in Path(tmp_path / "central.sqlite3").read_bytes().decode("latin-1")
    refusals = [
        (("user", "add", "--name", "anna", "--role", "staff"), "ein-gutes-passwort\n"),  # exists
        (("user", "add", "--name", "b", "--role", "chef"), "ein-gutes-passwort\n"),
        (("user", "add", "--name", "b", "--role", "staff"), "kurz\n"),
        (("user", "remove", "niemand"), ""),
        (("user", "passwd", "niemand"), "ein-gutes-passwort\n"),
    ]
    for args, stdin in refusals:
        refused = run(*args, stdin=stdin)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert run("user", "passwd", "anna", stdin="noch-ein-passwort\n").returncode == 0
    assert run("user", "remove", "anna").returncode == 0
    assert run("user", "list").stdout.strip() in ("no users", "keine Benutzer")


def test_values_the_agents_send_are_shown_in_the_readers_words() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    de, en = Words("de", now), Words("en", now)
    assert de.term("ap_state", "connected") == "verbunden" and de.term("device_class", "tablet") == "Tablets"
    assert en.term("device_class", "airplay") == "AirPlay receivers"
    assert de.term("ap_state", "something-new") == "something-new"  # a state we do not know, as it came
    assert de.number(-0.2, 0, "s") == "0 s" and de.number(-1.6, 0, "s") == "-2 s"  # never "-0 s"
    assert de.number(0.4, 1, "W") == "0,4 W"
