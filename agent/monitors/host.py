"""The host monitor: this server's disk, memory, load, uptime, clock, and the agent itself.

psutil runs in a worker thread (it reads /proc and may stall on a hung mount); each
metric has its own narrow OSError catch, so one unreadable value never stops the rest.
Rules: disk over the threshold, memory pressure, clock far off from central's.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from agent.monitors.interface import MonitorReport, Signal
from base.agentconfig import HostSection

log = logging.getLogger(__name__)

_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised
_TIMEX_SIZE = 208  # sizeof(struct timex) on 64-bit Linux


@dataclass(frozen=True, slots=True)
class DiskUse:
    """One partition."""

    path: str
    percent: float
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class ClockState:
    """Whether the OS says the clock is synchronised, and the offset to central when known."""

    sync: str  # synced | unsynced | unknown
    source: str | None
    offset_s: float | None


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """One observation of the host; None where a metric could not be read."""

    root: DiskUse | None
    data: DiskUse | None
    data_on_root: bool
    memory_percent: float | None
    memory_available_percent: float | None
    load: tuple[float, float, float] | None
    cpu_count: int | None
    uptime_s: float | None
    clock: ClockState
    agent_rss_bytes: int | None
    agent_cpu_percent: float | None

    def to_json(self) -> dict[str, Any]:
        """The host section of the health snapshot."""
        return asdict(self)


def _disk(path: Path) -> DiskUse | None:
    try:
        usage = psutil.disk_usage(str(path))
    except OSError as exc:
        log.warning("host monitor: cannot read disk usage of %s: %s", path, exc)
        return None
    return DiskUse(str(path), float(usage.percent), int(usage.free), int(usage.total))


def _same_partition(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def _timedatectl() -> str | None:
    exe = shutil.which("timedatectl")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "show", "-p", "NTPSynchronized", "--value"], capture_output=True, text=True, timeout=3, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = out.stdout.strip()
    if out.returncode != 0 or value not in ("yes", "no"):
        return None  # no systemd (containers) or no D-Bus
    return "synced" if value == "yes" else "unsynced"


_libc: ctypes.CDLL | None = None


def _adjtimex() -> str | None:
    global _libc  # noqa: PLW0603 - one handle for the process, loaded at the first use
    try:
        if _libc is None:
            # dlopen(NULL): the libc this interpreter is linked with. find_library("c") would
            # run `ldconfig -p` (a child process) at every call.
            _libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(_TIMEX_SIZE)  # modes = 0: read only, needs no privilege
        state = int(_libc.adjtimex(buf))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None  # EPERM under systemd's ProtectClock
    return "unsynced" if state == _TIME_ERROR else "synced"


def clock_sync() -> tuple[str, str | None]:
    """Ask the kernel (adjtimex), then timedatectl; 'unknown' when neither answers.

    Returns (state, source): state is synced | unsynced | unknown, source "adjtimex",
    "timedatectl" or None. timedatectl's NTPSynchronized is itself read from adjtimex, so the
    kernel is asked first: no child process when it answers.
    """
    for source, probe in (("adjtimex", _adjtimex), ("timedatectl", _timedatectl)):
        state = probe()
        if state is not None:
            return state, source
    return "unknown", None


class ClockSyncProbe:
    """:func:`clock_sync` for a monitor that asks every round, without a child process per round.

    The kernel is asked each time (one system call). Where it refuses (systemd's ProtectClock)
    the answer comes from timedatectl, a child process, so that answer is kept for
    ``recheck_s`` seconds (default 15 min): whether NTP is synchronised changes rarely and only
    informs the snapshot, no rule.
    """

    def __init__(self, recheck_s: float = 900.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.recheck_s = recheck_s
        self._monotonic = monotonic
        self._kernel_refused = False
        self._cached: tuple[str, str | None] | None = None
        self._cached_at = 0.0

    def __call__(self) -> tuple[str, str | None]:
        """(state, source) as :func:`clock_sync` gives them."""
        if not self._kernel_refused:
            state = _adjtimex()
            if state is not None:
                return state, "adjtimex"
            self._kernel_refused = True  # a seccomp refusal does not go away while we run
        now = self._monotonic()
        if self._cached is None or now - self._cached_at >= self.recheck_s:
            state = _timedatectl()
            self._cached = (state, "timedatectl") if state is not None else ("unknown", None)
            self._cached_at = now
        return self._cached


class HostMonitor:
    """Watches this server; the first monitor on the Monitor seam."""

    name = "host"

    def __init__(
        self,
        data_dir: Path,
        settings: HostSection,
        clock_offset: Callable[[], float | None] = lambda: None,
        root: Path = Path("/"),
    ) -> None:
        self.interval_s = settings.interval
        self.settings = settings
        self.data_dir = data_dir
        self.root = root
        self._clock_offset = clock_offset
        self._process = psutil.Process()
        self._clock_sync = ClockSyncProbe()

    async def start(self) -> None:
        """Prime the CPU counter, so the first collect has a real percentage."""
        await asyncio.to_thread(self._process.cpu_percent, None)

    async def stop(self) -> None:
        """Nothing to release."""

    async def collect(self, now: datetime) -> MonitorReport:
        """Sample in a thread, then apply the rules."""
        offset = self._clock_offset()
        snapshot = await asyncio.to_thread(self.sample, offset)
        return MonitorReport(
            section="host", snapshot=snapshot.to_json(), signals=host_signals(snapshot, self.settings, now)
        )

    def sample(self, clock_offset: float | None = None) -> HostSnapshot:
        """One blocking sample (call it from a thread)."""
        memory_percent = memory_available = None
        try:
            vm = psutil.virtual_memory()
            memory_percent = float(vm.percent)
            memory_available = round(100.0 * vm.available / vm.total, 2) if vm.total else None
        except OSError as exc:
            log.warning("host monitor: cannot read memory: %s", exc)
        load: tuple[float, float, float] | None = None
        try:
            one, five, fifteen = psutil.getloadavg()
            load = (round(one, 2), round(five, 2), round(fifteen, 2))
        except OSError as exc:
            log.warning("host monitor: cannot read load: %s", exc)
        uptime = None
        try:
            uptime = round(time.time() - psutil.boot_time(), 1)
        except OSError as exc:
            log.warning("host monitor: cannot read boot time: %s", exc)
        rss = cpu = None
        try:
            with self._process.oneshot():
                rss = int(self._process.memory_info().rss)
                cpu = float(self._process.cpu_percent(None))
        except (OSError, psutil.Error) as exc:
            log.warning("host monitor: cannot read the agent's own usage: %s", exc)
        sync, source = self._clock_sync()
        return HostSnapshot(
            root=_disk(self.root),
            data=_disk(self.data_dir),
            data_on_root=_same_partition(self.root, self.data_dir),
            memory_percent=memory_percent,
            memory_available_percent=memory_available,
            load=load,
            cpu_count=psutil.cpu_count(),
            uptime_s=uptime,
            clock=ClockState(sync=sync, source=source, offset_s=clock_offset),
            agent_rss_bytes=rss,
            agent_cpu_percent=cpu,
        )


def _disk_signal(key: str, disk: DiskUse, limit: float, at: datetime) -> Signal:
    return Signal(
        key=key,
        bad=disk.percent > limit,
        category="host",
        severity="critical" if disk.percent >= 98.0 else "warning",
        title=f"Disk {disk.path} over {limit:g} % full",
        subject=disk.path,
        at=at,
        details={"percent": disk.percent, "free_bytes": disk.free_bytes},
        code="host.disk_full",
        params={"path": disk.path, "limit": f"{limit:g}"},
    )


def host_signals(snapshot: HostSnapshot, settings: HostSection, at: datetime) -> list[Signal]:
    """The host rules: disk full, memory pressure, clock far off."""
    signals: list[Signal] = []
    if snapshot.root is not None:
        signals.append(_disk_signal("host-disk:root", snapshot.root, settings.disk_max_percent, at))
    if snapshot.data is not None and not snapshot.data_on_root:
        signals.append(_disk_signal("host-disk:data", snapshot.data, settings.disk_max_percent, at))
    if snapshot.memory_available_percent is not None:
        available = snapshot.memory_available_percent
        limit = settings.memory_min_available_percent
        signals.append(
            Signal(
                key="host-memory",
                bad=available < limit,
                category="host",
                severity="critical" if available < limit / 2 else "warning",
                title="Memory pressure on the school server",
                subject=None,
                at=at,
                details={"available_percent": available},
                code="host.memory",
            )
        )
    offset = snapshot.clock.offset_s
    signals.append(
        Signal(
            key="host-clock",
            bad=offset is not None and abs(offset) > settings.clock_max_offset,
            category="host",
            severity="warning",
            title="Server clock far off from central's",
            subject=None,
            at=at,
            details={"offset_s": offset if offset is not None else 0.0, "synced": snapshot.clock.sync == "synced"},
            code="host.clock",
        )
    )
    return signals
