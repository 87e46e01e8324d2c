"""The state payload's ``config``: which central configuration runs, and what the school's file overrides."""

from __future__ import annotations

import json

import pytest

from protocol.errors import MalformedError, TooLargeError
from protocol.schema import ConfigReport, build_state, parse_state


def _state(config: object) -> bytes:
    doc = json.loads(build_state("ag-1", "gs-nord", 3, "2026-01-01T00:00:00Z", [], None))
    doc["config"] = config
    return json.dumps(doc).encode()


def test_the_report_travels_and_an_older_agent_sends_none() -> None:
    report = ConfigReport(7, ("cabinets.window", "incidents.open_after"))
    payload = build_state("ag-1", "gs-nord", 3, "2026-01-01T00:00:00Z", [], None, config=report)
    assert parse_state(payload).config == report
    assert json.loads(payload)["config"] == {"version": 7, "overrides": ["cabinets.window", "incidents.open_after"]}
    assert parse_state(build_state("ag-1", "gs-nord", 3, "2026-01-01T00:00:00Z", [], None)).config is None
    assert parse_state(_state({"version": 2})).config == ConfigReport(2, ())


@pytest.mark.parametrize(
    "config",
    [None, [], {"version": -1}, {"version": True}, {"version": 1, "overrides": "cabinets.window"},
     {"version": 1, "overrides": [1]}, {"version": 1, "overrides": [""]}, {"version": 1, "overrides": ["x" * 201]}],
)  # fmt: skip
def test_a_bad_report_is_refused(config: object) -> None:
    with pytest.raises(MalformedError):
        parse_state(_state(config))


def test_the_override_list_is_capped() -> None:
    with pytest.raises(TooLargeError):
        parse_state(_state({"version": 1, "overrides": [f"k{i}" for i in range(201)]}))
