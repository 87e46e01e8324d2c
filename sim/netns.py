"""Network namespaces joined to the root namespace by a veth pair: create, run inside, delete.

Needs root and iproute2's ``ip``. Deleting a namespace also removes the veth pair (both ends),
so :func:`delete` is the whole teardown.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

_TIMEOUT_S = 10.0
_NETNS_DIR = "/run/netns"
_IFNAME_MAX = 15  # IFNAMSIZ - 1


class NetnsError(RuntimeError):
    """An ``ip`` command failed."""


@dataclass(frozen=True)
class Netns:
    """A namespace with one veth to the root namespace: host_ip on the root side, ns_ip inside."""

    name: str
    host_if: str
    host_ip: str
    ns_ip: str
    prefix: int = 24

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """The argv that runs ``argv`` inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    return None


def _ip(*args: str) -> str:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise NetnsError(f"ip {' '.join(args)}: no answer within {_TIMEOUT_S:.0f}s") from None
    if done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


def list_names(prefix: str = "") -> list[str]:
    """Names of the existing namespaces that start with ``prefix``."""
    names = [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]
    return [name for name in names if name.startswith(prefix)]


def used_octets(net: str) -> set[int]:
    """Third octets X already used by an address 'net.X.*' in the root namespace (net like '10.231')."""
    pattern = re.compile(rf"\binet {re.escape(net)}\.(\d+)\.")
    return {int(m.group(1)) for m in pattern.finditer(_ip("-o", "-4", "addr", "show"))}


def create(name: str, host_if: str, ns_if: str, host_ip: str, ns_ip: str, prefix: int = 24) -> Netns:
    """Make the namespace and its veth, both ends addressed and up; undone again if any step fails."""
    for ifname in (host_if, ns_if):
        if len(ifname) > _IFNAME_MAX:
            raise NetnsError(f"interface name {ifname!r} is longer than {_IFNAME_MAX} characters")
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", name)
        _ip("addr", "add", f"{host_ip}/{prefix}", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", name, "addr", "add", f"{ns_ip}/{prefix}", "dev", ns_if)
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "set", ns_if, "up")
    except NetnsError:
        delete(name)
        raise
    return Netns(name, host_if, host_ip, ns_ip, prefix)


def _kill_inside(name: str) -> None:
    """SIGKILL whatever still runs in the namespace (it would keep the namespace alive)."""
    try:
        pids = [int(p) for p in _ip("netns", "pids", name).split()]
    except NetnsError as exc:
        log.debug("cannot list processes in %s: %s", name, exc)
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            log.warning("killed leftover process %d in namespace %s", pid, name)
        except ProcessLookupError:
            continue  # it ended between listing and killing


def delete(name: str) -> bool:
    """Delete the namespace (and with it its veth pair); False if it is still there afterwards."""
    _kill_inside(name)
    try:
        _ip("netns", "del", name)
    except NetnsError as exc:
        if os.path.exists(f"{_NETNS_DIR}/{name}"):
            log.error("cannot delete namespace %s: %s", name, exc)
            return False
    return True


def leftovers(prefix: str, min_age_s: float) -> list[str]:
    """Namespaces named ``prefix…`` older than ``min_age_s`` with no process inside: left by a killed owner."""
    found = []
    now = time.time()
    for name in list_names(prefix):
        try:
            age = now - os.stat(f"{_NETNS_DIR}/{name}").st_mtime  # the mount point is made with the namespace
        except OSError:
            continue
        if age < min_age_s:
            continue
        try:
            empty = not _ip("netns", "pids", name).split()
        except NetnsError:
            continue  # deleted meanwhile
        if empty:
            found.append(name)
    return found


def set_blackhole(name: str, address: str, on: bool) -> None:
    """Inside namespace ``name``, drop (or stop dropping) all traffic to ``address``: a cut uplink.

    A /32 blackhole route beats the veth's connected /24, so connects fail at once with "network
    unreachable" while multicast on the school LAN goes on. Raises NetnsError when ``ip`` fails.
    """
    _ip("-n", name, "route", "add" if on else "del", "blackhole", f"{address}/32")
