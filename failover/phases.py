"""The phases of a failover and the HA state over time, read from an incident's evidence.

Layer: pure core (presentation support for `failover.presentation`). From the domain `Incident` and
its timeline entries it derives the phases people see (detected, failing over, writes unavailable,
primary restored, standby rebuilt, resolved or closed without recovery evidence) and the HA-state
steps, read from the `ha_state` the management API's entries carry in their `details`, never from
summary text. It must not do I/O, read the clock or word anything for a medium.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from failover.model import HA_HEALTHY, HA_PROBLEM_STATES, Incident, IncidentStatus, TimelineEntry

# Timeline entry kinds that show the server in trouble: the first one starts "failing over".
PROBLEM_KINDS = frozenset(
    {"failover_started", "health_degraded", "health_unavailable", "db_down", "write_unavailable"}
)
_MAX_OUTAGE_SECONDS = 366 * 86400  # a longer "measured" outage is a broken measurement, not an outage


@dataclass(frozen=True)
class Phase:
    """One phase of a failover on the time axis: a span, a moment (`end` None), or still going."""

    key: str  # detected, failing_over, writes_unavailable, primary_restored, standby_rebuilt, resolved, stale
    label: str
    start: datetime
    end: datetime | None = None
    ongoing: bool = False  # still going: `end` is None and the page draws it up to now
    measured: float | None = None  # the duration a probe measured, when it beats end - start

    @property
    def seconds(self) -> float | None:
        """How long the phase lasted (None: a moment, or still going)."""
        if self.measured is not None:
            return self.measured
        return None if self.end is None else (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class HaStep:
    """The server's high-availability state from `at` on, as the management API reported it."""

    at: datetime
    state: str
    previous: str | None


def ha_steps(entries: Sequence[TimelineEntry]) -> tuple[HaStep, ...]:
    """The HA state over time: one step each time the state the entries carry changes."""
    steps: list[HaStep] = []
    for entry in entries:
        state = entry.details.get("ha_state")
        if not isinstance(state, str) or not state or (steps and steps[-1].state == state):
            continue
        previous = steps[-1].state if steps else entry.details.get("previous_ha_state")
        steps.append(HaStep(entry.at, state, previous if isinstance(previous, str) else None))
    return tuple(steps)


# --- phases --------------------------------------------------------------------------------------


def failover_phases(
    incident: Incident, entries: Sequence[TimelineEntry], steps: Sequence[HaStep]
) -> tuple[Phase, ...]:
    """The phases of `incident` from its entries (in time order) and its HA states (`ha_steps`)."""
    is_open = incident.status is IncidentStatus.OPEN
    failing = _first(
        [e.at for e in entries if e.kind in PROBLEM_KINDS]
        + [s.at for s in steps if s.state in HA_PROBLEM_STATES]
    )
    rebuilt = None
    if incident.primary_restored_at is not None:
        rebuilt = _first(
            [s.at for s in steps if s.state == HA_HEALTHY and s.at >= incident.primary_restored_at]
        )
    marks = [
        ("detected", "Detected", incident.opened_at),
        ("failing_over", "Failing over", failing),
        ("primary_restored", "Primary restored", incident.primary_restored_at),
        ("standby_rebuilt", "Standby rebuilt", rebuilt),
        ("resolved", "Resolved", incident.resolved_at),
        ("stale", "Closed without recovery evidence", incident.stale_at),
    ]
    present = [(key, label, at) for key, label, at in marks if at is not None]
    phases: list[Phase] = []
    for n, (key, label, start) in enumerate(present):
        following = present[n + 1][2] if n + 1 < len(present) else None
        if key in ("resolved", "stale"):
            phases.append(Phase(key, label, start))
        elif following is not None and following > start:
            phases.append(Phase(key, label, start, following))
        else:
            phases.append(Phase(key, label, start, ongoing=following is None and is_open))
    writes = _write_outage(incident, entries, is_open=is_open)
    if writes is not None:
        keys = [p.key for p in phases]
        phases.insert(keys.index("failing_over") + 1 if "failing_over" in keys else 1, writes)
    return tuple(phases)


def _write_outage(incident: Incident, entries: Sequence[TimelineEntry], *, is_open: bool) -> Phase | None:
    """Writes refused, as a client saw it: measured by the database probe when it was."""
    lost = _first([e.at for e in entries if e.kind == "write_unavailable"])
    back = _first([e.at for e in entries if e.kind == "write_restored" and (lost is None or e.at >= lost)])
    measured = incident.write_downtime_seconds
    label = "Writes unavailable"
    if back is not None and measured is not None and 0 <= measured <= _MAX_OUTAGE_SECONDS:
        return Phase("writes_unavailable", label, back - timedelta(seconds=measured), back, measured=measured)
    if lost is not None and back is not None:
        return Phase("writes_unavailable", label, lost, back)
    if lost is not None and is_open:
        return Phase("writes_unavailable", label, lost, ongoing=True)
    return None


def _first(times: Sequence[datetime]) -> datetime | None:
    return min(times) if times else None
