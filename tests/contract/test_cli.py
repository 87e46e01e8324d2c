"""The commands: --help, stdout discipline, bad input, --data-dir/--config, SCHULWART_DATA_DIR.

The contract is the README, docs/agent.md and docs/central.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import (
    AGENT,
    BIN,
    CENTRAL,
    Central,
    Database,
    LiveAgent,
    agent,
    central,
    clean_env,
    only_line,
    run_many,
)

SIM = str(BIN / "schulwart-sim")

HELP_CASES = [
    (CENTRAL, ["serve"]),
    (CENTRAL, ["school", "add"]),
    (CENTRAL, ["enroll-code"]),
    (CENTRAL, ["token", "issue"]),
    (CENTRAL, ["api-token", "create"]),
    (CENTRAL, ["agent", "revoke"]),
    (CENTRAL, ["import"]),
    (AGENT, ["enroll"]),
    (AGENT, ["run"]),
    (AGENT, ["status"]),
    (AGENT, ["devices"]),
    (AGENT, ["incidents"]),
    (AGENT, ["export"]),
]


def test_help_on_every_subcommand() -> None:
    """Every subcommand has --help, and every subcommand accepts --data-dir and --config."""
    cases = [(prog, [*sub, "--help"]) for prog, sub in HELP_CASES]
    sims = [(SIM, ["school", "--help"]), (SIM, ["demo", "--help"])]
    failures = []
    for (prog, argv), p in zip(cases + sims, run_many(cases + sims), strict=True):
        name = f"{Path(prog).name} {' '.join(argv)}"
        if p.returncode != 0 or "usage" not in p.stdout.lower() or p.stderr:
            failures.append(f"{name}: rc={p.returncode} stderr={p.stderr!r}")
        elif prog != SIM and not ("--data-dir" in p.stdout and "--config" in p.stdout):
            failures.append(f"{name}: --data-dir/--config missing from help")
    assert not failures, "\n".join(failures)


def _db(database: Database, tmp: Path) -> list[str]:
    """--config naming the test's database: every command of one central must use the same one."""
    return ["--config", str(database.write_config(tmp / "central.toml"))]


def test_user_add_exists(tmp_path: Path, central_db: Database) -> None:
    p = central("user", "add", "--help")
    assert p.returncode == 0, p.stderr
    d = str(tmp_path / "c")
    db = _db(central_db, tmp_path)
    # Only `serve`, `school add` and `enroll` may create a data dir: a central exists first.
    p = central("school", "add", "--id", "gs-u", "--name", "GS U", "--carrier", "K", "--data-dir", d, *db)
    assert p.returncode == 0, p.stderr
    p = central("user", "add", "--name", "alice", "--role", "staff", "--data-dir", d, *db,
                stdin="correct horse battery staple\n")
    assert p.returncode == 0, p.stderr
    p = central("user", "add", "--name", "alice", "--role", "staff", "--data-dir", d, *db,
                stdin="correct horse battery staple\n")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr  # the user is stored


def test_created_codes_and_tokens_are_the_only_stdout(tmp_path: Path, central_db: Database) -> None:
    d = str(tmp_path / "c")
    db = _db(central_db, tmp_path)
    add = central("school", "add", "--id", "gs-x", "--name", "GS X", "--carrier", "K", "--data-dir", d, *db)
    assert add.returncode == 0, add.stderr
    assert add.stdout == "", "school add creates no code/token: its chatter belongs on stderr"
    outs = [
        central("enroll-code", "--school", "gs-x", "--data-dir", d, *db),
        central("enroll-code", "--school", "gs-x", "--ttl", "1h", "--data-dir", d, *db),
        central("token", "issue", "--technician", "bob", "--scope", "all", "--data-dir", d, *db),
        central("token", "issue", "--technician", "bob", "--scope", "school:gs-x", "--ttl", "2h", "--data-dir", d,
                *db),
        central("api-token", "create", "--name", "dash", "--data-dir", d, *db),
        central("api-token", "create", "--name", "k", "--carrier", "K", "--data-dir", d, *db),
    ]
    values = [only_line(p) for p in outs]
    for p, v in zip(outs, values, strict=True):
        assert p.stdout == v + "\n"
        assert " " not in v
    assert values[2].startswith("v4.public.") and values[3].startswith("v4.public.")
    assert len(set(values)) == len(values)


def _write(tmp: Path, name: str, text: str) -> str:
    f = tmp / name
    f.write_text(text)
    return str(f)


def _bad_cases(tmp: Path, db: list[str]) -> list[tuple[str, list[str]]]:
    """Refused commands; ``db`` (--config naming the database) goes to every central command without a --config."""
    d = str(tmp / "c")
    bad_toml = _write(tmp, "bad.toml", "not = = toml\n")
    unknown = _write(tmp, "unknown.toml", "[no_such_section]\nx = 1\n")
    garbage = _write(tmp, "garbage.bundle", "garbage\n")
    unsigned = _write(tmp, "unsigned.bundle", json.dumps(
        {"payloadType": "application/vnd.schulwart.bundle+json;v=1", "payload": "e30=", "signatures": []}))
    empty_agent = str(tmp / "empty-agent")
    return [
        (CENTRAL, ["school", "add", "--id", "bad id!", "--name", "N", "--carrier", "C", "--data-dir", d, *db]),
        (CENTRAL, ["school", "add", "--id", "x", "--name", "N", "--data-dir", d, *db]),
        (CENTRAL, ["school", "add", "--id", "gs", "--name", "N", "--carrier", "C", "--data-dir", d, *db]),  # duplicate
        (CENTRAL, ["enroll-code", "--school", "no-such-school", "--data-dir", d, *db]),
        (CENTRAL, ["enroll-code", "--school", "gs", "--ttl", "soon", "--data-dir", d, *db]),
        (CENTRAL, ["token", "issue", "--technician", "bob", "--ttl", "13h", "--data-dir", d, *db]),
        (CENTRAL, ["token", "issue", "--technician", "bob", "--scope", "everything", "--data-dir", d, *db]),
        (CENTRAL, ["api-token", "create", "--data-dir", d, *db]),
        (CENTRAL, ["agent", "revoke", "ag-no-such-agent", "--data-dir", d, *db]),
        (CENTRAL, ["import", str(tmp / "missing.bundle"), "--data-dir", d, *db]),
        (CENTRAL, ["import", garbage, "--data-dir", d, *db]),
        (CENTRAL, ["import", unsigned, "--data-dir", d, *db]),
        (CENTRAL, ["serve", "--port", "99999", "--data-dir", d, *db]),
        (CENTRAL, ["serve", "--config", bad_toml, "--data-dir", d, "--port", "0"]),
        (CENTRAL, ["enroll-code", "--school", "gs", "--config", unknown, "--data-dir", d]),
        (CENTRAL, ["no-such-command"]),
        (AGENT, ["enroll", "--central", "not-a-url", "--code", "X", "--data-dir", empty_agent]),
        (AGENT, ["status", "--json", "--data-dir", empty_agent]),
        (AGENT, ["export", "--out", str(tmp / "o.bundle"), "--data-dir", empty_agent]),
        (AGENT, ["run", "--listen", "no-port-here", "--data-dir", empty_agent]),
        (AGENT, ["status", "--config", bad_toml, "--data-dir", empty_agent]),
        (AGENT, ["status", "--config", unknown, "--data-dir", empty_agent]),
        (AGENT, ["status", "--config", str(tmp / "missing.toml"), "--data-dir", empty_agent]),
        (SIM, ["no-such-command"]),
    ]


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, central_db: Database) -> None:
    db = _db(central_db, tmp_path)
    add = central("school", "add", "--id", "gs", "--name", "N", "--carrier", "C", "--data-dir", str(tmp_path / "c"),
                  *db)
    assert add.returncode == 0, add.stderr
    cases = _bad_cases(tmp_path, db)
    failures = []
    for (prog, argv), p in zip(cases, run_many(cases), strict=True):
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        if p.returncode != 2 or len(lines) != 1 or "Traceback" in p.stderr or p.stdout:
            failures.append(f"{Path(prog).name} {' '.join(argv)} -> rc={p.returncode} stdout={p.stdout!r} "
                            f"stderr={p.stderr!r}")
    assert not failures, "\n".join(failures)


def test_agent_enroll_refused_code_is_one_line(central_srv: Central, tmp_path: Path) -> None:
    p = agent("enroll", "--central", central_srv.url, "--code", "NOT-A-CODE", "--data-dir", str(tmp_path / "a"))
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr


def test_agent_enroll_refused_then_retried_succeeds(central_srv: Central, school: str, tmp_path: Path) -> None:
    """A failed enroll (bad code) must not leave state that blocks the next, correct attempt."""
    d = str(tmp_path / "a")
    bad = agent("enroll", "--central", central_srv.url, "--code", "NOT-A-CODE", "--data-dir", d)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    good = agent("enroll", "--central", central_srv.url, "--code", central_srv.code(school), "--data-dir", d)
    assert good.returncode == 0, good.stderr
    st = agent("status", "--json", "--data-dir", d)
    assert st.returncode == 0, st.stderr
    assert json.loads(st.stdout)["identity"]["school_id"] == school


def test_data_dir_and_config_after_subcommand(tmp_path: Path, central_db: Database) -> None:
    d = str(tmp_path / "c")
    empty = _write(tmp_path, "empty.toml", central_db.toml())  # nothing but the database (SQLite: not even that)
    ok = [
        ["school", "add", "--id", "gs", "--name", "N", "--carrier", "C", "--data-dir", d, "--config", empty],
        ["enroll-code", "--school", "gs", "--config", empty, "--data-dir", d],
        ["token", "issue", "--technician", "t", "--scope", "all", "--data-dir", d, "--config", empty],
        ["api-token", "create", "--name", "n", "--config", empty, "--data-dir", d],
    ]
    for argv in ok:
        p = central(*argv)
        assert p.returncode == 0, (argv, p.stderr)
    # These fail on purpose, but for their argument, not for an unknown --data-dir/--config option.
    failing = [
        (CENTRAL, ["agent", "revoke", "ag-none", "--data-dir", d, "--config", empty]),
        (CENTRAL, ["import", str(tmp_path / "none.bundle"), "--config", empty, "--data-dir", d]),
        (AGENT, ["status", "--json", "--data-dir", str(tmp_path / "a"), "--config", empty]),
        (AGENT, ["devices", "--json", "--config", empty, "--data-dir", str(tmp_path / "a")]),
        (AGENT, ["incidents", "--json", "--data-dir", str(tmp_path / "a"), "--config", empty]),
        (AGENT, ["export", "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path / "a"), "--config", empty]),
    ]
    for (_, argv), p in zip(failing, run_many(failing), strict=True):
        assert p.returncode == 2, (argv, p.stderr)
        assert "no such option" not in p.stderr.lower(), (argv, p.stderr)


def test_schulwart_data_dir_env_is_honoured(tmp_path: Path, live_agent: LiveAgent) -> None:
    if live_agent.central.backend != "sqlite":
        # Central's half is about the SQLite file that lives in the data dir (a PostgreSQL database is
        # named by the config, not found there); the agent's half does not touch central's database.
        pytest.skip("SQLite-only: central finds its SQLite database through SCHULWART_DATA_DIR")
    env = clean_env(SCHULWART_DATA_DIR=str(tmp_path / "c"))
    p = central("school", "add", "--id", "gs-env", "--name", "N", "--carrier", "C", env=env)
    assert p.returncode == 0, p.stderr
    # the school is in the env's directory: --data-dir naming it finds it, another directory does not
    assert central("enroll-code", "--school", "gs-env", "--data-dir", str(tmp_path / "c")).returncode == 0
    assert central("enroll-code", "--school", "gs-env", "--data-dir", str(tmp_path / "other")).returncode == 2
    env = clean_env(SCHULWART_DATA_DIR=str(live_agent.proc.data_dir))
    st = agent("status", "--json", "--config", str(live_agent.proc.config), env=env)
    assert st.returncode == 0, st.stderr
    assert json.loads(st.stdout)["identity"]["school_id"] == live_agent.school


def test_serve_accepts_postgresql_url(tmp_path: Path) -> None:
    p = central("serve", "--data-dir", str(tmp_path), "--port", "0",
                "--db", "postgresql://schulwart@127.0.0.1:1/schulwart", timeout=20)
    # No PostgreSQL listens on port 1: a connection error is fine, refusing the URL scheme is not.
    assert "not supported" not in p.stderr.lower(), p.stderr
