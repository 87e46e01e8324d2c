"""Run every benchmark module in bench/ and print one table.

Each ``bench_*.py`` exposes ``run() -> list[dict]`` whose rows have ``name``, ``value``,
``unit`` and optionally ``note``, and, for a figure measured against a baseline, ``baseline``
(measured in the same run, never a number from another day), ``ratio``, ``target`` and ``met``.
``python -m bench NAME`` runs one. Each module's rows are also written as JSON to
``bench/results/<module>.json`` (with the time of the run), for comparison across runs.
"""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def _modules(only: list[str]) -> list[str]:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    return [n for n in names if not only or any(o in n for o in only)]


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _save(name: str, results: list[dict[str, Any]], took: float) -> None:
    RESULTS.mkdir(exist_ok=True)
    doc = {"module": name, "ran_at": datetime.now(UTC).isoformat(timespec="seconds"), "took_s": round(took, 1)}
    (RESULTS / f"{name}.json").write_text(json.dumps({**doc, "rows": results}, indent=1) + "\n")


def main(argv: list[str]) -> int:
    """Run the benchmarks named in argv (all when none) and print the table to stdout."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    rows: list[tuple[str, ...]] = []
    failed = 0
    for name in _modules(argv):
        started = time.perf_counter()
        try:
            results = importlib.import_module(f"bench.{name}").run()
        except Exception as exc:  # one broken benchmark must not hide the others' rows
            failed += 1
            rows.append((name, "FAILED", "", "", "", "", "", "", f"{type(exc).__name__}: {exc}"[:100]))
            continue
        took = time.perf_counter() - started
        _save(name, results, took)
        for row in results:
            met = "" if "met" not in row else "met" if row["met"] else "NOT met"
            baseline = _fmt(row["baseline"]) if "baseline" in row else ""
            ratio, target = _fmt(row.get("ratio", "")), str(row.get("target", ""))
            unit, note = str(row.get("unit", "")), str(row.get("note", ""))
            rows.append((name, str(row["name"]), _fmt(row["value"]), unit, baseline, ratio, target, met, note))
        rows.append((name, "(benchmark wall time)", _fmt(took), "s", "", "", "", "", ""))
    header = ("module", "measure", "value", "unit", "baseline", "ratio", "target", "met", "note")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("{:<%d}" % w for w in widths)  # noqa: UP031 - widths are computed
    sys.stdout.write(line.format(*header) + "\n" + "  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        sys.stdout.write(line.format(*row) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
