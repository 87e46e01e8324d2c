"""Enrollment: make the key pair, trade the one-time code for an identity, write the local files.

The code ends in a pin of central's public keys (``SECRET.PIN``); the answer's keys must match
it, so whoever sits on the path (plain http, a proxy) cannot hand the agent keys of his own.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import secrets
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from agent.identity import ADMIN_TOKEN_FILE, KEY_FILE, Identity, agent_version, load_identity, save_identity
from agent.privacy import SECRET_FILE, load_or_create_secret
from agent.store import DB_NAME, Store
from agent.store.outbox import Outbox
from base.clock import Clock
from base.secretfile import ensure_private_dir, write_secret_file
from protocol.errors import ProtocolError, SchulwartError
from protocol.keys import (
    ENROLL_PIN_CHARS,
    generate_private_key,
    keyid,
    load_public_key_b64,
    pin_matches,
    private_key_to_pem,
    public_key_b64,
    public_key_raw,
    split_enroll_code,
)
from protocol.schema import format_time

log = logging.getLogger(__name__)

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_SYNC_KEYS = ("report_interval_s", "max_batch_events", "max_batch_bytes", "snapshot_interval_s")


class EnrollError(SchulwartError):
    """Enrollment was refused or could not be done."""

    reason = "enroll"


def _field(doc: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = doc.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > 300:
        raise EnrollError(f"central's enrollment answer has no usable {name!r}")
    return value


def _parse_answer(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise EnrollError("central's enrollment answer is not a JSON object")
    out: dict[str, Any] = {}
    for name in ("agent_id", "school_id"):
        value = _field(doc, name)
        assert value is not None
        if not _ID_RE.fullmatch(value):
            raise EnrollError(f"central's enrollment answer has a malformed {name}")
        out[name] = value
    out["carrier"] = _field(doc, "carrier", optional=True)
    out["school_name"] = _field(doc, "school_name", optional=True)
    for name in ("central_public_key", "token_public_key"):
        text = _field(doc, name)
        assert text is not None
        try:
            load_public_key_b64(text)  # a weak or malformed key is refused here, before it is trusted
        except ProtocolError as exc:
            raise EnrollError(f"central's {name} is refused: {exc.message}") from None
        out[name] = text
    sync = doc.get("sync") or {}
    if not isinstance(sync, dict):
        raise EnrollError("central's sync settings are not an object")
    out["sync"] = {k: sync[k] for k in _SYNC_KEYS if type(sync.get(k)) is int and sync[k] > 0}
    return out


async def _post(url: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(f"{url}/v1/enroll", json=body) as resp,
        ):
            try:
                doc = await resp.json(content_type=None)
            except (ValueError, aiohttp.ContentTypeError):
                doc = None
            if resp.status != 201:
                reason = doc.get("error") if isinstance(doc, dict) else None
                raise EnrollError(f"central refused the enrollment ({resp.status}): {reason or resp.reason}")
            return _parse_answer(doc)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise EnrollError(f"cannot reach central at {url}: {exc or type(exc).__name__}") from None


def plain_http_outside_loopback(url: str) -> bool:
    """Whether ``url`` is http:// to a host that is not this machine (reports would cross the network unencrypted)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name: it may resolve anywhere


def _check_pin(code: str) -> tuple[str, str]:
    """The code split into (code as sent, pin); EnrollError for a code without a usable pin."""
    secret, pin = split_enroll_code(code)
    if not secret:
        raise EnrollError("the enrollment code is empty")
    if pin is None or len(pin) != ENROLL_PIN_CHARS:
        raise EnrollError(
            "the enrollment code carries no pin of central's keys (it ends in '.' and 22 characters);"
            " copy the whole code, or make a new one with `schulwart-central enroll-code`"
        )
    return f"{secret}.{pin}", pin


def _verify_pin(pin: str, answer: dict[str, Any]) -> None:
    """Refuse an answer whose keys are not the ones the code was made for (someone on the path swapped them)."""
    config_raw = public_key_raw(load_public_key_b64(answer["central_public_key"]))
    token_raw = public_key_raw(load_public_key_b64(answer["token_public_key"]))
    if not pin_matches(pin, config_raw, token_raw):
        raise EnrollError(
            "central's keys do not match the pin in the enrollment code: refused (someone between this server"
            " and central may be answering in its place, or the code is for another central)"
        )


class _Made:
    """What a first enrollment created, so that a failure can take it back (nothing half-made is left)."""

    def __init__(self, data_dir: Path) -> None:
        self.dirs = ensure_private_dir(data_dir, tighten=True)
        self.files: list[Path] = []

    def undo(self) -> None:
        for path in reversed(self.files):
            for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                with contextlib.suppress(FileNotFoundError):
                    candidate.unlink()
        for directory in reversed(self.dirs):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if empty: never remove what someone else put there


async def enroll(
    central_url: str,
    code: str,
    data_dir: Path,
    clock: Clock,
    *,
    force: bool = False,
    timeout: float = 30.0,
) -> Identity:
    """Enroll this agent; refuses when already enrolled unless ``force``.

    Central is asked first, and only an answer whose keys match the code's pin is written:
    the data dir (0700), ``agent.db``, the key, the admin token and the privacy secret (0600).
    A first enrollment that fails leaves none of them behind. Raises EnrollError (one line).
    """
    url = central_url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise EnrollError(f"central URL {central_url!r} must start with http:// or https://")
    sent_code, pin = _check_pin(code)
    existing: Identity | None = None
    if (data_dir / DB_NAME).is_file():
        store = Store.open(data_dir)
        try:
            existing = load_identity(store)
        finally:
            store.close()
        if existing is not None and not force:
            raise EnrollError(
                f"already enrolled as agent {existing.agent_id} of school {existing.school_id}"
                " (use --force to enroll again)"
            )
    key = generate_private_key()
    body = {
        "code": sent_code,
        "public_key": public_key_b64(key),
        "hostname": socket.gethostname(),
        "agent_version": agent_version(),
    }
    answer = await _post(url, body, timeout)
    _verify_pin(pin, answer)
    identity = Identity(central_url=url, keyid=keyid(key), enrolled_at=format_time(clock.now()), **answer)
    made = _Made(data_dir) if existing is None else None
    try:
        if made is not None:
            made.files.append(data_dir / DB_NAME)
        store = Store.open(data_dir)
        try:
            # Key first, then the record naming it: a crash in between leaves "not enrolled".
            if made is not None:
                made.files.append(data_dir / KEY_FILE)
            write_secret_file(data_dir / KEY_FILE, private_key_to_pem(key))
            with store.transaction() as conn:
                save_identity(store, conn, identity)
            if made is not None:
                made.files += [data_dir / ADMIN_TOKEN_FILE, data_dir / SECRET_FILE]
            write_secret_file(data_dir / ADMIN_TOKEN_FILE, (secrets.token_urlsafe(32) + "\n").encode("ascii"))
            load_or_create_secret(data_dir)
            if existing is not None:
                moved = Outbox(store, clock).renumber_for_new_identity()
                log.warning(
                    "re-enrolled: agent %s -> %s; %d unsent events renumbered from 1 for the new identity",
                    existing.agent_id,
                    identity.agent_id,
                    moved,
                )
        finally:
            store.close()
    except BaseException:
        if made is not None:
            made.undo()
        raise
    log.info("school=%s enrolled as agent %s at %s", identity.school_id, identity.agent_id, url)
    return identity
