"""The CLI: one-line errors with exit 2, read commands without network, run + healthz + SIGTERM."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.request import urlopen

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.incidents.engine import IncidentEngine
from agent.monitors.interface import Signal
from agent.store import Store
from base.clock import FakeClock
from tests.agent.procs import AGENT, Proc, run, write_config


def one_line_error(args: list[str]) -> str:
    out = run([AGENT, *args], check=False)
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("schulwart-agent: error:") and "Traceback" not in out.stderr
    return lines[0]


def test_bad_inputs_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[agent]\nsnapshot_intervall = 5\n")
    assert "snapshot_intervall" in one_line_error(["status", "--config", str(bad), "--data-dir", str(tmp_path)])
    assert "no schulwart database" in one_line_error(["status", "--data-dir", str(tmp_path / "empty")])
    assert "HOST:PORT" in one_line_error(["run", "--listen", "nonsense", "--data-dir", str(tmp_path / "d")])
    assert "must start with http" in one_line_error(
        ["enroll", "--central", "ftp://x", "--code", "c", "--data-dir", str(tmp_path)]
    )
    assert "enroll first" in one_line_error(["export", "--out", str(tmp_path / "b"), "--data-dir", str(tmp_path)])
    one_line_error(["incidents", "--bogus"])
    broken = tmp_path / "broken.toml"
    broken.write_text("[agent\n")
    assert "broken.toml" in one_line_error(["run", "--config", str(broken), "--data-dir", str(tmp_path)])


def test_every_subcommand_has_help_and_common_options() -> None:
    runner = CliRunner()
    for name in ("enroll", "run", "status", "devices", "incidents", "export"):
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert "--data-dir" in result.output and "--config" in result.output


def test_read_commands_from_the_store(data_dir: Path, clock: FakeClock) -> None:
    store = Store.open(data_dir)
    from agent.privacy import Privacy
    from agent.store.outbox import Outbox

    outbox = Outbox(store, clock)
    engine = IncidentEngine(store, outbox, Privacy(b"k" * 32), clock, open_after=1)
    engine.observe([Signal("host-disk:root", True, "host", "warning", "Disk / over 90 % full", "/", clock.now())])
    outbox.add("health.snapshot", {})
    store.close()
    runner = CliRunner()
    result = runner.invoke(cli, ["status", "--json", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["outbox"]["last_seq"] == 2 and info["outbox"]["depth"] == 2 and info["outbox"]["acked_seq"] == 0
    assert "oldest_unsent_age_s" in info["outbox"]
    assert info["open_incidents"] == 1 and info["enrolled"] is False and info["last_sync_at"] is None
    text = runner.invoke(cli, ["status", "--data-dir", str(data_dir)]).output
    assert "depth 2" in text and "1 open" in text
    incidents = json.loads(runner.invoke(cli, ["incidents", "--json", "--data-dir", str(data_dir)]).output)
    assert incidents["incidents"][0]["title"] == "Disk / over 90 % full"
    assert "Disk / over 90 % full" in runner.invoke(cli, ["incidents", "--data-dir", str(data_dir)]).output
    assert runner.invoke(cli, ["devices", "--data-dir", str(data_dir)]).output.strip() == "no devices"
    assert json.loads(runner.invoke(cli, ["devices", "--json", "--data-dir", str(data_dir)]).output) == {"devices": []}


@pytest.mark.timeout(60)
def test_run_serves_healthz_writes_a_snapshot_and_stops_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "d"
    Store.open(data).close()  # an agent that has state but is not enrolled (yet) still runs
    config = write_config(tmp_path / "a.toml", "[host]\ninterval = 0.2\n")
    proc = Proc(
        [AGENT, "run", "--listen", "127.0.0.1:0", "--data-dir", str(data), "--config", str(config)], tmp_path / "log"
    )
    port = proc.wait_listening()
    with urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        assert json.loads(resp.read())["status"] == "ok"
    import time

    deadline = time.monotonic() + 10
    while "agent stopped" not in proc.text() and time.monotonic() < deadline:
        store = Store.open(data, migrate=False)
        n = store.query("SELECT count(*) FROM outbox WHERE kind = 'health.snapshot'")[0][0]
        store.close()
        if n:
            break
        time.sleep(0.1)
    assert n >= 1  # the start-up snapshot
    assert proc.terminate() == 0
    assert "agent stopped" in proc.text() and "Traceback" not in proc.text()


@pytest.mark.timeout(60)
def test_run_starts_without_click_and_stops_on_sigterm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # click and the other commands' modules would stay loaded for the agent's whole life (~1 MiB).
    data = tmp_path / "d"
    Store.open(data).close()
    config = write_config(tmp_path / "a.toml", "[host]\ninterval = 0.2\n")
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # the interpreter lists every module it imports
    proc = Proc(
        [AGENT, "run", "--listen=127.0.0.1:0", "--data-dir", str(data), "--config", str(config)], tmp_path / "log"
    )
    proc.wait_listening()
    assert proc.terminate() == 0
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.text().splitlines() if line.startswith("import time:")]
    assert "agent.runner" in imported and "aiohttp.web" in imported  # the listing works
    assert not [m for m in imported if m.split(".")[0] == "click" or m in ("agent.cli", "base.cli")]
    assert "agent stopped" in proc.text()


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--listen", "nonsense", "--data-dir", "{tmp}/d"],
        ["run", "--data-dir", "{tmp}/none"],
        ["run", "--config", "{tmp}/missing.toml", "--data-dir", "{tmp}"],
        ["run", "--config", "{tmp}", "--data-dir", "{tmp}"],  # a directory: click refuses it
        ["run", "--data-dir"],
        ["run", "--bogus"],
        ["run", "extra"],
        ["run", "--listen="],
    ],
)
def test_run_errors_are_the_click_commands_own(tmp_path: Path, args: list[str]) -> None:
    # A plain `run` is parsed without click (agent/entry.py); what it refuses must read the same.
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    via_click = run([sys.executable, "-c", "from agent.cli import main; main()", *argv], check=False)
    assert via_click.returncode == 2 and via_click.stderr.startswith("schulwart-agent: error:"), via_click.stderr
    assert one_line_error(argv) == via_click.stderr.strip()


def test_run_help_is_clicks() -> None:
    out = run([AGENT, "run", "--help"])
    assert "--listen" in out.stdout and "--data-dir" in out.stdout and "until SIGTERM" in out.stdout
