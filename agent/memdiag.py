"""Memory diagnostics of a running agent, for profiling only (off unless an environment variable asks).

``SCHULWART_MEMDIAG=DIR`` makes the agent write a report to ``DIR/memdiag-<pid>-<n>.txt`` on each
SIGUSR2: ``/proc/self/smaps_rollup``, the largest mappings, objects counted by type
(``gc.get_objects``), pymalloc's arena statistics (``sys._debugmallocstats``, which writes to
stderr, so it goes through a duplicated file descriptor) and, when Python's own
``PYTHONTRACEMALLOC=N`` is set too (tracing from the interpreter's start, imports included),
tracemalloc's top allocation sites with N frames, grouped by file and by line (and the whole
snapshot beside it, ``memdiag-<pid>-<n>.tracemalloc``, for ``tracemalloc.Snapshot.load``). The
benchmark ``python -m bench footprint`` sends the signal at the end of its window when
``SCHULWART_BENCH_FOOTPRINT_MEMDIAG`` names a directory. tracemalloc itself costs memory (it about
doubled the agent's RSS with 25 frames), so RSS figures come from runs without it.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import io
import os
import signal
import sys
from pathlib import Path

ENV_DIR = "SCHULWART_MEMDIAG"
_TOP = 40


def install(loop: asyncio.AbstractEventLoop) -> bool:
    """Write a report on each SIGUSR2 when ``SCHULWART_MEMDIAG`` names a directory; False when it does not."""
    directory = os.environ.get(ENV_DIR)
    if not directory:
        return False
    count = 0

    def dump() -> None:
        nonlocal count
        count += 1
        path = Path(directory) / f"memdiag-{os.getpid()}-{count}.txt"
        traced = _traced()  # before the snapshots below, which are traced themselves
        if traced is not None:  # the whole snapshot too, for offline grouping (before the report,
            import tracemalloc  # whose appearance tells the benchmark that both are written)

            tracemalloc.take_snapshot().dump(str(path.with_suffix(".tracemalloc")))
        path.write_text(report(traced))

    loop.add_signal_handler(signal.SIGUSR2, dump)
    return True


def report(traced: tuple[int, int] | None = None) -> str:
    """The whole report as text (sections headed by ``== name``).

    ``traced`` is tracemalloc's (current, peak) bytes taken before anything of the report was
    allocated; None reads them now.
    """
    out = io.StringIO()
    traced = traced or _traced()
    if traced is not None:
        out.write(f"== tracemalloc before the report: {traced[0] / 1048576:.2f} MiB traced, "
                  f"peak since the start {traced[1] / 1048576:.2f} MiB\n")  # fmt: skip
    out.write("== status (VmHWM: the peak RSS)\n")
    status = _read("/proc/self/status").splitlines()
    out.write("".join(line + "\n" for line in status if line.startswith(("VmHWM", "VmRSS"))))
    out.write("== smaps_rollup\n")
    out.write(_read("/proc/self/smaps_rollup"))
    out.write("\n== largest mappings (Rss kB, Anonymous kB, name)\n")
    out.write(_largest_mappings())
    out.write("\n== objects by type (count, shallow bytes)\n")
    out.write(_objects_by_type())
    out.write("\n== zeroconf cache\n")
    out.write(_zeroconf_cache())
    out.write("\n== modules\n")
    out.write(f"{len(sys.modules)} modules loaded\n")
    if _tracing():
        out.write(_tracemalloc_top())
    out.write("\n== pymalloc (sys._debugmallocstats)\n")
    out.write(_debugmallocstats())
    return out.getvalue()


def _tracing() -> bool:
    import tracemalloc

    return tracemalloc.is_tracing()


def _traced() -> tuple[int, int] | None:
    import tracemalloc

    return tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        return f"({exc})\n"


def _largest_mappings() -> str:
    rows: list[tuple[int, int, str]] = []
    name, rss, anon = "", 0, 0
    for line in _read("/proc/self/smaps").splitlines():
        parts = line.split()
        if not parts:
            continue
        if not parts[0].endswith(":"):  # a mapping's header: address range, perms, offset, dev, inode, [path]
            if name or rss:
                rows.append((rss, anon, name))
            name, rss, anon = (parts[5] if len(parts) > 5 else f"[anon {parts[0]}]"), 0, 0
        elif parts[0] == "Rss:":
            rss = int(parts[1])
        elif parts[0] == "Anonymous:":
            anon = int(parts[1])
    rows.append((rss, anon, name))
    by_name: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for r, a, n in rows:
        key = n if not n.startswith("[anon ") else "[anon]"
        by_name[key][0] += r
        by_name[key][1] += a
    top = sorted(by_name.items(), key=lambda kv: -kv[1][0])[:_TOP]
    return "".join(f"{r:8d} {a:8d} {n}\n" for n, (r, a) in top)


def _objects_by_type() -> str:
    counts: collections.Counter[str] = collections.Counter()
    sizes: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
    total = sum(sizes.values())
    lines = [f"{sum(counts.values())} tracked objects, {total / 1024:.0f} KiB shallow\n"]
    lines += [f"{counts[n]:8d} {sizes[n] / 1024:9.1f} KiB {n}\n" for n, _ in sizes.most_common(_TOP)]
    return "".join(lines)


def _zeroconf_cache() -> str:
    """Records in each running zeroconf's cache, by record type and by the service type they belong to."""
    out = io.StringIO()
    for obj in gc.get_objects():
        if type(obj).__name__ != "AsyncZeroconf":
            continue
        cache = obj.zeroconf.cache
        by_type: collections.Counter[str] = collections.Counter()
        by_service: collections.Counter[str] = collections.Counter()
        text_bytes = 0
        records = 0
        for name, entries in cache.cache.items():
            labels = name.split(".")
            service = ".".join(labels[-3:]) if len(labels) >= 3 and labels[-3].startswith("_") else "(host or other)"
            for record in entries:
                records += 1
                by_type[type(record).__name__] += 1
                by_service[service] += 1
                text_bytes += len(getattr(record, "text", b""))
        objects = {id(r) for store in cache.cache.values() for pair in store.items() for r in pair}
        objects |= {id(r) for r in cache._expirations}
        objects |= {id(entry[1]) for entry in cache._expire_heap}
        strings = {id(getattr(r, a)) for store in cache.cache.values() for r in store.values()
                   for a in ("name", "key", "alias", "alias_key", "server", "server_key") if hasattr(r, a)}  # fmt: skip
        out.write(f"record objects alive {len(objects)} (for {records} records); distinct str objects in the "
                  f"current records {len(strings)}\n")  # fmt: skip
        out.write(f"{len(cache.cache)} names, {records} records, {len(cache.service_cache)} servers, "
                  f"expire heap {len(cache._expire_heap)}, expirations {len(cache._expirations)}, "
                  f"TXT bytes {text_bytes}\n")  # fmt: skip
        out.write("".join(f"{n:7d} {t}\n" for t, n in by_type.most_common()))
        out.write("".join(f"{n:7d} {t}\n" for t, n in by_service.most_common(_TOP)))
    return out.getvalue()


def _tracemalloc_top() -> str:
    import tracemalloc

    snap = tracemalloc.take_snapshot()
    out = io.StringIO()
    current, peak = tracemalloc.get_traced_memory()
    out.write(f"\n== tracemalloc: {current / 1048576:.2f} MiB traced, peak {peak / 1048576:.2f} MiB\n")
    out.write("-- by file\n")
    for stat in snap.statistics("filename")[:_TOP]:
        out.write(f"{stat.size / 1024:9.1f} KiB {stat.count:7d} {stat.traceback[0].filename}\n")
    out.write("-- by line\n")
    for stat in snap.statistics("lineno")[:_TOP]:
        frame = stat.traceback[0]
        out.write(f"{stat.size / 1024:9.1f} KiB {stat.count:7d} {frame.filename}:{frame.lineno}\n")
    out.write("-- by traceback (top 15)\n")
    for stat in snap.statistics("traceback")[:15]:
        out.write(f"{stat.size / 1024:9.1f} KiB {stat.count:7d}\n")
        for line in stat.traceback.format()[-12:]:
            out.write(f"    {line}\n")
    return out.getvalue()


def _debugmallocstats() -> str:
    """``sys._debugmallocstats`` writes to C stderr: point fd 2 at a temporary file for the call."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    # The per-size-class table is long; the summary at its end is what matters.
    return "\n".join(text.splitlines()[-40:]) + "\n"
