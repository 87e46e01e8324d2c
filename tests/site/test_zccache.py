"""zeroconf's cache compacted in place answers as before, with one object per record (zccache.py)."""

from __future__ import annotations

import socket

from zeroconf import DNSAddress, DNSCache, DNSNsec, DNSPointer, DNSService, DNSText
from zeroconf.const import _CLASS_IN, _CLASS_UNIQUE, _TYPE_A, _TYPE_AAAA, _TYPE_NSEC, _TYPE_PTR, _TYPE_SRV, _TYPE_TXT

from agent.monitors.discovery.zccache import compact

TYPE = "_companion-link._tcp.local."
T0 = 1_000_000.0  # ms, zeroconf's clock unit


def _records(i: int, created: float, ttl_short: int = 120) -> list[object]:
    """One tablet's announcement as zeroconf parses it: every record (and string) a new object."""
    host = f"iPad-{i:03d}.local."
    name = f"Lenas iPad {i}.{TYPE}"
    ip = socket.inet_aton(f"10.1.0.{i}")
    records = [
        DNSPointer("".join(TYPE), _TYPE_PTR, _CLASS_IN, 4500, "".join(name), created),
        DNSService("".join(name), _TYPE_SRV, _CLASS_IN | _CLASS_UNIQUE, ttl_short, 0, 0, 49152, "".join(host), created),
        DNSText("".join(name), _TYPE_TXT, _CLASS_IN | _CLASS_UNIQUE, 4500, b"\x0erpMd=iPad13,18", created),
        DNSAddress("".join(host), _TYPE_A, _CLASS_IN | _CLASS_UNIQUE, ttl_short, ip, created=created),
        DNSNsec("".join(host), _TYPE_NSEC, _CLASS_IN | _CLASS_UNIQUE, ttl_short, "".join(host), [_TYPE_A, _TYPE_AAAA],
                created=created),
    ]  # fmt: skip
    return records


def _view(cache: DNSCache) -> list[tuple[str, list[tuple[str, int, float]]]]:
    """Everything a reader of the cache can see, by name, in order."""
    return [
        (key, [(repr(r), r.ttl, r.created) for r in store.values()]) for key, store in cache.cache.items()
    ]


def _filled(rounds: int) -> DNSCache:
    cache = DNSCache()
    for round_ in range(rounds):  # each round re-announces the same records, 100 s apart
        for i in range(1, 21):
            cache.async_add_records(_records(i, T0 + round_ * 100_000))
    return cache


def test_compacting_keeps_every_answer_and_drops_the_copies() -> None:
    cache, reference = _filled(4), _filled(4)
    before = _view(cache)
    assert any(k is not v for store in cache.cache.values() for k, v in store.items())  # the copies exist

    stats = compact(cache)

    assert stats is not None and stats.records == 100 and stats.copies_dropped > 0 and stats.heap_dropped > 0
    assert _view(cache) == before == _view(reference)
    for store in [*cache.cache.values(), *cache.service_cache.values()]:
        for key_record, record in store.items():
            assert key_record is record
            assert cache.cache[record.key][record] is record  # one object for the record everywhere
    assert all(cache.cache[r.key][r] is r for r in cache._expirations)
    assert len(cache._expire_heap) == len(cache._expirations)
    live = {(when, id(r)) for r, when in cache._expirations.items()}
    assert {(when, id(r)) for when, r in cache._expire_heap} == live
    srv = cache.get_by_details(f"Lenas iPad 7.{TYPE}", _TYPE_SRV, _CLASS_IN)
    ptrs = cache.get_all_by_details(TYPE, _TYPE_PTR, _CLASS_IN)
    assert srv is not None and srv.server == "iPad-007.local."
    assert all(p.name is ptrs[0].name for p in ptrs)  # equal strings shared
    assert srv.name is next(p.alias for p in ptrs if p.alias == srv.name)
    assert cache.entries_with_server("iPad-007.local.") == reference.entries_with_server("iPad-007.local.")


def test_a_compacted_cache_expires_and_recognises_records_as_zeroconf_would() -> None:
    cache, reference = _filled(3), _filled(3)
    compact(cache)
    # A re-announcement is not new; a new tablet is.
    assert cache.async_add_records(_records(5, T0 + 300_000)) is reference.async_add_records(_records(5, T0 + 300_000))
    assert cache.async_add_records(_records(30, T0 + 300_000)) is True
    reference.async_add_records(_records(30, T0 + 300_000))
    for now in (T0 + 400_000, T0 + 500_000, T0 + 5_000_000):
        expired = sorted(map(repr, cache.async_expire(now)))
        assert expired == sorted(map(repr, reference.async_expire(now)))
        assert _view(cache) == _view(reference)
    assert cache.cache == {} and cache._expirations == {}


def test_an_unknown_cache_shape_is_left_alone() -> None:
    class Other:
        def __init__(self) -> None:
            self.cache: dict[str, object] = {}

    assert compact(Other()) is None
    assert compact(object()) is None
