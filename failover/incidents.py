"""Correlation and the incident lifecycle: which incident a signal belongs to, and what changed.

Layer: pure core. Functions from values to values with the clock passed in; no I/O, no logging,
no SDKs. The service reads a `ServerState`, calls `correlate` (or `settle`), and writes the result
in one atomic Table transaction.

Rules (design section 2):
- An incident is one failover of one server. A problem or progress signal that no incident's
  time range covers opens one, unless an incident opens shortly after it (the same failover seen
  late: the incident's start moves back to the signal's time).
- Late and out-of-order signals attach to the incident whose time range covers them. A resolved
  incident covers up to `quiet` after its resolution.
- The incident is a commutative fold of its signals, so arrival order never changes the result.
- An incident resolves once recovery evidence is newer than every problem signal and `quiet`
  has passed since that evidence; it never reopens: a later failover is a new incident.
- Recovery and context signals outside every incident are kept as recent notes; an incident that
  opens later over their time adopts them (reverse-order delivery).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from failover.model import (
    HA_HEALTHY,
    Cause,
    Incident,
    IncidentStatus,
    Role,
    Signal,
    SignalKind,
    Source,
    Topology,
    Transition,
)
from failover.timeutil import compact, parse_iso

# Ties between equally confident causes are broken by how specific they are.
_CAUSE_PRECEDENCE = {
    Cause.FORCED: 4,
    Cause.PLANNED: 3,
    Cause.MAINTENANCE: 2,
    Cause.UNPLANNED: 1,
    Cause.UNKNOWN: 0,
}
# Kinds that show the primary serving again (the primary_restored transition).
_RESTORING_KINDS = frozenset(
    {SignalKind.FAILOVER_COMPLETED, SignalKind.WRITE_RESTORED, SignalKind.DB_UP, SignalKind.HEALTH_AVAILABLE}
)
_TRANSITION_ORDER = (Transition.OPENED, Transition.PRIMARY_RESTORED, Transition.RESOLVED)


@dataclass(frozen=True)
class Policy:
    quiet: timedelta = timedelta(minutes=5)
    merge_window: timedelta = timedelta(minutes=15)
    keep_incidents: int = 8
    keep_archived: int = 200
    keep_notes: int = 30
    notes_ttl: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class KnownTopology:
    """The last known facts about a server from the management API (the ARM probe)."""

    resource_id: str
    location: str | None = None
    state: str | None = None
    ha_mode: str | None = None
    ha_state: str | None = None
    primary_zone: str | None = None
    standby_zone: str | None = None
    fqdn: str | None = None
    replicas: tuple[str, ...] = ()
    observed_at: datetime | None = None


@dataclass(frozen=True)
class DbProbeState:
    """What the database probe last persisted: enough to measure an outage across invocations."""

    failing_since: datetime | None = None
    last_ok_write_at: datetime | None = None
    postmaster_started_at: datetime | None = None


@dataclass(frozen=True)
class MaintenanceNotice:
    tracking_id: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class ArchivedIncident:
    """An incident the state row no longer keeps whole: enough to recognise its late signals."""

    incident_id: str
    opened_at: datetime
    ends_at: datetime  # the last instant it covers

    def covers(self, when: datetime) -> bool:
        return self.opened_at <= when <= self.ends_at


@dataclass(frozen=True)
class ServerState:
    """The `state` row of a server's partition: its ETag serialises every writer."""

    server: str
    resource_id: str = ""
    incidents: tuple[Incident, ...] = ()  # recent incidents, oldest first
    notes: tuple[Signal, ...] = ()  # recent recovery/context signals outside every incident
    topology: KnownTopology | None = None
    arm_version: int = 0  # bumps whenever the ARM probe's view changes: scopes probe signal ids
    topology_version: int = 0  # the Redis compare-and-set version
    epoch: int = 0  # bumps once per primary change
    db: DbProbeState = field(default_factory=DbProbeState)
    maintenance: tuple[MaintenanceNotice, ...] = ()
    signals_recorded: int = 0
    archive: tuple[ArchivedIncident, ...] = ()  # older incidents, oldest first (bounded)

    def open_incident(self) -> Incident | None:
        return next((i for i in reversed(self.incidents) if i.status is IncidentStatus.OPEN), None)

    def find(self, incident_id: str) -> Incident | None:
        return next((i for i in self.incidents if i.incident_id == incident_id), None)


@dataclass(frozen=True)
class Decision:
    state: ServerState
    incident: Incident | None  # the incident the signal now belongs to, if any
    changed: tuple[Incident, ...]  # incidents whose stored rows must be rewritten
    transitions: tuple[Transition, ...] = ()  # newly reached by `incident`, in lifecycle order

    @property
    def latest_transition(self) -> Transition | None:
        return self.transitions[-1] if self.transitions else None


def correlate(state: ServerState, signal: Signal, *, now: datetime, policy: Policy) -> Decision:
    """Attach one new (already de-duplicated) signal to the server's state."""
    state = _counted(_absorb_facts(state, signal))
    target = _covering(state.incidents, signal.observed_at, policy)
    if target is None and signal.role in (Role.PROBLEM, Role.PROGRESS):
        target = _later_neighbour(state.incidents, signal.observed_at, policy) or _open(state, signal)
    if target is None:
        notes = _trim_notes((*state.notes, signal), now, policy)
        return Decision(state=replace(state, notes=notes), incident=None, changed=())

    before = state.find(target.incident_id)
    incident = fold(target, signal)
    if signal.observed_at < incident.opened_at:
        incident = replace(incident, opened_at=signal.observed_at)
    incident, notes = _adopt_notes(incident, state.notes, policy)
    incident = _settle_one(incident, now, policy)
    return _finish(replace(state, notes=notes), before, incident, policy)


def settle(state: ServerState, *, now: datetime, policy: Policy) -> tuple[Decision, ...]:
    """Resolve every open incident whose recovery has been quiet long enough (timer path)."""
    decisions = []
    for incident in state.incidents:
        settled = _settle_one(incident, now, policy)
        if settled != incident:
            decision = _finish(state, incident, settled, policy)
            state = decision.state
            decisions.append(decision)
    return tuple(decisions)


def archived_covering(state: ServerState, when: datetime, policy: Policy) -> ArchivedIncident | None:
    """The archived incident a late signal belongs to, when no kept incident covers it."""
    if any(i.covers(when, policy.quiet) for i in state.incidents):
        return None
    return next((a for a in state.archive if a.covers(when)), None)


def revive(state: ServerState, incident: Incident) -> ServerState:
    """Put an archived incident (read back from its row) into the state for one decision."""
    archive = tuple(a for a in state.archive if a.incident_id != incident.incident_id)
    incidents = tuple(sorted((*state.incidents, incident), key=lambda i: i.opened_at))
    return replace(state, incidents=incidents, archive=archive)


def resolution_due(incident: Incident, policy: Policy) -> datetime | None:
    """When an open, recovered incident may resolve; None if it is not waiting for that."""
    if incident.status is not IncidentStatus.OPEN or not incident.recovered:
        return None
    assert incident.last_recovery_at is not None
    return incident.last_recovery_at + policy.quiet


def fold(incident: Incident, signal: Signal) -> Incident:
    """Add one signal to an incident. Commutative: every field is a min, max, sum or count."""
    role = signal.role
    cause, confidence = _stronger(
        (incident.cause, incident.cause_confidence), (signal.cause, signal.cause_confidence)
    )
    incident = replace(
        incident,
        cause=cause,
        cause_confidence=confidence,
        signal_count=incident.signal_count + 1,
        last_signal_at=max(incident.last_signal_at, signal.observed_at),
        last_problem_at=_max(incident.last_problem_at, signal.observed_at if role is Role.PROBLEM else None),
        last_recovery_at=_max(
            incident.last_recovery_at, signal.observed_at if role is Role.RECOVERY else None
        ),
        primary_restored_at=_min(
            incident.primary_restored_at, signal.observed_at if _restores(signal) else None
        ),
    )
    incident = _fold_topology(incident, signal)
    downtime = signal.details.get("downtime_seconds")
    if signal.kind is SignalKind.WRITE_RESTORED and isinstance(downtime, (int, float)):
        # max, not sum: two probe workers may each measure the same outage.
        longest = max(incident.write_downtime_seconds or 0.0, float(downtime))
        incident = replace(incident, write_downtime_seconds=round(longest, 3))
    return incident


def topology_of(state: ServerState, incident: Incident | None, *, now: datetime) -> Topology:
    """The Redis topology snapshot for the server after a decision."""
    known = state.topology or KnownTopology(resource_id=state.resource_id)
    newer = (
        incident is not None
        and incident.topology_at is not None
        and (known.observed_at is None or incident.topology_at >= known.observed_at)
    )
    return Topology(
        server=state.server,
        primary_zone=incident.primary_zone_after if newer and incident else known.primary_zone,
        standby_zone=incident.standby_zone_after if newer and incident else known.standby_zone,
        ha_state=incident.ha_state if newer and incident else known.ha_state,
        fqdn=known.fqdn,
        read_replicas=known.replicas,
        incident_id=incident.incident_id if incident else None,
        version=state.topology_version,
        updated_at=now,
    )


# --- internals -------------------------------------------------------------------------------


def _open(state: ServerState, signal: Signal) -> Incident:
    taken = {i.incident_id for i in state.incidents} | {a.incident_id for a in state.archive}
    opened = signal.observed_at.replace(microsecond=0)
    incident_id = f"{state.server}~{compact(opened)}"
    while incident_id in taken:  # two failovers of one server in one second: keep ids unique
        opened += timedelta(seconds=1)
        incident_id = f"{state.server}~{compact(opened)}"
    zone_before = signal.details.get("zone_before")
    if not isinstance(zone_before, str):
        zone_before = state.topology.primary_zone if state.topology else None
    cause, confidence = Cause.UNKNOWN, 0
    if _in_maintenance(state.maintenance, signal.observed_at):
        cause, confidence = Cause.MAINTENANCE, 2
    return Incident(
        incident_id=incident_id,
        server=state.server,
        resource_id=signal.resource_id or state.resource_id,
        status=IncidentStatus.OPEN,
        cause=cause,
        cause_confidence=confidence,
        opened_at=signal.observed_at,
        last_signal_at=signal.observed_at,
        primary_zone_before=zone_before,
    )


def _covering(incidents: tuple[Incident, ...], when: datetime, policy: Policy) -> Incident | None:
    return next((i for i in reversed(incidents) if i.covers(when, policy.quiet)), None)


def _later_neighbour(incidents: tuple[Incident, ...], when: datetime, policy: Policy) -> Incident | None:
    """An incident opening shortly after `when`: the same failover, whose first signal came late."""
    later = [i for i in incidents if i.opened_at > when]
    if not later:
        return None
    first = min(later, key=lambda i: i.opened_at)
    return first if first.opened_at - when <= policy.merge_window else None


def _adopt_notes(
    incident: Incident, notes: tuple[Signal, ...], policy: Policy
) -> tuple[Incident, tuple[Signal, ...]]:
    kept = []
    for note in notes:
        if incident.covers(note.observed_at, policy.quiet):
            incident = fold(incident, note)
        else:
            kept.append(note)
    return incident, tuple(kept)


def _settle_one(incident: Incident, now: datetime, policy: Policy) -> Incident:
    due = resolution_due(incident, policy)
    if due is None or now < due:
        return incident
    return replace(incident, status=IncidentStatus.RESOLVED, resolved_at=incident.last_recovery_at)


def _finish(state: ServerState, before: Incident | None, incident: Incident, policy: Policy) -> Decision:
    reached = _reached(incident)
    new = tuple(t for t in reached if before is None or t not in before.transitions)
    if before is not None and Transition.RESOLVED in before.transitions:
        new = ()  # a late signal of a resolved incident is history: nobody is told again
    incident = replace(incident, transitions=reached)
    others = [i for i in state.incidents if i.incident_id != incident.incident_id]
    merged = _bounded(tuple(sorted([*others, incident], key=lambda i: i.opened_at)), state.archive)
    kept, archived = _trim(merged, policy)
    changed = [i for i in merged if i.incident_id == incident.incident_id or _moved(state.incidents, i)]
    state = replace(
        state,
        incidents=kept,
        archive=(state.archive + archived)[-policy.keep_archived :],
        resource_id=state.resource_id or incident.resource_id,
    )
    if new:
        state = replace(state, topology_version=state.topology_version + 1)
    if Transition.PRIMARY_RESTORED in new:
        state = replace(state, epoch=state.epoch + 1)
    current = next(i for i in merged if i.incident_id == incident.incident_id)
    return Decision(state=state, incident=current, changed=tuple(changed), transitions=new)


def _bounded(incidents: tuple[Incident, ...], archive: tuple[ArchivedIncident, ...]) -> tuple[Incident, ...]:
    """Each incident's range ends where the next one (kept or archived) opens: no overlaps."""
    starts = sorted([i.opened_at for i in incidents] + [a.opened_at for a in archive])
    return tuple(
        replace(i, covers_until=next((s for s in starts if s > i.opened_at), None)) for i in incidents
    )


def _moved(previous: tuple[Incident, ...], incident: Incident) -> bool:
    """Whether an incident's stored row is stale: its range bound changed."""
    old = next((i for i in previous if i.incident_id == incident.incident_id), None)
    return old is not None and old.covers_until != incident.covers_until


def _reached(incident: Incident) -> tuple[Transition, ...]:
    reached = {Transition.OPENED}
    if incident.primary_restored_at is not None:
        reached.add(Transition.PRIMARY_RESTORED)
    if incident.status is IncidentStatus.RESOLVED:
        reached.add(Transition.RESOLVED)
    return tuple(t for t in _TRANSITION_ORDER if t in reached)


def _trim(
    merged: tuple[Incident, ...], policy: Policy
) -> tuple[tuple[Incident, ...], tuple[ArchivedIncident, ...]]:
    """Keep every open incident and the newest resolved ones whole; archive the rest's ranges."""
    resolved = [i for i in merged if i.status is IncidentStatus.RESOLVED]
    dropped = resolved[: max(0, len(merged) - policy.keep_incidents)]
    gone = {i.incident_id for i in dropped}
    archived = tuple(
        ArchivedIncident(i.incident_id, i.opened_at, i.range_end(policy.quiet) or i.last_signal_at)
        for i in dropped
    )
    return tuple(i for i in merged if i.incident_id not in gone), archived


def _counted(state: ServerState) -> ServerState:
    return replace(state, signals_recorded=state.signals_recorded + 1)


def _trim_notes(notes: tuple[Signal, ...], now: datetime, policy: Policy) -> tuple[Signal, ...]:
    fresh = sorted((n for n in notes if now - n.observed_at <= policy.notes_ttl), key=lambda n: n.observed_at)
    return tuple(fresh[-policy.keep_notes :])


def _absorb_facts(state: ServerState, signal: Signal) -> ServerState:
    """Keep facts a signal carries about the server itself: topology, maintenance, resource id."""
    if not state.resource_id and signal.resource_id:
        state = replace(state, resource_id=signal.resource_id)
    view = signal.details.get("view")
    if signal.source is Source.ARM_PROBE and isinstance(view, dict):
        known = state.topology
        if known is None or known.observed_at is None or known.observed_at <= signal.observed_at:
            seen = topology_from_view(view, state.resource_id, signal.observed_at)
            changed = known is None or replace(known, observed_at=None) != replace(seen, observed_at=None)
            state = replace(state, topology=seen, arm_version=state.arm_version + changed)
    if signal.source is Source.DB_PROBE:
        state = replace(state, db=_db_state_after(state.db, signal))
    if signal.kind is SignalKind.MAINTENANCE_SCHEDULED:
        notice = _notice(signal)
        if notice is not None and notice not in state.maintenance:
            state = replace(state, maintenance=(*state.maintenance, notice)[-5:])
    return state


def _db_state_after(db: DbProbeState, signal: Signal) -> DbProbeState:
    """Track the probe's outage bookkeeping; a late, older observation never rewinds it."""
    newest = _max(db.failing_since, db.last_ok_write_at)
    if newest is not None and signal.observed_at < newest:
        return db
    if signal.kind is SignalKind.WRITE_UNAVAILABLE:
        return replace(db, failing_since=signal.observed_at)
    if signal.kind is SignalKind.WRITE_RESTORED:
        return replace(db, failing_since=None, last_ok_write_at=signal.observed_at)
    return db


def _notice(signal: Signal) -> MaintenanceNotice | None:
    try:
        start = parse_iso(signal.details.get("impact_start"))
        end = parse_iso(signal.details.get("impact_end"))
    except ValueError:
        return None
    return MaintenanceNotice(str(signal.details.get("tracking_id") or ""), start, end)


def _in_maintenance(notices: tuple[MaintenanceNotice, ...], when: datetime) -> bool:
    return any(n.starts_at <= when <= n.ends_at for n in notices)


def _fold_topology(incident: Incident, signal: Signal) -> Incident:
    view = signal.details.get("view")
    if signal.source is not Source.ARM_PROBE or not isinstance(view, dict):
        return incident
    if incident.topology_at is not None and signal.observed_at < incident.topology_at:
        return incident
    return replace(
        incident,
        primary_zone_after=_str(view.get("primary_zone")),
        standby_zone_after=_str(view.get("standby_zone")),
        ha_state=_str(view.get("ha_state")),
        topology_at=signal.observed_at,
    )


def topology_from_view(view: dict[str, object], resource_id: str, observed_at: datetime) -> KnownTopology:
    """The KnownTopology an ARM probe signal's `view` detail describes."""
    replicas = view.get("replicas")
    return KnownTopology(
        resource_id=_str(view.get("resource_id")) or resource_id,
        location=_str(view.get("location")),
        state=_str(view.get("state")),
        ha_mode=_str(view.get("ha_mode")),
        ha_state=_str(view.get("ha_state")),
        primary_zone=_str(view.get("primary_zone")),
        standby_zone=_str(view.get("standby_zone")),
        fqdn=_str(view.get("fqdn")),
        replicas=tuple(str(r) for r in replicas) if isinstance(replicas, (list, tuple)) else (),
        observed_at=observed_at,
    )


def _restores(signal: Signal) -> bool:
    if signal.kind is SignalKind.HA_STATE_CHANGED:
        return signal.details.get("ha_state") == HA_HEALTHY
    return signal.kind in _RESTORING_KINDS


def _stronger(a: tuple[Cause, int], b: tuple[Cause, int]) -> tuple[Cause, int]:
    return max(a, b, key=lambda c: (c[1], _CAUSE_PRECEDENCE[c[0]]))


def _max(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return min(a, b)


def _str(value: object) -> str | None:
    return None if value is None else str(value)
