"""The enrollment pin (issue 14, finding 8) and the version field of reports and states."""

from __future__ import annotations

import pytest

from protocol.keys import (
    ENROLL_PIN_CHARS,
    enroll_pin,
    generate_private_key,
    pin_matches,
    public_key_raw,
    split_enroll_code,
)
from protocol.schema import build_report, build_state, parse_report, parse_state

A, B = public_key_raw(generate_private_key()), public_key_raw(generate_private_key())


def test_the_pin_binds_both_keys_in_order() -> None:
    pin = enroll_pin(A, B)
    assert len(pin) == ENROLL_PIN_CHARS and pin == enroll_pin(A, B)
    assert pin_matches(pin, A, B)
    assert not pin_matches(pin, B, A) and not pin_matches(pin, A, A) and not pin_matches("é" * 22, A, B)
    assert enroll_pin(A, B) != enroll_pin(B, A)
    with pytest.raises(ValueError, match="32-byte"):
        enroll_pin(A[:31], B)


def test_a_code_splits_into_secret_and_pin() -> None:
    assert split_enroll_code(" abc-_.PIN \n") == ("abc-_", "PIN")
    assert split_enroll_code("abc") == ("abc", None)


def test_reports_and_states_may_carry_the_agents_version() -> None:
    event = {"seq": 1, "at": "2026-11-30T08:00:00Z", "kind": "health.snapshot", "data": {}}
    assert parse_report(build_report("a", "s", [event], "2026-11-30T08:00:00Z", agent_version="1.2")).extra == {
        "agent_version": "1.2"
    }
    assert "agent_version" not in parse_report(build_report("a", "s", [event], "2026-11-30T08:00:00Z")).extra
    state = build_state("a", "s", 1, "2026-11-30T08:00:00Z", [], None, agent_version="1.2")
    assert parse_state(state).extra["agent_version"] == "1.2"
    assert "agent_version" not in parse_state(build_state("a", "s", 1, "2026-11-30T08:00:00Z", [], None)).extra
