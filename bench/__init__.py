"""Benchmarks: each ``bench_*.py`` module exposes ``run() -> list[dict]``; ``python -m bench`` prints a table."""
