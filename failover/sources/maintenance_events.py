"""Maintenance events (``maintenanceEvents``, API 2026-10-01) -> Signals and upcoming notices (pure).

Layer: pure core, the management API source family. Takes the ``MaintenanceEvent`` values the
inspector read for one server and returns what the core records: a ``maintenance_scheduled``
signal for every event that is running (``InProgress``) or ran (``Complete``) with its window, so
a failover opening inside that window gets the cause ``maintenance`` from Azure's own word, not from
a guess. Upcoming events that have not started (``Planned``, ``Rescheduled``) make no signal: they
are listed for people (``upcoming``), since a window that has not begun says nothing about a
failover. No I/O, no clock reads, no logging.

Statuses are open strings: an unknown one is listed as upcoming when it has a start time, never an
error. A running event without an end time covers up to the moment it was seen running.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from failover.model import Cause, Signal, SignalKind, Source
from failover.ports import MaintenanceEvent
from failover.timeutil import iso

# Azure's own word that maintenance ran in the window (the exact source for the cause).
_RAN = frozenset({"inprogress", "complete", "completed"})
# Not happening: neither a cause nor worth listing.
_DROPPED = frozenset({"canceled", "cancelled"})
_MAX_EVENTS = 20  # per server and read: a bound on what one read can add to a row or a state


def _status(event: MaintenanceEvent) -> str:
    return (event.status or "").strip().lower()


def window_signals(
    events: Iterable[MaintenanceEvent], *, resource_id: str, observed_at: datetime
) -> tuple[Signal, ...]:
    """One ``maintenance_scheduled`` signal per event that is running or ran, with its window.

    ``observed_at`` is when the read saw it: a running event is on the timeline where it was seen,
    and its window (``impact_start``/``impact_end``) is what the core matches a failover against.
    The id carries the event, its status and window, so a rescheduled window is a new signal and a
    repeated read is a duplicate.
    """
    signals: list[Signal] = []
    for event in list(events)[:_MAX_EVENTS]:
        if _status(event) not in _RAN or event.start_at is None:
            continue
        end = event.end_at or max(observed_at, event.start_at)
        if end < event.start_at:
            continue
        status = event.status or "InProgress"
        signals.append(
            Signal(
                signal_id=(
                    f"arm_probe:{event.server}:maintenance:{event.event_id}:{_status(event)}"
                    f":{iso(event.start_at)}:{iso(event.end_at)}"
                ),
                server=event.server,
                resource_id=resource_id,
                source=Source.ARM_PROBE,
                kind=SignalKind.MAINTENANCE_SCHEDULED,
                cause=Cause.MAINTENANCE,
                cause_confidence=2,
                observed_at=observed_at,
                received_at=observed_at,
                summary=(
                    f"Management API: maintenance {event.event_id[:40]} {status[:20]}"
                    f" ({iso(event.start_at)} to {iso(end)})"
                ),
                details={
                    "tracking_id": event.event_id[:80],
                    "impact_start": iso(event.start_at),
                    "impact_end": iso(end),
                    "event_status": status[:40],
                    "maintenance_type": (event.maintenance_type or "")[:60] or None,
                    "estimated_downtime": event.estimated_downtime,
                },
            )
        )
    return tuple(signals)


@dataclass(frozen=True)
class UpcomingMaintenance:
    """A maintenance Azure announced that has not run yet: shown to people, never a cause."""

    event_id: str
    status: str
    start_at: datetime
    end_at: datetime | None
    maintenance_type: str | None = None
    estimated_downtime_seconds: float | None = None
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "status": self.status,
            "starts_at": iso(self.start_at),
            "ends_at": iso(self.end_at),
            "maintenance_type": self.maintenance_type,
            "estimated_downtime_seconds": self.estimated_downtime_seconds,
            "description": self.description,
        }


def upcoming(events: Iterable[MaintenanceEvent], *, now: datetime) -> tuple[UpcomingMaintenance, ...]:
    """Events announced and not over: not canceled, not yet run, ending after ``now``; soonest first."""
    kept = [
        UpcomingMaintenance(
            event_id=event.event_id[:80],
            status=(event.status or "unknown")[:40],
            start_at=event.start_at,
            end_at=event.end_at,
            maintenance_type=(event.maintenance_type or "")[:60] or None,
            estimated_downtime_seconds=event.estimated_downtime_seconds,
            description=(event.description or "")[:200] or None,
        )
        for event in list(events)[:_MAX_EVENTS]
        if event.start_at is not None
        and _status(event) not in _RAN | _DROPPED
        and (event.end_at is None or event.end_at >= now)
    ]
    return tuple(sorted(kept, key=lambda u: (u.start_at, u.event_id)))


__all__ = ["UpcomingMaintenance", "upcoming", "window_signals"]
