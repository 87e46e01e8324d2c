"""Central's stored time form, reached with or without formatting."""

from __future__ import annotations

import pytest

from central.timestamps import normalize, stored
from protocol.schema import parse_time


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-06T08:00:01.123456Z",  # already the stored form: taken as it is
        "2024-05-06T08:00:01Z",
        "2024-05-06T08:00:01.5Z",
        "2024-05-06T08:00:01.123456789Z",
        "2024-05-06T10:00:01.123456+02:00",  # an offset: formatted in UTC
        "2024-05-06T08:00:01.123456-00:00",
        "2024-12-31T23:59:59.999999-01:00",  # another day and year in UTC
    ],
)
def test_stored_is_normalize_without_parsing_twice(text: str) -> None:
    assert stored(text, parse_time(text)) == normalize(text)
    assert len(normalize(text)) == 27 and normalize(text).endswith("Z")
