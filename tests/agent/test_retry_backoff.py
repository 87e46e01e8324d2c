"""The sync loop's own full-jitter backoff (it replaced tenacity, which cost 0.5 MiB of RSS)."""

from __future__ import annotations

import random

import pytest

from agent.sync.client import retry_delay


@pytest.mark.parametrize(("attempt", "high"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (10_000, 60.0)])
def test_the_delay_is_uniform_below_the_doubling_bound_and_the_cap(attempt: int, high: float) -> None:
    random.seed(7)
    delays = [retry_delay(attempt, 60.0) for _ in range(2000)]
    assert all(0.0 <= d <= high for d in delays)
    # Spread over the whole range, not stuck at either end.
    assert min(delays) < 0.05 * high
    assert max(delays) > 0.95 * high


def test_a_cap_of_zero_retries_at_once() -> None:
    assert retry_delay(5, 0.0) == 0.0
