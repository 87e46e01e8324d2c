"""settle_heap: a node, once up, collects its young objects less often and never walks start-up's objects again."""

from __future__ import annotations

import json
import subprocess
import sys

from central.cli import GC_THRESHOLDS


def test_settle_heap_freezes_start_up_and_raises_the_threshold() -> None:
    # In a process of its own: the collector's settings are the whole process's.
    probe = (
        "import gc, json\n"
        "from central.cli import settle_heap\n"
        "before = (gc.get_threshold(), gc.get_freeze_count())\n"
        "settle_heap()\n"
        "print(json.dumps([before, [gc.get_threshold(), gc.get_freeze_count()], gc.isenabled()]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    before, after, enabled = json.loads(out)
    assert before == [[700, 10, 10], 0]
    assert after[0] == list(GC_THRESHOLDS) and GC_THRESHOLDS[0] > 700
    assert after[1] > 10_000  # the loaded modules and objects of central, frozen
    assert enabled  # cycles are still collected
