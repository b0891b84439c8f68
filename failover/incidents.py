"""Correlation and the incident lifecycle: one pure decision per signal.

Layer: pure core. Functions from values to values with the clock passed in; no I/O, no logging,
no SDKs. The service reads a `ServerState` (and, for a very late signal, the archived incident it
belongs to), calls `decide` (or `settle` on the timer), and commits the returned `Decision` in one
atomic transaction. `docs/incident-lifecycle.md` draws the lifecycle and lists the lag bounds.

How incidents are derived, so that arrival order never matters (invariant 12):
- The state keeps the recent signals as compact `Evidence`. Incidents are *recomputed* from that set
  on every decision: the evidence is walked in observed-time order (ties by signal hash), and
  `_Episode` decides where one failover ends and the next begins. The same set gives the same
  incidents whatever order it arrived in.
- A failover signal (problem or progress) opens an incident when none is open; when the previous
  one's primary was restored and either its own source had said the server is whole again (Resource
  Health Unavailable after Available, writes failing after they came back, a new restart request)
  or it comes more than its family's `trail` after the restore (`failover.lags`); or when the
  previous one went `INCIDENT_STALE_SECONDS` without its primary restored.
- Recovery and context signals join the open incident until it has been recovered for the quiet
  period; otherwise they are notes on the server's timeline.
- An incident is *recovered* when every probe that saw the problem says the server is whole again
  (its own recovery after its own last problem) and every Azure alert's problem is answered by
  recovery evidence observed after it (HA healthy, Resource Health Available, `is_db_alive`
  resolved, writes back; the alert's own recovery may come late or never). A probe that still sees
  the problem always holds the incident open. It resolves after `quiet`; without recovery it goes
  `stale` after `stale`. A later failover supersedes it.
- Incident ids and what was announced (transitions) live in small `IncidentRecord`s keyed by the
  evidence that opened them, so a recomputation keeps ids stable and never announces twice.

Size: over 400 lines on purpose: the whole lifecycle (evidence, episodes, recovery, statuses,
transitions, bounds) reads top to bottom in one module, as issue 10 asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from failover.lags import AZURE_ALERTS, LAGS, PROBES, Family, family_of, trail
from failover.model import (
    HA_HEALTHY,
    HA_SCALING_BY_FAILOVER,
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
from failover.timeutil import compact, iso, parse_iso

# Ties between equally confident causes are broken by how specific they are.
_CAUSE_PRECEDENCE = {
    Cause.FORCED: 5,
    Cause.PLANNED: 4,
    Cause.SCALING: 3,
    Cause.MAINTENANCE: 2,
    Cause.UNPLANNED: 1,
    Cause.UNKNOWN: 0,
}
# Kinds that show the primary serving again (the primary_restored transition).
_RESTORING_KINDS = frozenset(
    {SignalKind.FAILOVER_COMPLETED, SignalKind.WRITE_RESTORED, SignalKind.DB_UP, SignalKind.HEALTH_AVAILABLE}
)
_HA = SignalKind.HA_STATE_CHANGED
_TRANSITION_ORDER = (Transition.OPENED, Transition.PRIMARY_RESTORED, Transition.RESOLVED, Transition.STALE)


@dataclass(frozen=True)
class Policy:
    quiet: timedelta = timedelta(minutes=5)
    stale: timedelta = timedelta(hours=2)
    clock_skew: timedelta = timedelta(minutes=5)
    keep_incidents: int = 8  # final incidents kept whole in the state row (open ones are always kept)
    keep_archived: int = 200
    keep_per_incident: int = 120  # evidence kept per incident; the rest is counted (first and last kept)
    keep_notes: int = 30
    notes_ttl: timedelta = timedelta(hours=24)
    keep_maintenance: int = 5
    max_maintenance_window: timedelta = timedelta(days=7)


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
    # Each read replica as applications route by it (name, host, zone, replicationState, role, lag).
    replica_details: tuple[dict[str, Any], ...] = ()
    endpoints: dict[str, str] = field(default_factory=dict)  # virtual endpoints: writer / reader

    def routing(self) -> tuple[Any, ...]:
        """What applications cache about the server: a change here is a new topology version."""
        return (
            self.primary_zone,
            self.standby_zone,
            self.ha_state,
            self.fqdn,
            self.replicas,
            tuple(sorted(str(sorted(r.items())) for r in self.replica_details)),
            tuple(sorted(self.endpoints.items())),
        )


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
class Evidence:
    """The part of a signal correlation needs, kept in the state row for recomputation."""

    key: str  # the signal's hash (its dedupe identity)
    family: Family
    kind: SignalKind
    role: Role
    cause: Cause
    confidence: int
    observed_at: datetime
    received_at: datetime
    ha_state: str | None = None
    downtime: float | None = None
    zone_before: str | None = None
    primary_zone: str | None = None
    standby_zone: str | None = None

    @classmethod
    def of(cls, signal: Signal) -> Evidence:
        view = signal.details.get("view")
        view = view if isinstance(view, dict) else {}
        downtime = signal.details.get("downtime_seconds")
        return cls(
            key=signal.key_hash,
            family=family_of(signal.source, signal.kind),
            kind=signal.kind,
            role=signal.role,
            cause=signal.cause,
            confidence=signal.cause_confidence,
            observed_at=signal.observed_at,
            received_at=signal.received_at,
            ha_state=_str(signal.details.get("ha_state"))
            if signal.kind is SignalKind.HA_STATE_CHANGED
            else None,
            downtime=float(downtime) if isinstance(downtime, (int, float)) else None,
            zone_before=_str(signal.details.get("zone_before")),
            primary_zone=_str(view.get("primary_zone")) if signal.source is Source.ARM_PROBE else None,
            standby_zone=_str(view.get("standby_zone")) if signal.source is Source.ARM_PROBE else None,
        )

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.observed_at, self.key)

    @property
    def restores(self) -> bool:
        if self.kind is SignalKind.HA_STATE_CHANGED:
            return self.ha_state == HA_HEALTHY
        if self.family is Family.EVENT_GRID:
            return self.is_recovery  # the action succeeded: the request is done
        return self.kind in _RESTORING_KINDS

    @property
    def moves_primary(self) -> bool:
        """The management API saw the primary land in another zone (its view names both zones)."""
        return (
            self.family is Family.ARM_PROBE
            and self.kind is SignalKind.FAILOVER_COMPLETED
            and None not in (self.zone_before, self.primary_zone)
            and self.zone_before != self.primary_zone
        )

    @property
    def is_problem(self) -> bool:
        # Event Grid reports an action that succeeded: it opens an incident and also says the action
        # completed (no recovery event ever follows it).
        return self.role is Role.PROBLEM

    @property
    def is_recovery(self) -> bool:
        if self.family is Family.EVENT_GRID:
            return self.kind is SignalKind.FAILOVER_STARTED
        if self.family is Family.ACTIVITY_LOG:
            return self.kind is SignalKind.FAILOVER_COMPLETED
        return self.role is Role.RECOVERY


@dataclass(frozen=True)
class IncidentRecord:
    """What the state row keeps of an incident besides its evidence: identity and announcements."""

    incident_id: str
    anchor: str  # key of the evidence that opened it: maps a recomputed episode to this id
    opened_at: datetime
    last_signal_at: datetime
    resource_id: str = ""
    zone_before: str | None = None  # the primary zone the management API knew when it opened
    announced: tuple[Transition, ...] = ()
    status: IncidentStatus = IncidentStatus.OPEN  # resolved is final; stale until recovery arrives late
    closed_at: datetime | None = None
    extra_signals: int = 0  # signals counted but not kept (over `keep_per_incident`)


@dataclass(frozen=True)
class ServerState:
    """The `state` row of a server's partition: its ETag serialises every writer."""

    server: str
    resource_id: str = ""
    records: tuple[IncidentRecord, ...] = ()  # oldest first
    evidence: tuple[Evidence, ...] = ()  # recent signals, oldest first
    topology: KnownTopology | None = None
    arm_version: int = 0  # bumps whenever the ARM probe's view changes: scopes probe signal ids
    topology_version: int = 0  # the Redis compare-and-set version
    epoch: int = 0  # bumps once per primary change
    db: DbProbeState = field(default_factory=DbProbeState)
    maintenance: tuple[MaintenanceNotice, ...] = ()
    signals_recorded: int = 0
    archive: tuple[ArchivedIncident, ...] = ()  # older incidents, oldest first (bounded)
    wake_at: datetime | None = None  # when an open incident may resolve or go stale (sweeper pointer)

    def open_record(self) -> IncidentRecord | None:
        return next((r for r in reversed(self.records) if r.status is IncidentStatus.OPEN), None)


@dataclass(frozen=True)
class Change:
    """One incident after a decision, and the transitions it newly reached (lifecycle order)."""

    incident: Incident
    transitions: tuple[Transition, ...] = ()

    @property
    def latest_transition(self) -> Transition | None:
        return self.transitions[-1] if self.transitions else None


@dataclass(frozen=True)
class Decision:
    """Everything one signal (or one settle) changes: the service commits it in one transaction."""

    state: ServerState
    signal: Signal | None = None  # the signal as recorded (observed time corrected for clock skew)
    incident: Incident | None = None  # the incident the signal belongs to, if any
    changes: tuple[Change, ...] = ()  # incidents whose rows must be rewritten

    @property
    def changed(self) -> tuple[Incident, ...]:
        return tuple(c.incident for c in self.changes)

    @property
    def transitions(self) -> tuple[Transition, ...]:
        """The transitions the signal's own incident newly reached."""
        if self.incident is None:
            return ()
        mine = next((c for c in self.changes if c.incident.incident_id == self.incident.incident_id), None)
        return mine.transitions if mine else ()


# --- the decision -----------------------------------------------------------------------------


def accepted_time(signal: Signal, *, now: datetime, policy: Policy) -> Signal:
    """A signal dated more than the allowed clock skew in the future is recorded at its arrival.

    The original time stays in `details["reported_at"]` and the skew in `details["clock_skew_seconds"]`,
    so the timeline shows both; the signal id (its dedupe identity) does not change.
    """
    if signal.observed_at <= now + policy.clock_skew:
        return signal
    skew = round((signal.observed_at - signal.received_at).total_seconds(), 3)
    details = {**signal.details, "reported_at": iso(signal.observed_at), "clock_skew_seconds": skew}
    summary = f"{signal.summary} (dated {skew:.0f} s in the future: recorded at arrival)"
    return replace(signal, observed_at=signal.received_at, details=details, summary=summary)


def archived_for(state: ServerState, signal: Signal) -> str | None:
    """The archived incident a very late signal belongs to (the service reads it back first)."""
    kept = [e.observed_at for e in state.evidence]
    if kept and signal.observed_at >= min(kept):
        return None
    return next((a.incident_id for a in state.archive if a.covers(signal.observed_at)), None)


def decide(
    state: ServerState,
    signal: Signal,
    *,
    now: datetime,
    policy: Policy,
    archived: Incident | None = None,
) -> Decision:
    """Record one new (already de-duplicated) signal: the whole outcome, as values."""
    signal = accepted_time(signal, now=now, policy=policy)
    state = replace(_absorb_facts(state, signal, policy), signals_recorded=state.signals_recorded + 1)
    if archived is not None:  # a late signal of an incident no longer kept whole: history only
        late = replace(archived, signal_count=archived.signal_count + 1)
        return Decision(state=state, signal=signal, incident=late, changes=(Change(late),))
    before = derive(state, now=now, policy=policy)
    grown = replace(state, evidence=(*state.evidence, Evidence.of(signal)))
    return _conclude(grown, before, signal, now=now, policy=policy)


def settle(state: ServerState, *, now: datetime, policy: Policy) -> Decision:
    """Resolve or close what is due (timer path); a decision with no changes when nothing is."""
    before = derive(state, now=now, policy=policy)
    return _conclude(state, before, None, now=now, policy=policy)


def derive(state: ServerState, *, now: datetime, policy: Policy) -> tuple[Incident, ...]:
    """The server's incidents as the state's evidence and records say right now (oldest first)."""
    return tuple(incident for incident, _ in _derive(state, now=now, policy=policy))


def topology_of(state: ServerState, incident: Incident | None, *, now: datetime) -> Topology:
    """The Redis topology snapshot for the server after a decision."""
    known = state.topology or KnownTopology(resource_id=state.resource_id)
    latest = state.records[-1].incident_id if state.records else None
    return Topology(
        server=state.server,
        primary_zone=known.primary_zone or (incident.primary_zone_after if incident else None),
        standby_zone=known.standby_zone or (incident.standby_zone_after if incident else None),
        ha_state=known.ha_state or (incident.ha_state if incident else None),
        fqdn=known.fqdn,
        read_replicas=known.replicas,
        incident_id=incident.incident_id if incident else latest,
        version=state.topology_version,
        updated_at=now,
        replicas=known.replica_details,
        endpoints=dict(known.endpoints),
    )


def absorb_view(state: ServerState, view: dict[str, Any], observed_at: datetime) -> ServerState:
    """Keep a newer management API view; a change applications care about is a new topology version."""
    known = state.topology
    if known is not None and known.observed_at is not None and known.observed_at > observed_at:
        return state  # an older view never rewinds the known one
    seen = topology_from_view(view, state.resource_id, observed_at)
    if known is not None and replace(known, observed_at=None) == replace(seen, observed_at=None):
        # Nothing new: the kept view keeps the time it was first seen so (still a view from before
        # any failover that follows), and a quiet management API check writes nothing.
        return state
    routed = known is None or known.routing() != seen.routing()
    return replace(
        state,
        topology=seen,
        arm_version=state.arm_version + 1,
        topology_version=state.topology_version + routed,
        resource_id=state.resource_id or seen.resource_id,
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
        replica_details=tuple(dict(r) for r in _list(view.get("replica_details")) if isinstance(r, dict)),
        endpoints={str(k): str(v) for k, v in _dict(view.get("endpoints")).items()},
    )


# --- concluding a decision ----------------------------------------------------------------------


def _conclude(
    state: ServerState, before: tuple[Incident, ...], signal: Signal | None, *, now: datetime, policy: Policy
) -> Decision:
    derived = _derive(state, now=now, policy=policy)
    previous = {i.incident_id: i for i in before}
    old_records = {r.incident_id: r for r in state.records}
    changes: list[Change] = []
    records: list[IncidentRecord] = []
    updated: list[tuple[Incident, IncidentRecord]] = []
    for found, record in derived:
        old = old_records.get(record.incident_id)
        was_final = old is not None and old.status is IncidentStatus.RESOLVED
        reached = _reached(found)
        new = (
            ()
            if was_final
            else tuple(t for t in _TRANSITION_ORDER if t in reached and t not in record.announced)
        )
        announced = tuple(t for t in _TRANSITION_ORDER if t in reached or t in record.announced)
        incident = replace(found, transitions=announced)
        records.append(
            replace(
                record,
                announced=announced,
                status=incident.status,
                closed_at=incident.resolved_at or incident.stale_at,
                opened_at=incident.opened_at,
                last_signal_at=incident.last_signal_at,
            )
        )
        if new or previous.get(incident.incident_id) != incident:
            changes.append(Change(incident, new))
        updated.append((incident, record))
    mine = _owner(updated, signal)
    matched = {r.incident_id for r in records}
    orphans = tuple(_archived(r) for r in state.records if r.incident_id not in matched)
    state = replace(state, records=tuple(records), archive=(*state.archive, *orphans))
    state = _bounded(state, derived, now=now, policy=policy)
    state = _versions(state, changes)
    return Decision(state=state, signal=signal, incident=mine, changes=tuple(changes))


def _owner(derived: list[tuple[Incident, IncidentRecord]], signal: Signal | None) -> Incident | None:
    if signal is None:
        return None
    for incident, record in derived:
        if record.anchor == signal.key_hash:
            return incident
    # The signal's incident is the one whose span holds its time (episodes never overlap).
    holding = [i for i, _ in derived if i.opened_at <= signal.observed_at <= i.last_signal_at]
    return holding[-1] if holding else None


def _versions(state: ServerState, changes: list[Change]) -> ServerState:
    announced = [t for c in changes for t in c.transitions]
    if not announced:
        return state
    restored = sum(1 for t in announced if t is Transition.PRIMARY_RESTORED)
    return replace(state, topology_version=state.topology_version + 1, epoch=state.epoch + restored)


def _reached(incident: Incident) -> set[Transition]:
    reached = {Transition.OPENED}
    if incident.primary_restored_at is not None:
        reached.add(Transition.PRIMARY_RESTORED)
    if incident.status is IncidentStatus.RESOLVED:
        reached.add(Transition.RESOLVED)
    if incident.status is IncidentStatus.STALE:
        reached.add(Transition.STALE)
    return reached


# --- deriving incidents from evidence -----------------------------------------------------------


@dataclass
class _Family:
    last_problem: datetime | None = None
    last_recovery: datetime | None = None


@dataclass
class _Episode:
    """One failover being walked in time order: the per-family facts the rules read."""

    items: list[Evidence]
    families: dict[Family, _Family] = field(default_factory=dict)
    first_restoring: datetime | None = None
    moved_to: str | None = None  # where the management API last saw the primary land in this failover
    _recovered: tuple[datetime | None] | None = None  # cached until a problem or recovery is added

    @classmethod
    def start(cls, first: Evidence) -> _Episode:
        episode = cls(items=[])
        episode.add(first)
        return episode

    @property
    def opened_at(self) -> datetime:
        return self.items[0].observed_at

    def add(self, item: Evidence) -> None:
        self.items.append(item)
        facts = self.families.setdefault(item.family, _Family())
        if item.is_problem:
            facts.last_problem = _max(facts.last_problem, item.observed_at)
        if item.is_recovery:
            facts.last_recovery = _max(facts.last_recovery, item.observed_at)
        if item.restores:
            self.first_restoring = _min(self.first_restoring, item.observed_at)
        if item.moves_primary:
            self.moved_to = item.primary_zone
        if item.is_problem or item.is_recovery:
            self._recovered = None

    def restored_at(self) -> datetime | None:
        """When the primary served writes again: the database probe's word when it saw the outage."""
        db = self.families.get(Family.DB_PROBE)
        if db is not None and db.last_problem is not None:
            return db.last_recovery if _whole(db) else None
        return self.first_restoring

    def recovered_at(self) -> datetime | None:
        """When every family that reported a problem said the server is whole (None: not yet)."""
        if self._recovered is None:
            self._recovered = (self._recovery(),)
        return self._recovered[0]

    def _recovery(self) -> datetime | None:
        recoveries = sorted(f.last_recovery for f in self.families.values() if f.last_recovery is not None)
        if not recoveries:
            return None
        needed: list[datetime] = []
        for name, facts in self.families.items():
            if facts.last_problem is None:
                continue
            if name in PROBES:
                if not _whole(facts):
                    return None  # a probe still sees the problem: nothing else can overrule it
                assert facts.last_recovery is not None
                needed.append(facts.last_recovery)
                continue
            # An alert's problem is answered by any recovery observed after it (its own may come
            # late or never), allowing for how far the alert's time trails what it reports.
            answered = [r for r in recoveries if r >= facts.last_problem - LAGS[name].trail]
            if not answered:
                return None
            needed.append(answered[0])
        return max(needed) if needed else recoveries[-1]

    def ended_for(self, item: Evidence, policy: Policy) -> bool:
        """Whether a failover signal at this time starts a new failover rather than joining this one."""
        restored = self.restored_at()
        if restored is None:
            return item.observed_at >= self.opened_at + policy.stale
        own = self.families.get(item.family)
        if item.is_problem and own is not None and own.last_recovery is not None:
            return True  # the same source said whole, then a problem again: a new failover
        if item.moves_primary and self.moved_to not in (None, item.primary_zone):
            return True  # the primary moved on from where this failover put it: a failback
        return item.observed_at > restored + trail(item.family, item.kind)

    def takes_note(self, item: Evidence, policy: Policy) -> bool:
        """Whether a recovery or context signal at this time still belongs to this failover."""
        recovered = self.recovered_at()
        if recovered is None:
            return item.observed_at < self.opened_at + policy.stale
        return item.observed_at <= recovered + policy.quiet


def segment(evidence: Iterable[Evidence], policy: Policy) -> tuple[list[_Episode], list[Evidence]]:
    """Split evidence into failovers and notes, walking it in observed-time order (pure, total)."""
    episodes: list[_Episode] = []
    notes: list[Evidence] = []
    for item in sorted(evidence, key=lambda e: e.order):
        current = episodes[-1] if episodes else None
        if item.role in (Role.PROBLEM, Role.PROGRESS):
            if current is None or current.ended_for(item, policy):
                episodes.append(_Episode.start(item))
            else:
                current.add(item)
        elif current is not None and current.takes_note(item, policy):
            current.add(item)
        else:
            notes.append(item)
    return episodes, notes


@dataclass(frozen=True)
class _Derived:
    """Incidents derived from a state, with the episodes and notes they came from."""

    pairs: list[tuple[Incident, IncidentRecord]]
    episodes: list[_Episode]
    notes: list[Evidence]

    def __iter__(self) -> Iterator[tuple[Incident, IncidentRecord]]:
        return iter(self.pairs)


def _derive(state: ServerState, *, now: datetime, policy: Policy) -> _Derived:
    episodes, notes = segment(state.evidence, policy)
    records = _match_records(state, episodes)
    views = sorted((e for e in state.evidence if e.primary_zone is not None), key=lambda e: e.order)
    derived = []
    for index, (episode, matched) in enumerate(zip(episodes, records, strict=True)):
        following = episodes[index + 1].opened_at if index + 1 < len(episodes) else None
        earlier = [e.primary_zone for e in views if e.observed_at < episode.opened_at]
        # Where the primary was before: from the kept views, else what the record knew at opening.
        record = replace(matched, zone_before=earlier[-1]) if earlier else matched
        derived.append((_incident(state, episode, record, following, now=now, policy=policy), record))
    return _Derived(derived, episodes, notes)


def _match_records(state: ServerState, episodes: list[_Episode]) -> list[IncidentRecord]:
    """The record of each episode: the one whose anchor it holds, or a new one opened by its first."""
    by_anchor = {r.anchor: r for r in state.records}
    taken = {r.incident_id for r in state.records} | {a.incident_id for a in state.archive}
    matched: list[IncidentRecord] = []
    used: set[str] = set()
    for episode in episodes:
        found = next(
            (by_anchor[e.key] for e in episode.items if e.key in by_anchor and e.key not in used), None
        )
        if found is None:
            found = _new_record(state, episode.items[0], taken)
            taken.add(found.incident_id)
        used.add(found.anchor)
        matched.append(found)
    return matched


def _new_record(state: ServerState, first: Evidence, taken: set[str]) -> IncidentRecord:
    opened = first.observed_at.replace(microsecond=0)
    incident_id = f"{state.server}~{compact(opened)}"
    while incident_id in taken:  # two failovers of one server in one second: keep ids unique
        opened += timedelta(seconds=1)
        incident_id = f"{state.server}~{compact(opened)}"
    known = state.topology
    # Only a view observed before the failover began says where the primary was before it.
    seen_before = (
        known is not None and known.observed_at is not None and known.observed_at < first.observed_at
    )
    before = known.primary_zone if known is not None and seen_before else None
    return IncidentRecord(
        incident_id=incident_id,
        anchor=first.key,
        opened_at=first.observed_at,
        last_signal_at=first.observed_at,
        resource_id=state.resource_id,
        zone_before=before,
    )


def _incident(
    state: ServerState,
    episode: _Episode,
    record: IncidentRecord,
    following: datetime | None,
    *,
    now: datetime,
    policy: Policy,
) -> Incident:
    items = episode.items
    restored = episode.restored_at()
    recovered = episode.recovered_at()
    status, resolved_at, stale_at = _status(episode, record, following, recovered, now=now, policy=policy)
    cause, confidence = _cause(state, items)
    arm = [e for e in items if e.primary_zone is not None or e.standby_zone is not None]
    latest_view = max(arm, key=lambda e: e.order) if arm else None
    before = min((e for e in items if e.zone_before), key=lambda e: e.order, default=None)
    downtimes = [e.downtime for e in items if e.kind is SignalKind.WRITE_RESTORED and e.downtime is not None]
    failover = [e.received_at for e in items if e.role in (Role.PROBLEM, Role.PROGRESS)]
    alerts = [e.received_at for e in items if e.family in AZURE_ALERTS]
    ha = [e for e in items if e.ha_state is not None]
    return Incident(
        incident_id=record.incident_id,
        server=state.server,
        resource_id=record.resource_id or state.resource_id,
        status=status,
        cause=cause,
        cause_confidence=confidence,
        opened_at=episode.opened_at,
        last_signal_at=items[-1].observed_at,
        primary_restored_at=restored,
        recovered_at=recovered,
        resolved_at=resolved_at,
        stale_at=stale_at,
        primary_zone_before=before.zone_before if before else record.zone_before,
        primary_zone_after=latest_view.primary_zone if latest_view else None,
        standby_zone_after=latest_view.standby_zone if latest_view else None,
        ha_state=max(ha, key=lambda e: e.order).ha_state if ha else None,
        write_downtime_seconds=round(max(downtimes), 3) if downtimes else None,
        signal_count=len(items) + record.extra_signals,
        detected_at=min(failover) if failover else None,
        azure_alert_at=min(alerts) if alerts else None,
        transitions=record.announced,
    )


def _status(
    episode: _Episode,
    record: IncidentRecord,
    following: datetime | None,
    recovered: datetime | None,
    *,
    now: datetime,
    policy: Policy,
) -> tuple[IncidentStatus, datetime | None, datetime | None]:
    """(status, resolved_at, stale_at). Final statuses are sticky: an incident never reopens."""
    if record.status is IncidentStatus.RESOLVED:
        return record.status, recovered or record.closed_at, None
    if record.status is IncidentStatus.STALE and recovered is None:
        return record.status, None, record.closed_at  # late recovery evidence still resolves it
    if recovered is not None and (following is not None or now >= recovered + policy.quiet):
        return IncidentStatus.RESOLVED, recovered, None
    if following is not None and episode.restored_at() is not None:
        return IncidentStatus.RESOLVED, following, None  # superseded by the next failover
    stale_at = episode.opened_at + policy.stale
    if following is not None or now >= stale_at:
        return IncidentStatus.STALE, None, min(stale_at, following or stale_at)
    return IncidentStatus.OPEN, None, None


def wake_at(incidents: Iterable[Incident], policy: Policy) -> datetime | None:
    """When the sweeper should look at the server again: the soonest resolution or staleness due."""
    due = [
        i.recovered_at + policy.quiet if i.recovered_at is not None else i.opened_at + policy.stale
        for i in incidents
        if i.status is IncidentStatus.OPEN
    ]
    return min(due) if due else None


def _cause(state: ServerState, items: list[Evidence]) -> tuple[Cause, int]:
    best = (Cause.UNKNOWN, 0)
    for item in items:
        best = _stronger(best, (item.cause, item.confidence))
        if item.ha_state == HA_SCALING_BY_FAILOVER:
            best = _stronger(best, (Cause.SCALING, 2))
    if any(n.starts_at <= items[0].observed_at <= n.ends_at for n in state.maintenance):
        best = _stronger(best, (Cause.MAINTENANCE, 2))
    return best


# --- bounded state ------------------------------------------------------------------------------


def _bounded(state: ServerState, derived: _Derived, *, now: datetime, policy: Policy) -> ServerState:
    """Keep every open incident and the newest final ones whole; archive the rest; cap the notes."""
    final = [r for r in state.records if r.status.final]
    dropped = {r.incident_id for r in final[: max(0, len(state.records) - policy.keep_incidents)]}
    kept_records = tuple(r for r in state.records if r.incident_id not in dropped)
    episodes, notes = derived.episodes, derived.notes
    kept_evidence: list[Evidence] = []
    records: list[IncidentRecord] = []
    anchors = {r.anchor: r for r in kept_records}
    for (_, record), episode in zip(derived, episodes, strict=True):
        if record.incident_id in dropped:
            continue
        items, extra = _capped(episode.items, anchors, policy.keep_per_incident)
        kept_evidence.extend(items)
        records.append(
            replace(
                next(r for r in kept_records if r.incident_id == record.incident_id),
                extra_signals=record.extra_signals + extra,
            )
        )
    fresh = [n for n in notes if now - n.observed_at <= policy.notes_ttl][-policy.keep_notes :]
    archived = tuple(
        ArchivedIncident(r.incident_id, r.opened_at, r.last_signal_at)
        for r in state.records
        if r.incident_id in dropped
    )
    incidents = [i for i, r in derived if r.incident_id not in dropped]
    return replace(
        state,
        records=tuple(records),
        evidence=tuple(sorted([*kept_evidence, *fresh], key=lambda e: e.order)),
        archive=(*state.archive, *archived)[-policy.keep_archived :],
        wake_at=wake_at(incidents, policy),
    )


def _archived(record: IncidentRecord) -> ArchivedIncident:
    return ArchivedIncident(record.incident_id, record.opened_at, record.last_signal_at)


def _capped(
    items: list[Evidence], anchors: dict[str, IncidentRecord], cap: int
) -> tuple[list[Evidence], int]:
    """At most `cap` items: the earliest and the latest half, anchors always; the rest counted."""
    if len(items) <= cap:
        return items, 0
    head, tail = items[: cap // 2], items[len(items) - cap // 2 :]
    keep = {e.key for e in (*head, *tail)} | {e.key for e in items if e.key in anchors}
    kept = [e for e in items if e.key in keep]
    return kept, len(items) - len(kept)


# --- facts about the server itself ----------------------------------------------------------------


def _absorb_facts(state: ServerState, signal: Signal, policy: Policy) -> ServerState:
    """Keep facts a signal carries about the server itself: topology, maintenance, resource id."""
    if signal.resource_id and (not state.resource_id or signal.source is Source.ARM_PROBE):
        state = replace(state, resource_id=signal.resource_id)  # the management API re-binds it
    view = signal.details.get("view")
    if signal.source is Source.ARM_PROBE and isinstance(view, dict):
        state = absorb_view(state, view, signal.observed_at)
    if signal.source is Source.DB_PROBE:
        state = replace(state, db=_db_state_after(state.db, signal))
    if signal.kind is SignalKind.MAINTENANCE_SCHEDULED:
        notice = _notice(signal, policy)
        if notice is not None and notice not in state.maintenance:
            kept = (*state.maintenance, notice)[-policy.keep_maintenance :]
            state = replace(state, maintenance=kept)
    return state


def _db_state_after(db: DbProbeState, signal: Signal) -> DbProbeState:
    """Track the probe's outage bookkeeping from what was recorded; an older observation never rewinds it."""
    newest = _max(db.failing_since, db.last_ok_write_at)
    if newest is not None and signal.observed_at < newest:
        return db
    if signal.kind is SignalKind.WRITE_UNAVAILABLE:
        return replace(db, failing_since=signal.observed_at)
    if signal.kind is SignalKind.WRITE_RESTORED:
        return replace(db, failing_since=None, last_ok_write_at=signal.observed_at)
    return db


def _notice(signal: Signal, policy: Policy) -> MaintenanceNotice | None:
    """A maintenance window from a notice; a window longer than the bound is cut to the bound."""
    try:
        start = parse_iso(signal.details.get("impact_start"))
        end = parse_iso(signal.details.get("impact_end"))
    except ValueError:
        return None
    if end < start:
        return None
    end = min(end, start + policy.max_maintenance_window)
    return MaintenanceNotice(str(signal.details.get("tracking_id") or "")[:80], start, end)


def _whole(facts: _Family) -> bool:
    if facts.last_recovery is None:
        return False
    return facts.last_problem is None or facts.last_recovery >= facts.last_problem


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


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _dict(value: object) -> dict[Any, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _str(value: object) -> str | None:
    return None if value is None else str(value)
