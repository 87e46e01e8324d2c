"""Issue 14, findings 2 and 3: data dirs are only created by the commands that create state, owner-only.

A mistyped --data-dir must be refused with its path by every command that only reads or changes
state (it used to become a new, empty central). What the agent and central write is 0700/0600
whatever the umask and whoever made the directory, and a failed enroll leaves nothing behind.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.agent.procs import AGENT, CENTRAL, Central, run


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_commands_that_do_not_create_state_refuse_a_missing_data_dir(tmp_path: Path) -> None:
    typo = tmp_path / "centarl"
    agent_typo = tmp_path / "agnet"
    bundle = tmp_path / "b.bundle"
    bundle.write_text("{}")
    cases = [
        [CENTRAL, "school", "list"],
        [CENTRAL, "enroll-code", "--school", "gs"],
        [CENTRAL, "token", "issue", "--technician", "t", "--scope", "all"],
        [CENTRAL, "token", "list"],
        [CENTRAL, "token", "revoke", "abc"],
        [CENTRAL, "api-token", "create", "--name", "n"],
        [CENTRAL, "api-token", "list"],
        [CENTRAL, "api-token", "revoke", "n"],
        [CENTRAL, "agent", "list"],
        [CENTRAL, "agent", "revoke", "ag-x"],
        [CENTRAL, "import", str(bundle)],
        [CENTRAL, "doctor"],
    ]
    agent_cases = [
        [AGENT, "status"],
        [AGENT, "devices"],
        [AGENT, "incidents"],
        [AGENT, "export", "--out", str(tmp_path / "o.bundle")],
        [AGENT, "run", "--listen", "127.0.0.1:0"],
        [AGENT, "doctor"],
    ]
    for argv, where in [*((c, typo) for c in cases), *((c, agent_typo) for c in agent_cases)]:
        out = run([*argv, "--data-dir", str(where)], check=False)
        assert out.returncode == 2 and out.stdout == "", (argv, out.stderr)
        assert out.stderr.count("\n") == 1 and f"no schulwart database in {where}" in out.stderr, (argv, out.stderr)
    assert not typo.exists() and not agent_typo.exists() and not (tmp_path / "o.bundle").exists()


def test_central_state_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    d = tmp_path / "new" / "central"
    subprocess.run(
        ["sh", "-c", 'umask 000 && exec "$@"', "sh", CENTRAL, "school", "add", "--id", "gs", "--name", "GS",
         "--carrier", "K", "--data-dir", str(d)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert _mode(d) == 0o700 and _mode(d.parent) == 0o700
    files = [p for p in d.rglob("*")]
    assert {p.name for p in files} >= {"central.sqlite3", "keys", "config-signing.pem", "token-issuer.pem"}
    for path in files:
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_an_existing_open_data_dir_is_tightened(tmp_path: Path) -> None:
    d = tmp_path / "c"
    d.mkdir(mode=0o755)
    d.chmod(0o755)  # as `install -d -m 0755` would leave it
    run([CENTRAL, "school", "add", "--id", "gs", "--name", "GS", "--carrier", "K", "--data-dir", str(d)])
    assert _mode(d) == 0o700


def test_enroll_writes_owner_only_and_a_failed_enroll_leaves_nothing(tmp_path: Path) -> None:
    central = Central(tmp_path)
    central.start()
    try:
        fresh = tmp_path / "srv" / "agent"
        bad = run([AGENT, "enroll", "--central", central.url, "--code", "x" * 24 + "." + "A" * 22,
                   "--data-dir", str(fresh)], check=False)  # fmt: skip
        assert bad.returncode == 2 and "refused" in bad.stderr, bad.stderr
        assert not fresh.exists() and not fresh.parent.exists(), "a failed enroll made directories"
        existing = tmp_path / "var-lib"
        existing.mkdir()
        existing.chmod(0o755)
        bad = run([AGENT, "enroll", "--central", central.url, "--code", "y" * 24 + "." + "A" * 22,
                   "--data-dir", str(existing)], check=False)  # fmt: skip
        assert bad.returncode == 2 and list(existing.iterdir()) == [], "a failed enroll left files behind"
        subprocess.run(
            ["sh", "-c", 'umask 022 && exec "$@"', "sh", AGENT, "enroll", "--central", central.url, "--code",
             central.code(), "--data-dir", str(fresh)],
            check=True, capture_output=True,
        )  # fmt: skip
        run([AGENT, "status", "--data-dir", str(fresh)])  # opens the database: -wal and -shm exist now
    finally:
        central.stop()
    assert _mode(fresh) == 0o700
    names = {p.name for p in fresh.iterdir()}
    assert {"agent.db", "agent-key.pem", "admin-token", "privacy-secret"} <= names, names
    for path in fresh.iterdir():
        assert _mode(path) == 0o600, (path, oct(_mode(path)))
    assert os.stat(fresh).st_uid == os.geteuid()
