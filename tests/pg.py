"""A real PostgreSQL server for the tests: one migrated database per test session, emptied per test.

The server is the one at ``SCHULWART_TEST_POSTGRES`` (default postgres@127.0.0.1:5432, trust
auth, as on these machines). Without a server the PostgreSQL cases skip, unless
``SCHULWART_REQUIRE_POSTGRES=1`` (set by ``.ci/run``): then they fail, so CI never passes
with half the backends untested.

Why one database emptied per test rather than a database or a schema per test: CREATE
DATABASE … TEMPLATE costs ~0.2 s and DROP DATABASE ~1 s here, a schema migrated per test
~0.7 s; deleting the rows of a near-empty database without waiting for the fsync takes
a few milliseconds.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

SERVER = os.environ.get("SCHULWART_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRED = os.environ.get("SCHULWART_REQUIRE_POSTGRES") == "1"


def database_url(dbname: str, options: str | None = None) -> str:
    """The server's URL (a postgresql:// URI) with another database name, and libpq ``options`` if given."""
    parts = urlsplit(SERVER)
    query = urlencode({"options": options}, quote_via=quote) if options else ""
    return urlunsplit((parts.scheme, parts.netloc, f"/{dbname}", query, ""))


def unavailable(reason: str) -> None:
    """Skip the PostgreSQL case, or fail it under CI."""
    if REQUIRED:
        pytest.fail(f"PostgreSQL required (SCHULWART_REQUIRE_POSTGRES=1) but {reason}")
    pytest.skip(f"no PostgreSQL: {reason}")


def admin() -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to the server's maintenance database."""
    return psycopg.connect(SERVER, autocommit=True, connect_timeout=5)


class Server:
    """The session's database on the server; ``fresh()`` empties it for the next test."""

    def __init__(self) -> None:
        self.dbname = f"schulwart_test_{os.getpid()}_{secrets.token_hex(3)}"
        self.url = database_url(self.dbname)
        self.error: str | None = None
        try:
            with admin() as conn:
                conn.execute(f'CREATE DATABASE "{self.dbname}"')
        except psycopg.Error as exc:
            self.error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

    def fresh(self) -> str:
        """The URL of the session's database with every row of every table deleted (the schema stays)."""
        if self.error is not None:
            unavailable(self.error)
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn, conn.transaction():
            # The emptying need not be durable; not waiting for its fsync keeps a test at a few ms.
            conn.execute("SET LOCAL synchronous_commit = off")
            # Rows go in any order: foreign keys are not checked while emptying everything.
            conn.execute("SET LOCAL session_replication_role = replica")
            tables = [
                str(r[0])
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename != 'schema_migrations'"
                )
            ]
            if tables:
                conn.execute("; ".join(f'DELETE FROM "{name}"' for name in tables))
            for (sequence,) in conn.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname='public'"
            ).fetchall():
                conn.execute(f"ALTER SEQUENCE \"{sequence}\" RESTART")
        return self.url

    def new_schema(self) -> str:
        """A URL whose connections work in a new empty schema of the session's database (migration tests)."""
        if self.error is not None:
            unavailable(self.error)
        schema = f"s_{secrets.token_hex(6)}"
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return database_url(self.dbname, options=f"-c search_path={schema}")

    def close(self) -> None:
        if self.error is not None:
            return
        try:
            with admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        except psycopg.Error:
            pass  # a server gone at the end of the session leaves nothing of ours to clean


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    server = Server()
    yield server
    server.close()


def dbname_of(url: str) -> str:
    return str(conninfo_to_dict(url).get("dbname"))
