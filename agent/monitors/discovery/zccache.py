"""Keeping zeroconf's record cache compact: one object per cached record, one copy of each name.

python-zeroconf stores a record again each time it is re-announced, and keeps the first copy
too: its cache is a dict per name of ``{record: record}``, and assigning an equal record keeps
the old key object beside the new value; ``_expirations`` keeps the old key as well, and the
expiry heap keeps a tuple for every re-add (stale ones are only dropped once they outnumber the
live ones two to one). Every copy carries its own name, lower-cased key, target and TXT bytes.
A school's tablets re-announce their SRV and address records every couple of minutes (TTL 120 s),
so after a few rounds most records exist two or three times.

:func:`compact` makes each record's newest copy the only one (the same object as key and value,
in ``_expirations`` and once in the heap) and lets records share equal strings. It changes no
answer the cache gives: records compare and hash by their content, every lookup reads the
values (the newest copies), the heap keeps exactly the live entries zeroconf's own rebuild
keeps, and the dicts keep their order (``get_by_details`` returns the last added). Nothing is
evicted, so nothing is read again (dropping records was tried and cost 1.3 % CPU in re-reads).

This reaches into zeroconf's cache (``cache``, ``service_cache``, ``_expirations``,
``_expire_heap``, all public attributes of its compiled class). When a release changes their
shape, :func:`compact` returns None and changes nothing; ``tests/site/test_zccache.py`` fails then.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# The string fields of zeroconf's record classes (DNSPointer: alias, alias_key; DNSService:
# server, server_key; every record: name, key).
_STRING_FIELDS = ("name", "key", "alias", "alias_key", "server", "server_key")


@dataclass(frozen=True, slots=True)
class CompactStats:
    """What one pass did: records kept, record copies and stale heap entries let go."""

    records: int
    copies_dropped: int
    heap_dropped: int


def compact(cache: Any) -> CompactStats | None:
    """Compact zeroconf's ``DNSCache`` in place; None (nothing changed) when its shape is not the known one.

    Runs in the event loop, as zeroconf's own cache updates do; about 2 µs a record (8 ms for 4,000).
    """
    try:
        stores: dict[str, dict[Any, Any]] = cache.cache
        servers: dict[str, dict[Any, Any]] = cache.service_cache
        expirations: dict[Any, float] = cache._expirations
        heap: list[tuple[float, Any]] = cache._expire_heap
    except AttributeError:
        return None
    if not all(isinstance(x, dict) for x in (stores, servers, expirations)) or not isinstance(heap, list):
        return None
    try:
        return _compact(stores, servers, expirations, heap)
    except (AttributeError, TypeError) as exc:  # a record class without a field we write: leave it be
        log.debug("zeroconf cache not compacted: %s", exc)
        return None


def _compact(
    stores: dict[str, dict[Any, Any]],
    servers: dict[str, dict[Any, Any]],
    expirations: dict[Any, float],
    heap: list[tuple[float, Any]],
) -> CompactStats:
    strings: dict[str, str] = {}
    records = copies = 0
    for store in stores.values():
        canonical = {}
        stale = 0
        for key_record, record in store.items():
            if key_record is not record:
                stale += 1
            _share_strings(record, strings)
            canonical[record] = record
        records += len(canonical)
        if stale:
            copies += stale
            store.clear()
            store.update(canonical)  # same order: the newest copy where the oldest was

    def newest(record: Any) -> Any:
        store = stores.get(record.key)
        found = store.get(record) if store is not None else None
        return record if found is None else found

    for store in servers.values():
        if any(k is not v or newest(v) is not v for k, v in store.items()):
            canonical = {newest(r): newest(r) for r in store.values()}
            store.clear()
            store.update(canonical)
    if any(newest(r) is not r for r in expirations):
        current = {newest(r): when for r, when in expirations.items()}
        expirations.clear()
        expirations.update(current)
    live = [(when, record) for record, when in expirations.items()]
    heap_dropped = len(heap) - len(live)
    heapq.heapify(live)
    heap[:] = live
    return CompactStats(records=records, copies_dropped=copies, heap_dropped=heap_dropped)


def _share_strings(record: Any, strings: dict[str, str]) -> None:
    for field in _STRING_FIELDS:
        value = getattr(record, field, None)
        if type(value) is str:
            shared = strings.setdefault(value, value)
            if shared is not value:
                setattr(record, field, shared)
