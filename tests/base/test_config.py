"""The declarative TOML loader: every section refuses a misspelt key and a wrong type in one line."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Literal

import pytest

from agent.config import load_config as load_agent_config
from base.config import InvalidValueError, duration, load_document, parse_section, setting
from base.errors import ConfigError
from central.config import load_config as load_central_config

METER = 'meter = { url = "http://10.0.0.5" }'

# (section header and lines that make it valid, misspelt key line, wrong-type line, section named, key named)
AGENT_CASES = [
    ("[agent]", "snapshot_intervall = 5", "snapshot_interval = true", "[agent]", "snapshot_interval"),
    ("[agent]", "outbox_max_mbb = 5", "outbox_max_mb = true", "[agent]", "outbox_max_mb"),
    ("[sync]", "report_intervall = 5", "report_interval = false", "[sync]", "report_interval"),
    ("[sync]", "max_batch_event = 5", "max_batch_events = true", "[sync]", "max_batch_events"),
    ("[host]", "intervall = 5", "interval = true", "[host]", "interval"),
    ("[host]", "disk_max_pct = 5", "disk_max_percent = true", "[host]", "disk_max_percent"),
    ("[incidents]", "open_afterr = 2", "open_after = true", "[incidents]", "open_after"),
    ("[api]", "listn = '0.0.0.0:1'", "listen = 8401", "[api]", "listen"),
    ("[privacy]", "share_name = true", "share_names = 1", "[privacy]", "share_names"),
    ("[discovery]", "intervall = 5", "interval = true", "[discovery]", "interval"),
    ("[discovery]", "max_device = 5", "max_devices = true", "[discovery]", "max_devices"),
    ("[discovery]", "missing_afterr = '5m'", "missing_after = true", "[discovery]", "missing_after"),
    ("[wlan]", "intervall = 5", "interval = true", "[wlan]", "interval"),
    ("[wlan]", "windw = 5", "window = true", "[wlan]", "window"),
    ("[wlan]", "gateway = { host = 'gw', prot = 53 }", "gateway = { host = 'gw', port = true }", "[wlan]",
     "gateway.port"),
    ("[[wlan.aps]]\nhost = 'ap1'\n[[wlan.aps]]\nhost = 'ap2'", "mca = 'x'", "port = true", "[wlan.aps #2]", "port"),
    ("[[wlan.probes]]\nurl = 'http://x/'", "urll = 'x'", "port = 1.5", "[wlan.probes #1]", "port"),
    ("[wlan.controller]\nurl = 'https://unifi'", "timout = 5", "timeout = true", "[wlan]", "controller.timeout"),
    ("[cabinets]", "intervall = 5", "interval = true", "[cabinets]", "interval"),
    ("[cabinets]", "windw = '15:00-07:00'", "window = true", "[cabinets]", "window"),
    (f"[[cabinets.cabinet]]\n{METER}\n[[cabinets.cabinet]]\n{METER}", "nam = 'A'", "max_temperature_c = true",
     "[cabinets.cabinet #2]", "max_temperature_c"),
    (f"[[cabinets.cabinet]]\n{METER}\n[[cabinets.cabinet]]\nid = 'b'\n[cabinets.cabinet.meter]\nurl = 'http://x'",
     "timout = 5", "timeout = true", "[cabinets.cabinet #2]", "meter.timeout"),
]


def _write(tmp_path: Path, header: str, line: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f"{header}\n{line}\n", encoding="utf-8")
    return path


def _one_line(exc: ConfigError, *parts: str) -> str:
    message = exc.message
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)
    return message


@pytest.mark.parametrize(("header", "typo", "wrong", "section", "key"), AGENT_CASES)
def test_agent_sections_refuse_a_misspelt_key(tmp_path: Path, header: str, typo: str, wrong: str, section: str,
                                              key: str) -> None:
    path = _write(tmp_path, header, typo)
    with pytest.raises(ConfigError) as info:
        load_agent_config(path)
    misspelt = typo.split(" = ", maxsplit=1)[0]
    prefix = key.rpartition(".")[0]
    shown = f"{prefix}.{misspelt}" if prefix else misspelt
    if "{" in typo:  # an inline table: the misspelt key is inside it
        shown = f"{misspelt}.prot"
    _one_line(info.value, str(path), f"unknown key(s) in {section}: {shown}", "known:")


@pytest.mark.parametrize(("header", "typo", "wrong", "section", "key"), AGENT_CASES)
def test_agent_sections_refuse_a_wrong_type(tmp_path: Path, header: str, typo: str, wrong: str, section: str,
                                            key: str) -> None:
    path = _write(tmp_path, header, wrong)
    with pytest.raises(ConfigError) as info:
        load_agent_config(path)
    message = _one_line(info.value, str(path), f"{section} {key} must be")
    assert "(got " in message or "item" in message


@pytest.mark.parametrize(
    ("text", "section", "key"),
    [
        ("[central]\nsilent_windoww = '5m'\n", "[central]", "silent_windoww"),
        ("[sync]\nmax_batch_event = 5\n", "[sync]", "max_batch_event"),
    ],
)
def test_central_sections_refuse_a_misspelt_key(tmp_path: Path, text: str, section: str, key: str) -> None:
    path = tmp_path / "central.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_central_config(path, tmp_path)
    _one_line(info.value, str(path), f"unknown key(s) in {section}: {key}")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[central]\nsilent_window = true\n", "[central] silent_window must be seconds or a duration"),
        ("[central]\nport = true\n", "[central] port must be an integer (got true)"),
        ("[central]\nport = 70000\n", "[central] port = 70000 is outside 0..65535"),
        ("[central]\ndb = 'mysql://x'\n", "[central] db is refused: unsupported database URL mysql://"),
        ("[sync]\nmax_batch_events = true\n", "[sync] max_batch_events must be an integer (got true)"),
        ("[sync]\nreport_interval = true\n", "[sync] report_interval must be seconds or a duration"),
        ("[sync]\nreport_interval = 1.5\n", "[sync] report_interval must be whole seconds"),
    ],
)
def test_central_sections_refuse_a_wrong_type(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "central.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_central_config(path, tmp_path)
    _one_line(info.value, str(path), where)


def test_central_durations_take_strings_or_seconds(tmp_path: Path) -> None:
    path = tmp_path / "central.toml"
    path.write_text("[central]\nsilent_window = 600\nclock_skew_flag = '1m30s'\n[sync]\nreport_interval = '1m'\n")
    config = load_central_config(path, tmp_path)
    assert config.silent_window == timedelta(minutes=10) and config.clock_skew_flag == timedelta(seconds=90)
    assert config.sync.to_json()["report_interval_s"] == 60  # the wire keeps its names


def test_site_sections_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        """
[discovery]
interval = "2s"
not_seen_report_at = 06:45:00
[wlan]
interval = "1m"
dns = "10.0.0.1"
internet = "https://example.org/"
[[wlan.aps]]
host = "10.0.0.2"
mac = "AA:BB:CC:00:00:01"
[cabinets]
days = "sat, sun"
[[cabinets.cabinet]]
id = 7
[cabinets.cabinet.meter]
url = "http://10.0.0.9"
energy_unit = "kWh"
"""
    )
    config = load_agent_config(path)
    assert config.discovery.interval == 2.0 and config.discovery.not_seen_report_at == time(6, 45)
    assert config.wlan.interval == 60.0
    assert {(t.kind, t.port, t.key_id) for t in config.wlan.targets} == {
        ("dns", 53, "10.0.0.1"), ("internet", 443, "https://example.org/"), ("ap", 22, "aa:bb:cc:00:00:01"),
    }
    [cabinet] = config.cabinets.cabinets
    assert cabinet.id == "7" and cabinet.name == "Cabinet 7" and cabinet.window.days == frozenset({5, 6})
    assert cabinet.meter.energy_unit == "kwh"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[wlan]\ngateway = { name = 'x' }\n", "[wlan] gateway needs host (TCP probe) or url (HTTP probe)"),
        ("[wlan]\ninternet = { url = 'ftp://x' }\n", "[wlan] internet.url must start with http://"),
        ("[wlan.controller]\nusername = 'x'\n", "[wlan] controller.url is missing (required)"),
        ("[wlan.controller]\nurl = 'http://x'\nstyle = 'new'\n", "[wlan] controller.style must be one of auto"),
        ("[[cabinets.cabinet]]\nname = 'A'\n", "[cabinets.cabinet #1] meter is missing (required)"),
        (f"[[cabinets.cabinet]]\n{METER.replace('http://10.0.0.5', 'http://x')}\nwindow = 'late'\n",
         "[cabinets.cabinet #1] window 'late' must look like 15:00-07:00"),
        ("[cabinets]\ntimezone = 'Mars/Olympus'\n", "[cabinets] timezone 'Mars/Olympus' is not a known time zone"),
        ("[cabinets]\ndays = 'someday'\n", "[cabinets] days 'someday' is not a day"),
        ("[[cabinets.cabinet]]\nmeter = { url = 'http://x', kind = 'fritz' }\n",
         "[cabinets.cabinet #1] meter.kind must be one of"),
        (f"[[cabinets.cabinet]]\nid = 'a'\n{METER}\n[[cabinets.cabinet]]\nid = 'a'\n{METER}\n",
         "[cabinets] cabinet id 'a' is used twice"),
        ("[discovery]\nnot_seen_report_at = '7.30'\n", "[discovery] not_seen_report_at must be HH:MM"),
        ("[discovery]\ninterfaces = ['no-such-if0']\n", "[discovery] interfaces names no interface"),
        ("[discovery]\nmust_stay_present = ['toaster']\n", "[discovery] must_stay_present must list classes"),
        ("[discovery]\ninterfaces = ['lo', 5]\n", "[discovery] interfaces must be an array of strings (item 2 is 5)"),
        ("[api]\nlisten = 'nohost'\n", "[api] listen must be HOST:PORT"),
        ("[host]\ndisk_max_percent = 101\n", "[host] disk_max_percent = 101 is outside 0..100"),
        ("[agent]\nsnapshot_interval = 0\n", "[agent] snapshot_interval must be positive"),
        ("[wlan]\ngateway = 5\n", "[wlan] gateway must be a table (got 5)"),
        ("[cabinets]\ncabinet = 5\n", "[cabinets] cabinet must be an array of tables"),
    ],
)
def test_per_value_checks_name_file_section_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_agent_config(path)
    _one_line(info.value, f"config {path}: {message}")


# -- the deprecated *_s spelling ----------------------------------------------------------------------

OLD_SPELLINGS = [
    ("[discovery]\ninterval_s = 2\n", "[discovery] interval_s", "interval", lambda c: c.discovery.interval == 2),
    ("[discovery]\nresolve_timeout_s = 1\n", "[discovery] resolve_timeout_s", "resolve_timeout",
     lambda c: c.discovery.resolve_timeout == 1),
    ("[discovery]\nprobe_timeout_s = 1\n", "[discovery] probe_timeout_s", "probe_timeout",
     lambda c: c.discovery.probe_timeout == 1),
    ("[wlan]\ninterval_s = 9\n", "[wlan] interval_s", "interval", lambda c: c.wlan.interval == 9),
    ("[wlan]\nprobe_timeout_s = 1\n", "[wlan] probe_timeout_s", "probe_timeout", lambda c: c.wlan.probe_timeout == 1),
    ("[wlan.controller]\nurl = 'http://u'\ntimeout_s = 4\n", "[wlan] controller.timeout_s", "controller.timeout",
     lambda c: c.wlan.controller.timeout == 4),
    ("[cabinets]\ninterval_s = 30\n", "[cabinets] interval_s", "interval", lambda c: c.cabinets.interval == 30),
    ("[[cabinets.cabinet]]\n[cabinets.cabinet.meter]\nurl = 'http://x'\ntimeout_s = 3\n",
     "[cabinets.cabinet #1] meter.timeout_s", "meter.timeout", lambda c: c.cabinets.cabinets[0].meter.timeout == 3),
]


@pytest.mark.parametrize(("text", "old", "new", "holds"), OLD_SPELLINGS)
def test_old_spelling_is_accepted_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str,
                                                 old: str, new: str, holds: object) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with caplog.at_level(logging.WARNING, logger="base.config"):
        config = load_agent_config(path)
    assert holds(config)  # type: ignore[operator]
    [record] = [r for r in caplog.records if r.name == "base.config"]
    line = record.getMessage()
    assert str(path) in line and old in line and f"write {new}" in line and "deprecated" in line


def test_old_spelling_of_central_sync_keys(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "central.toml"
    path.write_text("[sync]\nreport_interval_s = 10\nsnapshot_interval_s = 60\n")
    with caplog.at_level(logging.WARNING, logger="base.config"):
        config = load_central_config(path, tmp_path)
    assert config.sync.report_interval_s == 10 and config.sync.snapshot_interval_s == 60
    assert sum("deprecated" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[wlan]\ninterval = 5\ninterval_s = 5\n", "[wlan] interval and interval_s are the same key"),
        ("[wlan.controller]\nurl = 'http://u'\ntimeout = 1\ntimeout_s = 1\n",
         "[wlan] controller.timeout and controller.timeout_s are the same key"),
        ("[[cabinets.cabinet]]\n[cabinets.cabinet.meter]\nurl = 'http://x'\ntimeout = 1\ntimeout_s = 1\n",
         "[cabinets.cabinet #1] meter.timeout and meter.timeout_s are the same key"),
    ],
)
def test_both_spellings_at_once_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_agent_config(path)
    _one_line(info.value, str(path), message)


def test_old_spelling_is_not_accepted_where_there_never_was_one(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[agent]\nsnapshot_interval_s = 5\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) in \[agent\]: snapshot_interval_s"):
        load_agent_config(path)


# -- reading the file ---------------------------------------------------------------------------------


def test_file_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b'[agent]\nlog_level = "\xe4rger"\n')
    for load in (load_agent_config, lambda p: load_central_config(p, tmp_path)):
        with pytest.raises(ConfigError) as info:
            load(path)
        _one_line(info.value, f"config {path} is not UTF-8")


def test_invalid_toml_and_missing_file_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[agent\n")
    with pytest.raises(ConfigError) as info:
        load_agent_config(path)
    _one_line(info.value, f"config {path} is not valid TOML")
    with pytest.raises(ConfigError) as info:
        load_central_config(tmp_path / "nope.toml", tmp_path)
    _one_line(info.value, f"cannot read config {tmp_path / 'nope.toml'}")


# -- the loader on its own ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Inner:
    count: int = setting(1, low=0, high=10)


@dataclass(frozen=True, slots=True)
class _Section:
    name: str
    ratio: float = 0.5
    mode: Literal["a", "b"] = "a"
    wait: timedelta = duration(timedelta(seconds=5), zero_ok=True)
    wait_s: int = duration(3)
    tags: tuple[str, ...] = ()
    inner: _Inner | None = None
    items: tuple[_Inner, ...] = ()

    def __post_init__(self) -> None:
        if self.name == "bad":
            raise InvalidValueError("is not allowed here", "name")


@dataclass(frozen=True, slots=True)
class _Doc:
    main: _Section = _Section("x")


def test_loader_types() -> None:
    section = parse_section(
        _Section,
        {"name": "n", "ratio": 1, "mode": "b", "wait": 0, "wait_s": "2m", "tags": ["t"], "inner": {"count": 2},
         "items": [{"count": 3}, {}]},
        section="main",
    )
    assert section == _Section("n", 1.0, "b", timedelta(0), 120, ("t",), _Inner(2), (_Inner(3), _Inner(1)))
    assert isinstance(section.ratio, float)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "config: [main] name is missing (required)"),
        ({"name": "bad"}, "config: [main] name is not allowed here"),
        ({"name": 5}, "config: [main] name must be a string (got 5)"),
        ({"name": "n", "ratio": True}, "config: [main] ratio must be a number (got true)"),
        ({"name": "n", "mode": "c"}, "config: [main] mode must be one of a, b (got 'c')"),
        ({"name": "n", "wait": -1}, "config: [main] wait must be zero or positive (got -1)"),
        ({"name": "n", "wait_s": 0}, "config: [main] wait_s must be positive (got 0)"),
        ({"name": "n", "inner": {"count": 11}}, "config: [main] inner.count = 11 is outside 0..10"),
        ({"name": "n", "inner": {"cnt": 1}}, "config: unknown key(s) in [main]: inner.cnt (known: count)"),
        ({"name": "n", "items": [{}, {"count": True}]}, "config: [main.items #2] count must be an integer (got true)"),
        ({"name": "n", "tags": "t"}, "config: [main] tags must be an array of strings (got 't')"),
    ],
)
def test_loader_refusals(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_section(_Section, raw, section="main")
    assert info.value.message == message


def test_document_without_a_file_is_the_defaults() -> None:
    assert load_document(_Doc, None) == _Doc()


@pytest.mark.parametrize(
    ("db", "database"),
    [
        ("postgresql://schulwart@db.example/schulwart", "postgresql://schulwart@db.example/schulwart"),
        ("postgres://db.example:5433/s?sslmode=require", "postgres://db.example:5433/s?sslmode=require"),
        ("sqlite:///var/lib/c.sqlite3", Path("/var/lib/c.sqlite3")),
        ("/var/lib/c.sqlite3", Path("/var/lib/c.sqlite3")),
    ],
)
def test_central_db_is_a_sqlite_path_or_a_postgresql_url(tmp_path: Path, db: str, database: object) -> None:
    path = tmp_path / "central.toml"
    path.write_text(f"[central]\ndb = '{db}'\n")
    config = load_central_config(path, tmp_path)
    assert config.database == database
    assert config.db_path == (database if isinstance(database, Path) else None)
