"""Timestamps as Azure writes them: 7-digit fractions, Z or offsets; naive ones refused."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from failover.timeutil import iso, parse_iso


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T07:16:02.3456789Z", datetime(2026, 11, 25, 7, 16, 2, 345678, tzinfo=timezone.utc)),
        ("2026-11-25T07:16:02Z", datetime(2026, 11, 25, 7, 16, 2, tzinfo=timezone.utc)),
        ("2026-11-25T08:16:02+01:00", datetime(2026, 11, 25, 7, 16, 2, tzinfo=timezone.utc)),
        ("2026-11-25T07:16:02.1+0000", datetime(2026, 11, 25, 7, 16, 2, 100000, tzinfo=timezone.utc)),
    ],
)
def test_parse(text, expected):
    assert parse_iso(text) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        None,
        5,
        "2026-11-25T07:16:02",
        "yesterday",
        "2026-13-45T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_refused(bad):
    with pytest.raises(ValueError):
        parse_iso(bad)


def test_iso_writes_z():
    assert iso(datetime(2026, 11, 25, 7, 16, 2, tzinfo=timezone.utc)) == "2026-11-25T07:16:02Z"
    assert iso(None) is None
