"""Incident titles from code + params: both languages, every fallback, and the wire fields."""

from __future__ import annotations

import pytest

from protocol.events import IncidentOpened, IncidentUpdated
from protocol.messages import LANGUAGES, MESSAGES, render_title


def test_german_and_english_with_the_reader_s_numbers() -> None:
    params = {"cabinet": "Schrank 1 (Raum 104)", "power_w": 0.4}
    german = render_title("cabinet.no_power", params, "de", "x")
    english = render_title("cabinet.no_power", params, "en", "x")
    assert german == "Schrank 1 (Raum 104): kein Strom im Ladefenster (0,4 W)"
    assert english == "Cabinet Schrank 1 (Raum 104) has no power during its charging window (0.4 W)"
    assert render_title("cabinet.no_power", {"cabinet": "S", "power_w": 12.0}, "de", "x").endswith("(12 W)")


def test_the_first_template_whose_params_are_all_there_wins() -> None:
    assert render_title("wlan.ap_down", {"name": "AP-1", "state": "disconnected"}, "de", "x") == (
        "Access Point AP-1 ausgefallen (Controller: disconnected)"
    )
    # A null detail drops to the shorter form; a list or a boolean is not a value a title can hold.
    assert render_title("wlan.ap_down", {"name": "AP-1", "state": None}, "de", "x") == "Access Point AP-1 ausgefallen"
    assert render_title("wlan.ap_down", {"name": "AP-1", "state": ["a"]}, "en", "x") == "Access point AP-1 down"
    assert render_title("wlan.ap_down", {"name": "AP-1", "state": True}, "en", "x") == "Access point AP-1 down"


def test_one_tablet_is_singular() -> None:
    assert render_title("device.tablets_not_seen", {"count": 1, "days": 14}, "de", "x").startswith("1 Tablet seit")
    assert render_title("device.tablets_not_seen", {"count": 3, "days": 14}, "de", "x").startswith("3 Tablets seit")


def test_device_class_words() -> None:
    assert render_title("device.missing", {"device_class": "printer", "model": "HP"}, "de", "x") == (
        "Drucker (HP) fehlt (nicht mehr im mDNS, antwortet nicht)"
    )
    assert render_title("device.missing", {"device_class": "toaster"}, "en", "x").startswith("Device missing")


@pytest.mark.parametrize(
    ("code", "params", "lang"),
    [
        (None, {}, "de"),  # no code: an older agent
        (7, {}, "de"),  # not a string
        ("cabinet.no_power", ["x"], "de"),  # params not an object
        ("no.such.code", {}, "de"),  # a newer agent's code
        ("host.memory", {}, "fr"),  # a language we do not have
        ("cabinet.no_power", {"cabinet": "S"}, "de"),  # no template fits the params
    ],
)
def test_fallback_title(code: object, params: object, lang: str) -> None:
    assert render_title(code, params, lang, "English title") == "English title"


def test_every_code_has_both_languages_with_the_same_placeholders() -> None:
    for code, by_lang in MESSAGES.items():
        assert set(by_lang) == set(LANGUAGES), code
        assert len(by_lang["de"]) == len(by_lang["en"]), code


def test_code_and_params_travel_on_opened_and_updated() -> None:
    data = {"id": "inc-1", "key": "k", "category": "host", "severity": "warning", "title": "t", "subject": None,
            "code": "host.disk_full", "params": {"path": "/", "limit": "90"}}  # fmt: skip
    opened = IncidentOpened.from_data(data)
    assert opened.code == "host.disk_full" and opened.params == {"path": "/", "limit": "90"}
    assert opened.to_data() == data
    odd = {**data, "code": 5}  # not a string: kept as it came, untyped
    assert IncidentOpened.from_data(odd).code is None and IncidentOpened.from_data(odd).to_data() == odd
    update = {"id": "inc-1", "title": "t2", "code": "host.memory", "params": {}}
    parsed = IncidentUpdated.from_data(update)
    assert parsed.code == "host.memory" and parsed.params == {} and parsed.to_data() == update
