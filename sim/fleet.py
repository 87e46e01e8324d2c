"""Many simulated agents in one process, each with its own Ed25519 key, sending signed batches to central.

They speak the wire protocol as a real agent does (protocol.envelope, protocol.schema): one
report at a time per agent, numbered from the last ``acked_through``; a 409 with
``expected_seq`` resends from there; a network error or a 5xx is retried after a backoff
with jitter, capped. What an agent was acknowledged (``acked``) is what central promised to
keep: the HAProxy kill test checks exactly that, the scale benchmark times each answer.

A batch is the realistic mix of a school minute: 70 % device.seen, 10 % each health.snapshot,
incident.opened and incident.resolved (the issue's measured mix).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.envelope import sign
from protocol.keys import generate_private_key, keyid, public_key_raw
from protocol.schema import REPORT_TYPE, build_report, make_event

REQUEST_TIMEOUT_S = 30.0
RETRY_FIRST_S, RETRY_CAP_S = 0.2, 5.0
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def mixed_event(seq: int, salt: str = "") -> dict[str, Any]:
    """Event ``seq`` of the realistic mix; the same seq gives the same event (resends are identical)."""
    at = T0 + timedelta(seconds=seq)
    kind = seq % 10
    if kind == 0:
        return make_event(seq, at, "health.snapshot", {"host": {"cpu": 0.3, "mem": 0.6, "disk": 0.4}})
    if kind == 1:
        data = {"id": f"inc{seq}{salt}", "key": f"ap-down:{seq % 40}", "category": "wlan", "severity": "warning",
                "title": "Access point not answering", "subject": f"ap{seq % 40}"}  # fmt: skip
        return make_event(seq, at, "incident.opened", data)
    if kind == 2:
        return make_event(seq, at, "incident.resolved", {"id": f"inc{seq - 1}{salt}"})
    return make_event(seq, at, "device.seen", {"id": f"dev{seq % 240:03d}", "class": "ipad", "state": "present"})


@dataclass
class SimAgent:
    """One simulated agent: its identity, its key, the next seq it will number, what central acknowledged."""

    agent_id: str
    school_id: str
    key: Ed25519PrivateKey
    acked: int = 0
    produced: int = 0  # events numbered so far (1..produced exist)
    latencies: list[float] = field(default_factory=list)  # seconds per acknowledged batch
    errors: int = 0  # answers other than 200 and 409, and network errors
    last_error: str | None = None  # the last of them: an HTTP status and reason, or the exception
    staged: tuple[int, int, bytes] | None = None  # (first, last, envelope) signed ahead by stage()

    @classmethod
    def new(cls, school_id: str) -> SimAgent:
        """A fresh identity (not yet known to central)."""
        return cls("ag-" + secrets.token_hex(8), school_id, generate_private_key())

    @property
    def public_raw(self) -> bytes:
        return public_key_raw(self.key.public_key())

    @property
    def keyid(self) -> str:
        return keyid(self.public_raw)

    def report(self, first: int, last: int) -> bytes:
        """The signed report envelope of events first..last."""
        events = [mixed_event(seq) for seq in range(first, last + 1)]
        return sign(build_report(self.agent_id, self.school_id, events, datetime.now(UTC)), REPORT_TYPE, self.key)

    def stage(self, batch: int) -> None:
        """Number ``batch`` new events and sign their report now; a following ``send(…, 0, …)`` sends
        it as is (a load generator's own work done before the measured window starts)."""
        first = self.produced + 1
        self.produced += batch
        self.staged = (first, self.produced, self.report(first, self.produced))

    async def send(self, session: aiohttp.ClientSession, url: str, batch: int, *, deadline: float) -> bool:
        """Number ``batch`` new events and send until central acknowledges them (or ``deadline``, monotonic).

        True when acknowledged. Each attempt is bounded by REQUEST_TIMEOUT_S; retries back off
        with jitter up to RETRY_CAP_S.
        """
        self.produced += batch
        delay = RETRY_FIRST_S
        while self.acked < self.produced:
            if time.monotonic() > deadline:
                return False
            first = self.acked + 1
            if self.staged is not None and self.staged[:2] == (first, self.produced):
                body = self.staged[2]
            else:
                body = self.report(first, self.produced)
            started = time.perf_counter()
            try:
                async with session.post(
                    f"{url}/v1/reports", data=body, headers={"Content-Type": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
                ) as resp:  # fmt: skip
                    answer = await resp.json(content_type=None)
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                status, answer = 0, {"error": f"{type(exc).__name__}: {exc}"[:200]}
            if status == 200:
                self.acked = max(self.acked, int(answer["acked_through"]))
                self.latencies.append(time.perf_counter() - started)
                delay = RETRY_FIRST_S
                continue
            if status == 409 and isinstance(answer.get("expected_seq"), int):
                self.acked = max(self.acked, answer["expected_seq"] - 1)
                continue
            self.errors += 1
            self.last_error = f"{status} {answer.get('error', '')}" if isinstance(answer, dict) else str(status)
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, RETRY_CAP_S)
        return True
