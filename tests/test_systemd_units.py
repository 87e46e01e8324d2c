"""Both systemd units set a file limit and are hardened to an exposure of at most 1.5."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = [ROOT / "agent/systemd/schulwart-agent.service", ROOT / "central/systemd/schulwart-central.service"]


def _directives(unit: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_sets_a_file_limit_above_the_connection_caps(unit: Path) -> None:
    limit = int(_directives(unit)["LimitNOFILE"][0])
    assert limit >= 4096  # the guards' totals (256 agent, 768 central) plus database and outgoing sockets


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_filters_system_calls_and_hides_processes(unit: Path) -> None:
    d = _directives(unit)
    assert "@system-service" in d["SystemCallFilter"]
    assert any("@privileged" in v for v in d["SystemCallFilter"])
    assert d["ProtectProc"] == ["invisible"]
    assert d["NoNewPrivileges"] == ["yes"] and d["CapabilityBoundingSet"] == [""]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_security_scores_at_most_1_5(unit: Path) -> None:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True, check=False
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    if match is None:
        pytest.skip(f"systemd-analyze cannot score offline here: {out.stderr.strip()[:200]}")
    assert float(match.group(1)) <= 1.5, out.stdout[-3000:]
