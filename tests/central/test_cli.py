"""Every schulwart-central command, run in-process through the real entry point (run_cli)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from central import cli
from central.config import DB_FILE
from central.enrollment import hash_secret
from central.keystore import TOKEN_KEY_FILE, load_keystore
from central.storage.sqlite import SqliteStore
from protocol.envelope import sign
from protocol.keys import generate_private_key, keyid, public_key_raw
from protocol.schema import BUNDLE_TYPE, build_bundle
from protocol.tokens import verify_technician_token

from .conftest import FakeAgent

CODE_RE = re.compile(r"[A-Za-z0-9_-]{24}\.[A-Za-z0-9_-]{22}")


def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """Run the console script's main() with these arguments; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["schulwart-central", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


@pytest.fixture
def central(capsys, monkeypatch, tmp_path: Path):
    """run() bound to a data dir that already holds one school."""

    def go(*args: str) -> tuple[int, str, str]:
        return run(capsys, monkeypatch, *args, "--data-dir", str(tmp_path))

    code, _, _ = go("school", "add", "--id", "gs-nord", "--name", "GS Nord", "--carrier", "Musterstadt")
    assert code == 0
    return go


def one_error_line(code: int, out: str, err: str) -> str:
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("schulwart-central: error:") and "Traceback" not in err
    return lines[0]


def with_store(tmp_path: Path, work):
    async def go():
        store = SqliteStore.open(tmp_path / DB_FILE)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(go())


def test_school_add_and_list(central, tmp_path: Path) -> None:
    code, out, err = central("school", "add", "--id", "gs-ost", "--name", "GS Ost", "--carrier", "Anderdorf")
    assert (code, out) == (0, "") and "gs-ost" in err
    assert "already" in one_error_line(*central("school", "add", "--id", "gs-ost", "--name", "X", "--carrier", "Y"))
    one_error_line(*central("school", "add", "--id", "bad id!", "--name", "X", "--carrier", "Y"))
    one_error_line(*central("school", "add", "--id", "x", "--name", "X"))  # missing --carrier
    code, out, _ = central("school", "list")
    assert code == 0 and out.splitlines() == [
        "ID       CARRIER      NAME",
        "gs-nord  Musterstadt  GS Nord",
        "gs-ost   Anderdorf    GS Ost",
    ]
    code, out, _ = central("school", "list", "--carrier", "Anderdorf", "--json")
    assert out.strip() == '{"id": "gs-ost", "name": "GS Ost", "carrier": "Anderdorf"}'


def test_enroll_code(central, tmp_path: Path) -> None:
    code, out, _ = central("enroll-code", "--school", "gs-nord", "--ttl", "2h")
    assert code == 0 and CODE_RE.fullmatch(out.strip()) and out.count("\n") == 1
    row = with_store(tmp_path, lambda s: _find_code(s, out.strip()))
    assert row is not None and row.school_id == "gs-nord"
    assert "no school" in one_error_line(*central("enroll-code", "--school", "nope"))
    one_error_line(*central("enroll-code", "--school", "gs-nord", "--ttl", "soon"))
    one_error_line(*central("enroll-code", "--school", "gs-nord", "--ttl", "60d"))


async def _find_code(store: SqliteStore, code: str):
    async with store.transaction() as tx:
        return await tx.find_code(hash_secret(code.partition(".")[0]))


def test_token_issue(central, tmp_path: Path) -> None:
    code, out, _ = central("token", "issue", "--technician", "anna", "--scope", "school:gs-nord", "--ttl", "2h")
    assert code == 0 and out.startswith("v4.public.") and out.count("\n") == 1
    issuer = load_keystore(tmp_path).token_key.public_key()
    claims = verify_technician_token(
        out.strip(), issuer, school_id="gs-nord", carrier="Musterstadt", now=datetime.now(UTC)
    )
    assert claims.sub == "anna" and (claims.exp - claims.iat).total_seconds() == 7200
    assert "12h" in one_error_line(*central("token", "issue", "--technician", "anna", "--scope", "all", "--ttl", "13h"))
    one_error_line(*central("token", "issue", "--technician", "anna", "--scope", "everything"))
    one_error_line(*central("token", "issue", "--technician", "anna", "--scope", "school:nope"))
    one_error_line(*central("token", "issue", "--technician", "anna", "--scope", "carrier:Nowhere"))
    code, out, _ = central("token", "issue", "--technician", "anna", "--scope", "carrier:Musterstadt")
    assert code == 0 and out.startswith("v4.public.")


def test_api_token_create(central, tmp_path: Path) -> None:
    code, out, _ = central("api-token", "create", "--name", "hotline", "--carrier", "Musterstadt")
    assert code == 0 and out.startswith("swc_") and out.count("\n") == 1
    row = with_store(tmp_path, lambda s: s.find_api_token(hash_secret(out.strip())))
    assert row is not None and row.carrier == "Musterstadt" and row.name == "hotline"
    one_error_line(*central("api-token", "create"))


def _add_agent(tmp_path: Path, school: str = "gs-nord") -> FakeAgent:
    key = generate_private_key()
    agent_id = "ag-" + keyid(key)[:8]

    async def work(store: SqliteStore) -> None:
        async with store.transaction() as tx:
            await tx.add_agent(agent_id, school, keyid(key), public_key_raw(key), "srv", "0.1", "2024-05-06T08:00:00Z")

    with_store(tmp_path, work)
    return FakeAgent(agent_id, school, key)


def test_agent_list_and_revoke(central, tmp_path: Path) -> None:
    agent = _add_agent(tmp_path)
    code, out, _ = central("agent", "list")
    assert code == 0 and out.splitlines()[1].split() == [agent.agent_id, "gs-nord", "srv", "0.1", "0", "-", "active"]
    code, out, err = central("agent", "revoke", agent.agent_id)
    assert (code, out) == (0, "") and "revoked" in err
    code, out, _ = central("agent", "list", "--json")
    assert '"revoked": true' in out
    assert "no agent" in one_error_line(*central("agent", "revoke", "ag-nobody"))


def _bundle(agent: FakeAgent, envelopes: list[bytes], key=None) -> bytes:
    payload = build_bundle(agent.agent_id, agent.school_id, "2024-05-06T09:00:00Z", envelopes)
    return sign(payload, BUNDLE_TYPE, key or agent.key)


def test_import_bundle_twice_stores_once(central, tmp_path: Path) -> None:
    agent = _add_agent(tmp_path)
    envelopes = [agent.report(1, 10), agent.report(11, 20), agent.state(20)]
    bundle = tmp_path / "gs-nord.bundle"
    bundle.write_bytes(_bundle(agent, envelopes))
    for _ in range(2):
        code, out, err = central("import", str(bundle))
        assert code == 0 and out == ""
        assert "acked through 20" in err and len(err.strip().splitlines()) == 1
    events = with_store(tmp_path, lambda s: s.get_events(agent.agent_id))
    assert [e.seq for e in events] == list(range(1, 21))


def test_import_refusals(central, tmp_path: Path) -> None:
    agent = _add_agent(tmp_path)
    bundle = tmp_path / "b"
    bundle.write_bytes(_bundle(agent, [agent.report(1, 5)], key=generate_private_key()))
    assert "no trusted key" in one_error_line(*central("import", str(bundle)))
    raw = bytearray(_bundle(agent, [agent.report(1, 5)]))
    raw[60] ^= 1
    bundle.write_bytes(bytes(raw))
    one_error_line(*central("import", str(bundle)))
    bundle.write_bytes(_bundle(agent, [agent.report(1, 5), agent.report(9, 10)]))
    line = one_error_line(*central("import", str(bundle)))
    assert "envelope 2 of 2" in line
    # The good first envelope stays: it was acknowledged on its own, as over HTTP.
    assert len(with_store(tmp_path, lambda s: s.get_events(agent.agent_id))) == 5
    other = _add_agent(tmp_path, "gs-nord")
    bundle.write_bytes(_bundle(agent, [other.report(1, 2)]))
    assert "not " + agent.agent_id in one_error_line(*central("import", str(bundle)))
    one_error_line(*central("import", str(tmp_path / "missing.bundle")))


def test_serve_refuses_with_one_line(central, tmp_path: Path) -> None:
    # An unreachable PostgreSQL: one line naming host, port and database, never the password.
    line = one_error_line(*central("serve", "--db", "postgresql://schulwart:s3cret-pw@127.0.0.1:1/x"))
    assert "127.0.0.1:1/x" in line and "s3cret-pw" not in line
    one_error_line(*central("serve", "--db", "mysql://db/x"))
    one_error_line(*central("serve", "--port", "70000"))
    key_file = tmp_path / "keys" / TOKEN_KEY_FILE
    original = key_file.read_bytes() if key_file.exists() else None
    key_file.parent.mkdir(exist_ok=True)
    key_file.write_bytes(b"not a key")
    assert "unusable" in one_error_line(*central("serve", "--port", "0"))
    key_file.unlink()
    key_file.mkdir()
    assert "cannot read key file" in one_error_line(*central("serve", "--port", "0"))
    key_file.rmdir()
    if original is not None:
        key_file.write_bytes(original)
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'future')")
    line = one_error_line(*central("serve", "--port", "0"))
    assert "schema version 99" in line and "newer" in line


def test_bad_config_file(central, tmp_path: Path) -> None:
    config = tmp_path / "central.toml"
    config.write_text("[central]\nsilent_window = true\n")
    one_error_line(*central("school", "list", "--config", str(config)))
    config.write_text("[central]\nnope = 1\n")
    assert "unknown key(s) in [central]: nope" in one_error_line(*central("school", "list", "--config", str(config)))
    config.write_text("[central\n")
    one_error_line(*central("school", "list", "--config", str(config)))
    config.write_text('[central]\nsilent_window = "5m"\n[sync]\nreport_interval = 10\n')
    code, _, _ = central("school", "list", "--config", str(config))
    assert code == 0


def test_api_token_for_a_carrier_without_schools_warns(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    central = str(Path(sys.executable).parent / "schulwart-central")
    data = str(tmp_path / "c")
    subprocess.run([central, "school", "add", "--id", "s1", "--name", "S", "--carrier", "Kreis A", "--data-dir", data],
                   check=True, capture_output=True)  # fmt: skip
    typo = subprocess.run([central, "api-token", "create", "--name", "t", "--carrier", "Kreis  A", "--data-dir", data],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert typo.stdout.strip().startswith("swc_") and len(typo.stdout.splitlines()) == 1
    assert "no school has carrier 'Kreis  A'" in typo.stderr
    fine = subprocess.run([central, "api-token", "create", "--name", "t2", "--carrier", "Kreis A", "--data-dir", data],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert fine.stderr == ""


@pytest.mark.parametrize(
    ("args", "empty"),
    [
        (["config", "history", "--school", "gs-nord"], "no configuration layers"),
        (["config", "history", "--carrier", "Musterstadt"], "no configuration layers"),
        (["agent", "list"], "no agents"),
        (["user", "list"], "no users"),
        (["api-token", "list"], "no tokens"),
    ],
)
def test_every_list_on_a_fresh_install_says_it_is_empty(central, monkeypatch, args: list[str], empty: str) -> None:
    """A new install has nothing to list yet: one plain line, exit 0 (config history crashed here once)."""
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.delenv("LANGUAGE", raising=False)
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    code, out, err = central(*args)
    assert (code, out.strip()) == (0, empty), err
