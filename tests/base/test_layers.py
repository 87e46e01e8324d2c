"""Layered configuration: later layers win key by key, arrays replace whole, overrides are named."""

from __future__ import annotations

from datetime import date, time

from base.agentconfig.layers import json_document, merge_layers, overridden_keys


def test_tables_merge_and_other_values_replace() -> None:
    carrier = {"cabinets": {"window": "15:00-07:00", "days": ["mon-fri"], "cabinet": [{"id": "1"}, {"id": "2"}]}}
    school = {"cabinets": {"window": "16:00-06:00", "cabinet": [{"id": "9"}]}, "privacy": {"share_names": True}}
    merged = merge_layers(carrier, school)
    assert merged == {
        "cabinets": {"window": "16:00-06:00", "days": ["mon-fri"], "cabinet": [{"id": "9"}]},
        "privacy": {"share_names": True},
    }
    merged["cabinets"]["cabinet"].append({"id": "x"})  # the result is a copy: the layers stay as they were
    assert school["cabinets"]["cabinet"] == [{"id": "9"}]


def test_a_table_replaces_a_scalar_and_back() -> None:
    assert merge_layers({"wlan": 1}, {"wlan": {"interval": 5}}) == {"wlan": {"interval": 5}}
    assert merge_layers({"wlan": {"interval": 5}}, {"wlan": "off"}) == {"wlan": "off"}


def test_overrides_are_keys_both_set_to_different_values() -> None:
    central = {"incidents": {"open_after": 5, "resolve_after": 3}, "cabinets": {"cabinet": [{"id": "1"}]}}
    local = {"incidents": {"open_after": 1, "resolve_after": 3}, "cabinets": {"cabinet": [{"id": "2"}]},
             "sync": {"report_interval": 9}}  # fmt: skip
    assert overridden_keys(local, central) == ["cabinets.cabinet", "incidents.open_after"]
    assert overridden_keys(local, {}) == [] and overridden_keys({}, central) == []


def test_toml_dates_and_times_become_the_quoted_text() -> None:
    doc = {"cabinets": {"skip_dates": [date(2025, 12, 24)], "at": time(7, 30)}, "n": 1}
    assert json_document(doc) == {"cabinets": {"skip_dates": ["2025-12-24"], "at": "07:30"}, "n": 1}
