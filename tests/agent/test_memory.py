"""Freed C-heap memory goes back to the system (agent/memory.py)."""

from __future__ import annotations

import ctypes
import os
import platform

import pytest

from agent.memory import release_free_memory

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_heap_in_the_middle_is_given_back() -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    size, count = 16 * 1024, 2048  # 32 MiB in blocks below the mmap threshold: the heap proper
    blocks = [libc.malloc(size) for _ in range(count)]
    for block in blocks:
        libc.memset(block, 1, size)  # touched, so resident
    for block in blocks[:-1]:  # the last block stays: the free space is not at the heap's top
        libc.free(block)
    before = _rss_bytes()
    assert release_free_memory() is True
    after = _rss_bytes()
    libc.free(blocks[-1])
    assert before - after > 16 * 1024 * 1024


_ARENAS = """
import ctypes, sys, threading
from agent.memory import share_one_heap

def arenas() -> int:
    # glibc reserves 64 MiB of address space for each thread arena (HEAP_MAX_SIZE)
    count = 0
    for line in open("/proc/self/maps"):
        start, end = (int(x, 16) for x in line.split()[0].split("-"))
        count += start % (64 << 20) == 0 and line.split()[1] == "rw-p" and not line.split()[5:]
    return count

if sys.argv[1] == "shared":
    assert share_one_heap()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
before = arenas()
worker = threading.Thread(target=lambda: [libc.malloc(512) for _ in range(64)])
worker.start()
worker.join()
print(arenas() - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="arenas are glibc's")
@pytest.mark.parametrize(("mode", "new_arenas"), [("own", 1), ("shared", 0)])
def test_a_thread_allocates_from_the_main_heap_once_shared(mode: str, new_arenas: int) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _ARENAS, mode], capture_output=True, text=True, check=True)
    assert int(out.stdout) == new_arenas
