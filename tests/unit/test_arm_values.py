"""Pure value readers of the management API adapter: ISO 8601 durations, maintenance windows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from failover.adapters.arm import duration_seconds
from failover.ports import MaintenanceEvent

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("PT60S", 60.0),
        ("PT1M30S", 90.0),
        ("pt2m", 120.0),
        ("P1DT2H", 93600.0),
        ("PT0.5S", 0.5),
        (" PT5S ", 5.0),
        ("P", None),
        ("PT", None),
        ("60", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("P1Y", None),  # calendar durations are not day-time downtimes
    ],
)
def test_duration_seconds(text, seconds):
    assert duration_seconds(text) == seconds


def _event(status: str | None, end: datetime | None = T0 + timedelta(hours=1)) -> MaintenanceEvent:
    return MaintenanceEvent(
        event_id="YL1T-HFG",
        server="pg-prod-01",
        status=status,
        maintenance_type="PlannedMaintenance",
        start_at=T0,
        end_at=end,
    )


def test_only_an_in_progress_event_covers_a_failover_inside_its_window():
    inside = T0 + timedelta(minutes=10)
    assert _event("InProgress").covers(inside)
    assert _event("inprogress").covers(inside)  # open strings: compared without case
    assert _event("InProgress", end=None).covers(inside + timedelta(days=1))
    assert not _event("InProgress").covers(T0 - timedelta(seconds=1))
    assert not _event("InProgress").covers(T0 + timedelta(hours=2))
    for status in ("Planned", "Complete", "Rescheduled", "Canceled", "SomethingNew", None):
        assert not _event(status).covers(inside)
