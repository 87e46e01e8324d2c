"""Issue 14: the wheel, installed into a fresh venv, is a working install (slow: builds and installs).

A fresh venv proves the dependencies are declared (click used to arrive only through
sqlite-utils); `--help` of every command and subcommand must work there, and the installed
`schulwart-agent doctor` must be all green against the installed central and simulated school,
then fail (exit 1) on its central line when central is stopped.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from base.version import version
from tests.simworld import sim_world

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "schulwart-central": [
        ["serve"], ["school", "add"], ["school", "list"], ["enroll-code"], ["token", "issue"], ["token", "list"],
        ["token", "revoke"], ["api-token", "create"], ["api-token", "list"], ["api-token", "revoke"],
        ["agent", "revoke"], ["agent", "list"], ["import"], ["doctor"],
    ],
    "schulwart-agent": [
        ["enroll"], ["run"], ["status"], ["devices"], ["incidents"], ["export"], ["doctor"],
        ["remote", "status"], ["remote", "incidents"], ["remote", "devices"],
    ],
    "schulwart-sim": [["school"], ["demo"]],
}  # fmt: skip


def _sh(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert out.returncode == 0, f"{argv}: {out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin dir of a fresh venv with the wheel (and its [central] extra) installed."""
    root = tmp_path_factory.mktemp("wheel")
    _sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root / "dist"), str(ROOT)])
    (wheel,) = (root / "dist").glob("schulwart-*.whl")
    _sh([sys.executable, "-m", "venv", str(root / "venv")])
    _sh([str(root / "venv" / "bin" / "pip"), "install", "-q", f"{wheel}[central]"])
    return root / "venv" / "bin"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_command_has_help_in_a_fresh_install(installed: Path) -> None:
    failures = []
    for program, subcommands in COMMANDS.items():
        out = subprocess.run([str(installed / program), "--version"], capture_output=True, text=True, check=False)
        if out.stdout != f"{program} {version()}\n":
            failures.append(f"{program} --version: {out.stdout!r} {out.stderr!r}")
        for sub in subcommands:
            out = subprocess.run([str(installed / program), *sub, "--help"], capture_output=True, text=True,
                                 check=False, timeout=60)  # fmt: skip
            if out.returncode != 0 or "Usage:" not in out.stdout or out.stderr:
                failures.append(f"{program} {' '.join(sub)} --help: rc={out.returncode} {out.stderr[-300:]!r}")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_installed_doctor_green_then_red_without_central(installed: Path, tmp_path: Path) -> None:
    agent = str(installed / "schulwart-agent")
    with sim_world(tmp_path, "wheel14", bin_dir=installed) as world:
        argv = [agent, "doctor", "--data-dir", str(world["agent_dir"]), "--config", str(world["config"])]
        good = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        assert good.returncode == 0, good.stdout + good.stderr
        assert "FAIL" not in good.stdout and "multicast" in good.stdout and "controller" in good.stdout
        world["central_proc"].terminate()
        bad = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    (central_line,) = [line for line in bad.stdout.splitlines() if line.split()[1:2] == ["central"]]
    assert central_line.startswith("FAIL") and "1 check failed: central" in bad.stderr
