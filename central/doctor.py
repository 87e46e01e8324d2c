"""`schulwart-central doctor`: the database, the keys, the disk and the clock, one line each.

Read-only: the database is opened read-only (nothing is migrated or created), the key files
are only read. A failed line says how to fix it; the command exits 0 only when none failed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

from base.cli import Check
from base.errors import DatabaseError
from base.secretfile import read_secret_file
from base.sqlite import schema_version
from central.config import CentralConfig
from central.keystore import CONFIG_KEY_FILE, TOKEN_KEY_FILE
from central.storage.migrations import LATEST
from protocol.errors import MalformedError
from protocol.keys import private_key_from_pem

MIN_FREE_BYTES = 1024 * 1024 * 1024
MIN_FREE_FRACTION = 0.05


def check_database(config: CentralConfig) -> list[Check]:
    """The database opens read-only, passes SQLite's quick check, and its schema is one this central knows."""
    path = config.db_path
    if path is None:
        return check_postgres(str(config.database))
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return [Check("database", "fail", f"{path}: {exc}")]
    try:
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        version = schema_version(conn)
        schools = conn.execute("SELECT count(*) FROM schools").fetchone()[0]
    except sqlite3.Error as exc:
        return [Check("database", "fail", f"{path}: {exc}; restore it from the backup")]
    finally:
        conn.close()
    if verdict != "ok":
        return [Check("database", "fail", f"{path}: quick_check says {verdict!r}; restore it from the backup")]
    if version > LATEST:
        return [Check("database", "fail", f"{path} has schema {version}, this central knows {LATEST}: upgrade")]
    later = "" if version == LATEST else f"; migrated from schema {version} to {LATEST} at the next start"
    checks = [Check("database", "ok", f"{path}: {schools} school(s), schema {version}{later}")]
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        checks.append(Check("database mode", "fail", f"{path} is {mode:04o}: chmod 600 {path}"))
    return checks


def check_postgres(url: str) -> list[Check]:
    """The PostgreSQL server answers within 5 s (read-only session) and its schema is one this central knows."""
    import psycopg

    from central.storage.postgres import describe, with_options
    from central.storage.postgres_migrations import LATEST as PG_LATEST

    where = describe(url)
    try:
        options = with_options(url, "-c default_transaction_read_only=on")
        with psycopg.connect(url, connect_timeout=5, options=options) as conn:
            exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
            version = 0
            schools = 0
            if exists and exists[0]:
                version = int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0])  # type: ignore[index]
            if version:
                schools = int(conn.execute("SELECT count(*) FROM schools").fetchone()[0])  # type: ignore[index]
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return [Check("database", "fail", f"{where}: {first}")]
    except DatabaseError as exc:
        return [Check("database", "fail", exc.message)]
    if version > PG_LATEST:
        return [Check("database", "fail", f"{where} has schema {version}, this central knows {PG_LATEST}: upgrade")]
    later = "" if version == PG_LATEST else f"; migrated from schema {version} to {PG_LATEST} at the next start"
    return [Check("database", "ok", f"{where}: {schools} school(s), schema {version}{later}")]


def check_keys(data_dir: Path) -> list[Check]:
    """Both signing keys: present, readable Ed25519 keys, owner-only."""
    checks = []
    for name, what in ((CONFIG_KEY_FILE, "config-signing key"), (TOKEN_KEY_FILE, "token-issuer key")):
        path = data_dir / "keys" / name
        try:
            private_key_from_pem(read_secret_file(path))
        except FileNotFoundError:
            checks.append(Check(what, "fail", f"{path} is missing: restore it from the backup (enrolled agents "
                                "pinned it); a new central creates it at its first `serve`"))  # fmt: skip
            continue
        except OSError as exc:
            checks.append(Check(what, "fail", f"cannot read {path}: {exc.strerror}"))
            continue
        except MalformedError as exc:
            checks.append(Check(what, "fail", f"{path} is unusable: {exc.message}; restore it from the backup"))
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            checks.append(Check(what, "fail", f"{path} is {mode:04o}: chmod 600 {path}"))
        else:
            checks.append(Check(what, "ok", f"{path} (0600)"))
    return checks


def check_disk(data_dir: Path) -> Check:
    """Free space where the data dir is (1 GiB and 5 % at least)."""
    usage = shutil.disk_usage(data_dir)
    free = f"{usage.free / 2**30:.1f} GiB free ({usage.free / usage.total:.0%}) on {data_dir}"
    if usage.free < MIN_FREE_BYTES or usage.free / usage.total < MIN_FREE_FRACTION:
        return Check("disk", "fail", f"{free}: make room (SQLite refuses writes on a full disk: reports get 5xx)")
    return Check("disk", "ok", free)


def check_data_dir(data_dir: Path) -> Check:
    """The data dir belongs to this user and nobody else may enter it."""
    info = data_dir.stat()
    if info.st_uid != os.geteuid():
        return Check("data dir", "fail", f"{data_dir} belongs to uid {info.st_uid}: run as central's user")
    if info.st_mode & 0o077:
        return Check("data dir", "fail", f"{data_dir} is {stat.S_IMODE(info.st_mode):04o}: chmod 700 {data_dir}")
    return Check("data dir", "ok", f"{data_dir} (0700, this user's)")


def check_clock() -> Check:
    """Whether the system clock is NTP-synchronised (timedatectl); skipped where that cannot be asked.

    Central's clock is the one agents' skew is measured against and technician tokens are dated by.
    """
    exe = shutil.which("timedatectl")
    if exe is None:
        return Check("clock", "skip", "timedatectl is not installed: check time sync by hand")
    try:
        done = subprocess.run([exe, "show", "--property=NTPSynchronized", "--value"], capture_output=True,
                              text=True, timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("clock", "skip", f"timedatectl did not answer: {exc}")
    answer = done.stdout.strip()
    if done.returncode != 0 or answer not in ("yes", "no"):
        return Check("clock", "skip", "timedatectl cannot tell (no systemd-timedated here)")
    if answer == "no":
        return Check("clock", "fail", "not synchronised: timedatectl set-ntp true (tokens and skew flags need it)")
    return Check("clock", "ok", "synchronised (NTP)")


def run_checks(config: CentralConfig) -> list[Check]:
    """Every check, in the order the lines are printed."""
    return [
        check_data_dir(config.data_dir),
        *check_database(config),
        *check_keys(config.data_dir),
        check_disk(config.data_dir),
        check_clock(),
    ]
