"""Hypothesis over every reader of outside input: each refuses with its documented error, or succeeds.

"Outside input" is what arrives from the network, a device, a file or a command line. A reader
may raise only the error its caller handles: the project's tree (``SchulwartError`` and its
subclasses, which both CLIs and both HTTP layers turn into one line or a 4xx), or the monitor's
own ``MeterError``/``ControllerError``. Anything else (``TypeError``, ``UnicodeEncodeError``,
``OverflowError``, ...) is the crash the test is looking for. Values that parse must also be
writable again (the kind of bug issue 11 found: ``1e400`` and lone surrogates).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import parse_config, parse_listen
from agent.monitors.cabinets import meters
from agent.monitors.discovery.config import parse_discovery
from agent.monitors.discovery.drops import parse_drops
from agent.monitors.discovery.sanitize import clean_properties, clean_text, instance_label
from agent.monitors.wlan.unifi import ControllerError, parse_devices
from base.agentconfig.cabinets import parse_cabinets
from base.agentconfig.window import parse_days, parse_window
from base.agentconfig.wlan import parse_wlan
from base.cmdline import parse_duration
from central.alerts.schedule import parse_holidays
from central.config import parse_db_url
from central.enrollment import parse_enroll_request
from central.users import parse_role
from protocol.encoding import b64decode_strict, dumps, loads_strict
from protocol.errors import SchulwartError
from protocol.events import EVENT_KINDS, parse_event_data
from protocol.keys import generate_private_key, load_public_key, load_public_key_b64
from protocol.schema import parse_bundle, parse_config_payload, parse_report, parse_state, parse_time
from protocol.tokens import verify_technician_token

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Any code point, lone surrogates included (Hypothesis leaves category Cs out unless asked).
ANY_CHAR = st.characters(codec=None, categories=None)
TEXT = st.text(ANY_CHAR, max_size=40)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
JSONISH = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5), max_leaves=25
)
KEYS = st.sampled_from(
    "id seq kind at data v agent_id school_id seq_from seq_to sent_at events last_seq made_at open_incidents "
    "snapshot devices envelopes settings version issued_at power apower meters switch:0 StatusSNS ENERGY Power "
    "name state type num_sta mac radio_table".split()
)
DOCS = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | TEXT, inner, max_size=6), max_leaves=30
)
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _json_bytes(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")


RAW = st.binary(max_size=300) | DOCS.map(_json_bytes)


def refuses_only(call: Callable[[], Any], *allowed: type[BaseException]) -> Any:
    """Call a reader; its documented refusals are fine, anything else fails the test."""
    try:
        return call()
    except (SchulwartError, *allowed):
        return None


@FAST
@given(RAW)
def test_strict_json_reader_output_can_always_be_written_back(raw: bytes) -> None:
    doc = refuses_only(lambda: loads_strict(raw))
    if doc is not None:
        dumps(doc)  # never UnicodeEncodeError or an infinity: such values were refused at the door


@FAST
@given(RAW)
def test_payload_parsers(raw: bytes) -> None:
    for parse in (parse_report, parse_state, parse_config_payload, parse_bundle):
        refuses_only(lambda p=parse: p(raw))  # type: ignore[misc]


@FAST
@given(st.sampled_from(sorted(EVENT_KINDS)), DOCS)
def test_event_data(kind: str, data: Any) -> None:
    refuses_only(lambda: parse_event_data(kind, data))


@FAST
@given(st.binary(max_size=40), TEXT)
def test_keys_times_and_base64(raw: bytes, text: str) -> None:
    refuses_only(lambda: load_public_key(raw))
    refuses_only(lambda: load_public_key_b64(text))
    refuses_only(lambda: b64decode_strict(text))
    refuses_only(lambda: parse_time(text))


ISSUER = generate_private_key().public_key()


@FAST
@given(TEXT | st.text(st.sampled_from("v4.public.ABCabc-_0123456789"), max_size=120))
def test_technician_tokens(token: str) -> None:
    refuses_only(lambda: verify_technician_token(token, ISSUER, school_id="s1", carrier=None, now=NOW))


@FAST
@given(RAW)
def test_meter_and_controller_replies(raw: bytes) -> None:
    doc = refuses_only(lambda: loads_strict(raw, max_depth=64, allow_duplicate_keys=True))
    spec = meters.MeterSpec(kind="http-json", url="http://10.0.0.1/", power_path="data.0.power")
    for parse in (meters.parse_shelly_gen2, meters.parse_shelly_gen2_status, meters.parse_shelly_gen1,
                  meters.parse_tasmota, meters.describe_shelly, meters.login_refusal,
                  lambda d: meters.parse_generic(d, spec)):  # fmt: skip
        reading = refuses_only(lambda p=parse: p(doc), meters.MeterError)  # type: ignore[misc]
        if isinstance(reading, meters.MeterReading):
            dumps({"power": reading.power_w, "errors": list(reading.errors)})
    found = refuses_only(lambda: parse_devices(doc), ControllerError)
    if found is not None:
        dumps([ap.__dict__ if hasattr(ap, "__dict__") else repr(ap) for ap in found[0]])


@FAST
@given(st.binary(max_size=200), st.dictionaries(st.binary(max_size=40), st.none() | st.binary(max_size=80), max_size=8))
def test_mdns_names_and_txt_records_come_out_as_writable_text(raw: bytes, txt: dict[bytes, bytes | None]) -> None:
    name = raw.decode("utf-8", "surrogateescape")
    for text in (clean_text(raw, 96), clean_text(name, 96), instance_label(name, "_airplay._tcp.local.")):
        text.encode("utf-8")
    dumps(clean_properties(txt))


@FAST
@given(DOCS)
def test_config_sections(doc: Any) -> None:
    for parse in (parse_config, parse_cabinets, parse_discovery, parse_wlan):
        refuses_only(lambda p=parse: p(doc if isinstance(doc, dict) else {"x": doc}))  # type: ignore[misc]
    for section in ("agent", "sync", "api", "host", "cabinets", "discovery", "wlan", "incidents", "privacy"):
        refuses_only(lambda s=section: parse_config({s: doc}))  # type: ignore[misc]


@FAST
@given(TEXT)
def test_command_line_values(text: str) -> None:
    refuses_only(lambda: parse_duration(text))
    refuses_only(lambda: parse_listen(text), ValueError)
    refuses_only(lambda: parse_days(text))
    refuses_only(lambda: parse_window(text))
    refuses_only(lambda: parse_role(text), ValueError)
    refuses_only(lambda: parse_db_url(text, Path("/nonexistent")))
    refuses_only(lambda: parse_drops(text, {1, 2, 3}))


@FAST
@given(RAW)
def test_central_enrollment_request(raw: bytes) -> None:
    request = refuses_only(lambda: parse_enroll_request(raw))
    if request is not None:
        dumps([request.code, request.hostname, request.agent_version])


@FAST
@given(st.binary(max_size=300) | st.text(ANY_CHAR, max_size=200).map(lambda t: ("BEGIN:VCALENDAR\n" + t).encode(
    "utf-8", "surrogatepass")))  # fmt: skip
def test_holiday_calendars(raw: bytes) -> None:
    refuses_only(lambda: parse_holidays(raw, ZoneInfo("Europe/Berlin")))
