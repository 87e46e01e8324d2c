"""Fixtures and helpers for the black-box contract suite.

Nothing here imports the project: the programs are driven as subprocesses, the wire format
is built from the text of docs/protocol.md (DSSE PAE, Ed25519 via pyca/cryptography), and HTTP is urllib.

Every central the suite starts runs once per backend (``BACKENDS``): on a SQLite file in its data
dir, and on a fresh PostgreSQL database of its own, named by the central's config file so that
``serve`` and every other command of that central use it. Without a PostgreSQL server the
PostgreSQL cases skip, or fail under ``SCHULWART_REQUIRE_POSTGRES=1`` (tests/pg.py). The
PostgreSQL cases are marked slow: ``pytest -m slow tests/contract`` runs them.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.client as httpclient
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.pg import admin, database_url, unavailable

BIN = Path(sys.executable).parent
CENTRAL = str(BIN / "schulwart-central")
AGENT = str(BIN / "schulwart-agent")

REPORT_TYPE = "application/vnd.schulwart.report+json;v=1"
STATE_TYPE = "application/vnd.schulwart.state+json;v=1"
LISTEN_RE = re.compile(r"listening on (https?://[^\s)]+)")
# Every central the suite starts runs once per backend. The PostgreSQL half runs with the slow
# tests (`pytest -m slow`, which .ci/run also runs): it doubles the suite's ~90 s, and the
# default run stays under ten minutes.
BACKENDS = ("sqlite", pytest.param("postgresql", marks=pytest.mark.slow))


# ---------------------------------------------------------------- subprocesses


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHULWART_")}
    env.update(extra)
    return env


def run(prog: str, *args: str, env: dict[str, str] | None = None, stdin: str | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([prog, *args], capture_output=True, text=True, env=env or clean_env(),
                          input=stdin, timeout=timeout, check=False)


def run_many(cases: list[tuple[str, list[str]]]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands concurrently (each is a fresh interpreter: start-up dominates)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda c: run(c[0], *c[1]), cases))


def central(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return run(CENTRAL, *args, **kw)


def agent(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return run(AGENT, *args, **kw)


def only_line(proc: subprocess.CompletedProcess[str]) -> str:
    """A command that creates a code or token: exit 0, exactly one line on stdout."""
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"stdout must be only the code/token, got {proc.stdout!r}"
    assert lines[0].strip() == lines[0] and lines[0], proc.stdout
    return lines[0]


class Server:
    """A long-running program started as an operator would, its URL parsed from stderr."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 20) -> None:
        self.argv = argv
        self.log: list[str] = []
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env=env or clean_env(), start_new_session=True)
        self.url = ""
        ready = threading.Event()

        def pump() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log.append(line)
                m = LISTEN_RE.search(line)
                if m and not self.url:
                    self.url = m.group(1).rstrip("/.,")
                    ready.set()
            ready.set()

        self._thread = threading.Thread(target=pump, daemon=True)
        self._thread.start()
        ready.wait(timeout)
        if not self.url:
            self.stop()
            raise RuntimeError(f"{argv[0]} did not report its URL:\n{''.join(self.log)}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._thread.join(2)

    def text(self) -> str:
        return "".join(self.log)


# ---------------------------------------------------------------- HTTP


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def ctype(self) -> str:
        return self.headers.get("content-type", "")


def http(method: str, url: str, body: bytes | dict[str, Any] | None = None,
         headers: dict[str, str] | None = None, token: str | None = None, timeout: float = 15,
         source: str | None = None) -> Resp:
    """One HTTP request; ``source`` binds the client to another loopback address (127.0.0.x)."""
    hdrs = dict(headers or {})
    data: bytes | None
    if isinstance(body, dict):
        data = json.dumps(body).encode()
    else:
        data = body
    if data is not None:
        hdrs.setdefault("Content-Type", "application/json")
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    parts = urllib.parse.urlsplit(url)
    conn = httpclient.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


_sources = iter(range(2, 250))


def fresh_source() -> str:
    """A loopback source address no other test has used (per-source rate limits stay per test)."""
    return f"127.0.0.{next(_sources)}"


def assert_error(resp: Resp, lo: int = 400, hi: int = 499) -> dict[str, Any]:
    """A refusal: a 4xx status and a JSON body with an "error" string."""
    assert lo <= resp.status <= hi, (resp.status, resp.body[:300])
    try:
        doc = resp.json()
    except ValueError:
        pytest.fail(f"refusal body is not JSON: {resp.status} {resp.body[:300]!r}")
    assert isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"], doc
    return doc


# ---------------------------------------------------------------- wire format


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def pae(payload_type: str, body: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def keyid(raw_pub: bytes) -> str:
    return hashlib.sha256(raw_pub).hexdigest()


def envelope(key: Ed25519PrivateKey, body: bytes, payload_type: str = REPORT_TYPE, *,
             urlsafe: bool = False, kid: str | None = None) -> dict[str, Any]:
    enc = b64url if urlsafe else b64
    sig = key.sign(pae(payload_type, body))
    return {"payloadType": payload_type, "payload": enc(body),
            "signatures": [{"keyid": kid or keyid(raw_public(key)), "sig": enc(sig)}]}


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(seq: int, kind: str = "health.snapshot", data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"seq": seq, "at": now_rfc3339(), "kind": kind, "data": data if data is not None else {"cpu": 1}}


def incident_data(inc_id: str, **over: Any) -> dict[str, Any]:
    d = {"id": inc_id, "key": f"host:disk:{inc_id}", "category": "host", "severity": "warning",
         "title": "Disk almost full", "subject": None}
    d.update(over)
    return d


@dataclass
class Enrolled:
    """An agent we enrolled ourselves, with our own key."""

    url: str
    key: Ed25519PrivateKey
    agent_id: str
    school_id: str
    answer: dict[str, Any]

    def payload(self, events: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
        p = {"v": 1, "agent_id": self.agent_id, "school_id": self.school_id,
             "seq_from": events[0]["seq"] if events else 0, "seq_to": events[-1]["seq"] if events else 0,
             "sent_at": now_rfc3339(), "events": events}
        p.update(over)
        return p

    def post_raw(self, body: bytes, payload_type: str = REPORT_TYPE, *, gz: bool = False,
                 urlsafe: bool = False, key: Ed25519PrivateKey | None = None) -> Resp:
        env = json.dumps(envelope(key or self.key, body, payload_type, urlsafe=urlsafe)).encode()
        headers = {"Content-Type": "application/json"}
        if gz:
            env = gzip.compress(env)
            headers["Content-Encoding"] = "gzip"
        return http("POST", f"{self.url}/v1/reports", env, headers)

    def report(self, events: list[dict[str, Any]], **kw: Any) -> Resp:
        return self.post_raw(json.dumps(self.payload(events)).encode(), **kw)

    def state(self, last_seq: int, **extra: Any) -> Resp:
        p = {"v": 1, "agent_id": self.agent_id, "school_id": self.school_id, "last_seq": last_seq,
             "sent_at": now_rfc3339()}
        p.update(extra)
        return self.post_raw(json.dumps(p).encode(), STATE_TYPE)


# ---------------------------------------------------------------- databases


class PgDatabases:
    """Databases on the test PostgreSQL server, one per central the session starts; all dropped at its end.

    A database per central rather than a schema: it is what an operator configures (a plain URL),
    and CREATE DATABASE costs a few tens of milliseconds here.
    """

    def __init__(self) -> None:
        self.prefix = f"schulwart_contract_{os.getpid()}_{secrets.token_hex(3)}"
        self.names: list[str] = []
        self.error: str | None = None

    def create(self) -> str:
        """The URL of a new empty database; skips (or fails under CI) when the server cannot make one."""
        if self.error is None:
            name = f"{self.prefix}_{len(self.names)}"
            try:
                with admin() as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
            except psycopg.Error as exc:
                # Remembered: with no server, every later case is refused at once, not after a timeout.
                self.error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            else:
                self.names.append(name)
                return database_url(name)
        unavailable(self.error)
        raise AssertionError("unreachable: unavailable() skips or fails")

    def close(self) -> None:
        if not self.names:
            return
        try:
            with admin() as conn:
                for name in self.names:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error:
            pass  # a server gone at the end of the session leaves nothing of ours to clean


@dataclass(frozen=True)
class Database:
    """Where one central keeps its state: ``url`` None is the default SQLite file in its data dir."""

    backend: str
    url: str | None = None

    def toml(self, central: str = "") -> str:
        """A central config file: the [central] section naming this database, then ``central`` (more keys)."""
        db = f"db = {json.dumps(self.url)}\n" if self.url else ""
        return f"[central]\n{db}{central}"

    def write_config(self, path: Path, central: str = "") -> Path:
        path.write_text(self.toml(central))
        return path


def new_database(backend: str, pg: PgDatabases) -> Database:
    return Database(backend, pg.create() if backend == "postgresql" else None)


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    dbs = PgDatabases()
    try:
        yield dbs
    finally:
        dbs.close()


@pytest.fixture(params=BACKENDS)
def central_db(request: pytest.FixtureRequest, pg_databases: PgDatabases) -> Database:
    """A fresh database for a central of the test's own, once per backend."""
    return new_database(request.param, pg_databases)


# ---------------------------------------------------------------- central


@dataclass
class Central:
    data_dir: Path
    config: Path
    database: Database
    server: Server | None = None
    read_token: str = ""

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def backend(self) -> str:
        return self.database.backend

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return central(*args, "--data-dir", str(self.data_dir), "--config", str(self.config))

    def start(self) -> None:
        self.server = Server([CENTRAL, "serve", "--data-dir", str(self.data_dir), "--config", str(self.config),
                              "--host", "127.0.0.1", "--port", "0"])
        if self.database.url:  # a central that ignored its config would pass every test on SQLite
            dbname = urllib.parse.urlsplit(self.database.url).path.lstrip("/")
            assert f"/{dbname})" in self.server.text(), self.server.text()

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    def add_school(self, carrier: str = "Kreis-A", sid: str | None = None, name: str | None = None) -> str:
        sid = sid or f"s-{uuid.uuid4().hex[:8]}"
        p = self.cli("school", "add", "--id", sid, "--name", name or f"GS {sid}", "--carrier", carrier)
        assert p.returncode == 0, p.stderr
        return sid

    def code(self, school: str) -> str:
        return only_line(self.cli("enroll-code", "--school", school))

    def enroll(self, school: str, key: Ed25519PrivateKey | None = None) -> Enrolled:
        key = key or Ed25519PrivateKey.generate()
        r = http("POST", f"{self.url}/v1/enroll",
                 {"code": self.code(school), "public_key": b64(raw_public(key)), "hostname": "srv",
                  "agent_version": "contract-0"})
        assert r.status == 201, (r.status, r.body)
        a = r.json()
        return Enrolled(self.url, key, a["agent_id"], a["school_id"], a)

    def get(self, path: str, token: str | None = None) -> Resp:
        return http("GET", f"{self.url}{path}", token=token or self.read_token)

    def school(self, sid: str) -> dict[str, Any]:
        r = self.get(f"/v1/schools/{sid}")
        assert r.status == 200, (r.status, r.body)
        return r.json()

    def agent_row(self, sid: str, agent_id: str) -> dict[str, Any]:
        rows = [a for a in self.school(sid)["agents"] if a["agent_id"] == agent_id]
        assert len(rows) == 1, self.school(sid)["agents"]
        return rows[0]


def start_central(data_dir: Path, database: Database, central_toml: str = "") -> Central:
    """A central serving on ``database``; ``central_toml`` adds keys to its config's [central] section."""
    config = database.write_config(data_dir.with_name(f"{data_dir.name}.toml"), central_toml)
    c = Central(data_dir, config, database)
    c.start()  # serve creates the data dir; the other commands refuse one without a database
    c.read_token = only_line(c.cli("api-token", "create", "--name", "contract-suite"))
    return c


@pytest.fixture(scope="session", params=BACKENDS)
def central_srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                pg_databases: PgDatabases) -> Iterator[Central]:
    """One central per backend for the whole session; tests make their own schools so they do not interfere."""
    c = start_central(tmp_path_factory.mktemp("central"), new_database(request.param, pg_databases))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def shared_school(central_srv: Central) -> str:
    """A school for tests that look only at their own agents, not at the school's status."""
    return central_srv.add_school()


@pytest.fixture
def school(central_srv: Central) -> str:
    return central_srv.add_school()


@pytest.fixture
def enrolled(central_srv: Central, shared_school: str) -> Enrolled:
    return central_srv.enroll(shared_school)


def wait_for(pred: Any, timeout: float = 10, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(AssertionError, KeyError, IndexError):
            last = pred()
            if last:
                return last
        time.sleep(interval)
    return last


# ---------------------------------------------------------------- a real agent

AGENT_TOML = """\
[discovery]
enabled = false

[host]
disk_max_percent = 0.1
interval = 0.5

[incidents]
open_after = 1

[sync]
report_interval = 0.5
"""


@dataclass
class AgentProc:
    data_dir: Path
    config: Path
    server: Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return agent(*args, "--data-dir", str(self.data_dir), "--config", str(self.config))

    def status(self) -> dict[str, Any]:
        p = self.cli("status", "--json")
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def start(self) -> None:
        self.server = Server([AGENT, "run", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir),
                              "--config", str(self.config)])

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    def admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()


def enroll_agent(c: Central, school: str, base: Path, extra_toml: str = "") -> AgentProc:
    base.mkdir(parents=True, exist_ok=True)
    cfg = base / "agent.toml"
    cfg.write_text(AGENT_TOML + extra_toml)
    a = AgentProc(base / "data", cfg)
    p = agent("enroll", "--central", c.url, "--code", c.code(school), "--data-dir", str(a.data_dir))
    assert p.returncode == 0, p.stderr
    return a


@dataclass
class LiveAgent:
    central: Central
    school: str
    carrier: str
    proc: AgentProc
    incident_id: str


@pytest.fixture(scope="session")
def live_agent(central_srv: Central, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAgent]:
    """schulwart-agent enrolled against the session central, running, with one open (disk) incident synced."""
    carrier = f"Kreis-{uuid.uuid4().hex[:6]}"
    sid = central_srv.add_school(carrier=carrier)
    a = enroll_agent(central_srv, sid, tmp_path_factory.mktemp("agent"))
    a.start()
    try:
        admin = a.admin_token()

        def synced_incident() -> str | None:
            r = http("GET", f"{a.url}/api/v1/incidents", token=admin)
            incs = r.json()["incidents"]
            st = a.status()["outbox"]
            if incs and st["last_seq"] >= 2 and st["acked_seq"] == st["last_seq"]:
                return str(incs[0]["id"])
            return None

        inc = wait_for(synced_incident, timeout=20)
        assert inc, f"agent never opened and synced an incident:\n{a.server.text() if a.server else ''}"
        yield LiveAgent(central_srv, sid, carrier, a, inc)
    finally:
        a.stop()
