"""Which network interfaces discovery listens on: by default the one of the default route.

A school server often has more than its school LAN: a VPN to the carrier, container bridges,
a second uplink. Listening on every interface would inventory devices of networks that are
not the school's, so the default is the interface that carries the default route, found the
way Home Assistant's network integration finds its default adapter: the source address the
kernel picks for the mDNS group (a UDP ``connect`` sends nothing). ``[discovery] interfaces``
overrides it with names or addresses, or ``["all"]`` for every interface.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import ifaddr

log = logging.getLogger(__name__)

ALL = "all"
MDNS_GROUP = "224.0.0.251"
_PROC_ROUTE = Path("/proc/net/route")

Mode = Literal["configured", "default-route", "only-interface", "all"]


@dataclass(frozen=True, slots=True)
class Interface:
    """One network interface of this host with its IPv4 addresses."""

    name: str
    ipv4: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InterfaceChoice:
    """What discovery listens on: ``addresses`` (IPv4; empty means every interface) and why (``mode``)."""

    addresses: tuple[str, ...]
    mode: Mode
    names: tuple[str, ...]
    note: str = ""


def host_interfaces() -> list[Interface]:
    """The interfaces of this host that have an IPv4 address, loopback included, in the system's order."""
    found = []
    for adapter in ifaddr.get_adapters():
        ipv4 = tuple(str(ip.ip) for ip in adapter.ips if ip.is_IPv4)
        if ipv4:
            found.append(Interface(adapter.nice_name, ipv4))
    return found


def _source_address() -> str | None:
    """The local IPv4 address the kernel would send mDNS from (no packet is sent); None without a route."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect((MDNS_GROUP, 5353))
        address = str(sock.getsockname()[0])
    except OSError as exc:
        if exc.errno not in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EINVAL):
            log.warning("cannot ask the kernel for the default route: %s", exc)
        return None
    finally:
        sock.close()
    return None if address == "0.0.0.0" else address  # noqa: S104 - the kernel's "none"


def _proc_default_route() -> str | None:
    """The interface name of the lowest-metric IPv4 default route in /proc/net/route (Linux), or None."""
    try:
        lines = _PROC_ROUTE.read_text().splitlines()[1:]
    except OSError:
        return None
    best: tuple[int, str] | None = None
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[1] != "00000000" or fields[7] != "00000000":
            continue
        if not int(fields[3], 16) & 0x1:  # RTF_UP
            continue
        metric = int(fields[6])
        if best is None or metric < best[0]:
            best = (metric, fields[0])
    return None if best is None else best[1]


def default_route_interface(interfaces: list[Interface] | None = None) -> Interface | None:
    """The interface of the default route (its IPv4 addresses), or None when the host has no default route."""
    interfaces = host_interfaces() if interfaces is None else interfaces
    source = _source_address()
    if source is not None and not ipaddress.ip_address(source).is_loopback:
        for interface in interfaces:
            if source in interface.ipv4:
                return interface
    name = _proc_default_route()
    return next((i for i in interfaces if i.name == name), None)


def choose_interfaces(configured: tuple[str, ...]) -> InterfaceChoice:
    """The interfaces discovery listens on for ``[discovery] interfaces`` (already resolved to addresses).

    ``()`` (the default): the default route's interface; with no default route (an offline school
    network) the only non-loopback interface; failing that every interface, with a note saying so.
    ``("all",)``: every interface. Anything else: those addresses.
    """
    interfaces = host_interfaces()
    by_address = {ip: i.name for i in interfaces for ip in i.ipv4}
    if configured == (ALL,):
        return InterfaceChoice((), "all", tuple(i.name for i in interfaces))
    if configured:
        return InterfaceChoice(configured, "configured", tuple(dict.fromkeys(by_address.get(a, a) for a in configured)))
    chosen = default_route_interface(interfaces)
    if chosen is not None:
        return InterfaceChoice(chosen.ipv4, "default-route", (chosen.name,))
    outside = [i for i in interfaces if not all(ipaddress.ip_address(a).is_loopback for a in i.ipv4)]
    if len(outside) == 1:
        return InterfaceChoice(outside[0].ipv4, "only-interface", (outside[0].name,))
    note = "no default route and several interfaces: listening on every interface; set [discovery] interfaces"
    return InterfaceChoice((), "all", tuple(i.name for i in interfaces), note)


def interfaces_json(choice: InterfaceChoice) -> dict[str, object]:
    """For `status`: the chosen interfaces, why, and the others this host has (which discovery ignores)."""
    others = [
        {"name": i.name, "ipv4": list(i.ipv4)}
        for i in host_interfaces()
        if choice.addresses and i.name not in choice.names and not set(i.ipv4) & set(choice.addresses)
    ]
    return {
        "mode": choice.mode,
        "listening": list(choice.names),
        "addresses": list(choice.addresses) or ["all"],
        "ignored": others,
        "note": choice.note or None,
    }
