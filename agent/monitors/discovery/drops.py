"""Kernel receive drops of our own UDP sockets, from /proc/net/udp (the 'drops' column)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

_PROC_FILES = (Path("/proc/net/udp"), Path("/proc/net/udp6"))


def parse_drops(text: str, inodes: set[int]) -> int | None:
    """Sum of the drops column over the sockets with these inodes; None if none was found."""
    total = 0
    found = False
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 13:
            continue
        try:
            inode = int(fields[9])
            drops = int(fields[12])
        except ValueError:
            continue
        if inode in inodes:
            total += drops
            found = True
    return total if found else None


def socket_drops(inodes: Iterable[int]) -> int | None:
    """Drops counted by the kernel for these sockets (blocking: call it from a thread)."""
    wanted = set(inodes)
    if not wanted:
        return None
    total: int | None = None
    for path in _PROC_FILES:
        try:
            text = path.read_text()
        except OSError:
            continue
        found = parse_drops(text, wanted)
        if found is not None:
            total = (total or 0) + found
    return total
