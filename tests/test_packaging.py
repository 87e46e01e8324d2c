"""The built wheel: what an installed agent needs is inside, and central's packages stay an extra."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    # Build from a clean copy: setuptools reuses a stale build/ folder, which once hid a
    # missing package-data entry (the technician page was not in the wheel).
    source = tmp_path_factory.mktemp("src") / "schulwart"
    junk = (".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", "test-artifacts", ".*_cache")
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*junk))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    (path,) = out.glob("schulwart-*.whl")
    return zipfile.ZipFile(path)


def test_the_page_the_units_and_the_type_marker_are_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    # The editable install used in development hides a missing package-data entry.
    names = set(wheel.namelist())
    for required in (
        "agent/techapi/static/index.html",
        "agent/techapi/static/app.js",
        "agent/techapi/static/style.css",
        "agent/systemd/schulwart-agent.service",
        "central/systemd/schulwart-central.service",
        "protocol/py.typed",
    ):
        assert required in names, required
    assert not any(n.startswith("tests/") or n.startswith("bench/") for n in names)


def test_central_packages_are_only_an_extra(wheel: zipfile.ZipFile) -> None:
    metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    requires = [line for line in wheel.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
    base = [r for r in requires if "extra ==" not in r]
    assert not [r for r in base if "jinja2" in r.lower() or "psycopg" in r.lower()], base
    assert any("psycopg" in r and 'extra == "central"' in r for r in requires)
    for core in ("aiohttp", "sqlite-utils", "zeroconf", "psutil", "cryptography", "tenacity"):
        assert any(r.split()[1].lower().startswith(core) for r in base), core
