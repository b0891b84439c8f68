"""Probe observations -> Signals: what changed since the last known state (pure).

Layer: pure core, the probe source family. Takes what the management API or a database check
saw, and the last known state, and returns the signals for what changed. No I/O, no clock reads.

Signal ids are scoped by the last known state (the ARM view version, the last good write), so two
workers that observe the same change from the same starting point derive the same id and the
change is recorded once (invariant 1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from failover.incidents import DbProbeState, KnownTopology
from failover.model import HA_FAILING_OVER, Cause, Signal, SignalKind, Source
from failover.ports import DbCheck, ServerView
from failover.sources.db_faults import DbFault, is_evidence
from failover.timeutil import iso


def view_dict(view: ServerView) -> dict[str, Any]:
    """The compact view a probe signal carries in `details["view"]`."""
    return {
        "resource_id": view.resource_id,
        "location": view.location,
        "state": view.state,
        "ha_mode": view.ha_mode,
        "ha_state": view.ha_state,
        "primary_zone": view.primary_zone,
        "standby_zone": view.standby_zone,
        "fqdn": view.fqdn,
        "replicas": sorted(r.fqdn or r.name for r in view.replicas),
        "replica_details": [r.as_topology() for r in sorted(view.replicas, key=lambda r: r.name)],
        "endpoints": dict(view.endpoints),
    }


def diff_view(
    known: KnownTopology | None,
    view: ServerView,
    *,
    arm_version: int,
    observed_at: datetime,
    received_at: datetime,
) -> tuple[Signal, ...]:
    """Signals for what the management API shows changed. A first sighting is a baseline: none.

    Each signal carries the view *as far as it goes* (the known view with this and the earlier
    changes applied), so when recording stops part way through a batch, the server's known topology
    holds exactly what was recorded and the next check derives the rest again (nothing lost).
    """
    if known is None:
        return ()
    current = view_dict(view)
    progressive = {**current, **_known_fields(known)}
    make = _ArmSignalFactory(view, arm_version, observed_at, received_at)
    signals: list[Signal] = []
    for change, fields in _CHANGES:
        old, new = _change(known, current, change)
        if old == new or (new is None) or (change == "primary_zone" and not (old and new)):
            continue
        progressive.update({f: current[f] for f in fields})
        signals.append(make(change, old, new, dict(progressive)))
    return tuple(signals)


# What each kind of change moves in the view, in the order signals are derived.
_CHANGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("primary_zone", ("primary_zone", "standby_zone")),
    ("ha_state", ("ha_state",)),
    ("state", ("state",)),
    ("replicas", ("replicas",)),
)


def _known_fields(known: KnownTopology) -> dict[str, Any]:
    return {
        "primary_zone": known.primary_zone,
        "standby_zone": known.standby_zone,
        "ha_state": known.ha_state,
        "state": known.state,
        "replicas": sorted(known.replicas),
    }


def _change(known: KnownTopology, current: dict[str, Any], change: str) -> tuple[str | None, str | None]:
    if change == "replicas":
        return ",".join(sorted(known.replicas)), ",".join(current["replicas"])
    old = _known_fields(known)[change]
    return old, current[change]


@dataclass(frozen=True)
class _ArmSignalFactory:
    view: ServerView
    arm_version: int
    observed_at: datetime
    received_at: datetime

    def __call__(self, change: str, old: str | None, new: str | None, progressive: dict[str, Any]) -> Signal:
        kind, cause, summary, extra = self._describe(change, old, new)
        return Signal(
            signal_id=f"arm_probe:{self.view.server}:{change}:{old}>{new}:v{self.arm_version}",
            server=self.view.server,
            resource_id=self.view.resource_id,
            source=Source.ARM_PROBE,
            kind=kind,
            cause=cause,
            cause_confidence=0,
            observed_at=self.observed_at,
            received_at=self.received_at,
            summary=f"Management API: {summary}",
            details={"view": progressive, "ha_state": progressive.get("ha_state"), **extra},
        )

    def _describe(
        self, change: str, old: str | None, new: str | None
    ) -> tuple[SignalKind, Cause, str, dict[str, Any]]:
        view = self.view
        if change == "primary_zone":
            summary = (
                f"Primary moved from zone {old} to zone {new} (standby zone {view.standby_zone or 'unknown'})"
            )
            return SignalKind.FAILOVER_COMPLETED, Cause.UNPLANNED, summary, {"zone_before": old}
        if change == "ha_state":
            cause = Cause.UNPLANNED if new == HA_FAILING_OVER else Cause.UNKNOWN
            summary = f"High availability state {old or 'unknown'} -> {new}"
            return SignalKind.HA_STATE_CHANGED, cause, summary, {"previous_ha_state": old}
        if change == "state":
            return (
                SignalKind.SERVER_STATE_CHANGED,
                Cause.UNKNOWN,
                f"Server state {old or 'unknown'} -> {new}",
                {},
            )
        return SignalKind.REPLICAS_CHANGED, Cause.UNKNOWN, f"Read replicas now: {new or 'none'}", {}


@dataclass(frozen=True)
class DbProbeMemory:
    """The sampler's running memory between checks of one server.

    `state` is what is persisted between invocations (a declared outage, the last good write);
    `suspect_since`/`suspect_checks` count failed checks that do not make an outage yet (debounce);
    `watch_since` is when this continuous watch began: a gap measured from an older good write is
    only a bound, never a measured downtime. `session_lost_at` is when the server closed the probe's
    idle session, for the failure in progress: the writes ended by then, not at the last good write.
    """

    state: DbProbeState
    watch_since: datetime | None = None
    suspect_since: datetime | None = None
    suspect_checks: int = 0
    session_lost_at: datetime | None = None

    @property
    def failing(self) -> bool:
        return self.state.failing_since is not None or self.suspect_since is not None


@dataclass(frozen=True)
class Debounce:
    """When failed checks make a write outage: at least this long, over at least this many checks."""

    outage: timedelta = timedelta(seconds=3)
    checks: int = 3


def diff_check(
    memory: DbProbeMemory,
    check: DbCheck,
    *,
    resource_id: str,
    received_at: datetime,
    debounce: Debounce | None = None,
) -> tuple[tuple[Signal, ...], DbProbeMemory]:
    """Signals for one database check: an outage declared on corroborated evidence only.

    - A failure the probe causes itself (login refused, missing grant, DNS to a private endpoint...)
      is probe health: no signal, and it neither starts nor ends an outage.
    - Failed checks become `write_unavailable` once they last `debounce.outage` over at least
      `debounce.checks` checks, or at once when the endpoint answers as a node in recovery.
    - Writes back after an undeclared failure: a `write_blip` note, unless the postmaster
      restarted (a failover that fell between checks): then the outage is declared and restored.
    """
    rules = debounce or Debounce()
    if check.ok:
        return _after_good(memory, check, resource_id, received_at)
    counts = check.fault is None or is_evidence(check.fault)  # a check without a class: an outage
    if not counts or memory.state.failing_since is not None:
        return (), memory
    lost = _session_lost(memory, check)
    suspect = replace(
        memory,
        suspect_since=memory.suspect_since or lost or check.started_at,
        suspect_checks=memory.suspect_checks + 1,
        session_lost_at=lost,
    )
    assert suspect.suspect_since is not None
    lasted = check.finished_at - suspect.suspect_since
    read_only = check.fault == DbFault.READ_ONLY.value or (check.connected and not check.writable)
    if not read_only and (suspect.suspect_checks < rules.checks or lasted < rules.outage):
        return (), suspect
    db = replace(memory.state, failing_since=suspect.suspect_since)
    signal = _write_unavailable(memory.state, check, resource_id, received_at, at=suspect.suspect_since)
    return (signal,), DbProbeMemory(db, watch_since=memory.watch_since, session_lost_at=lost)


def _after_good(
    memory: DbProbeMemory, check: DbCheck, resource_id: str, received_at: datetime
) -> tuple[tuple[Signal, ...], DbProbeMemory]:
    db = memory.state
    signals: list[Signal] = []
    lost = _session_lost(memory, check)
    restarted = (
        db.postmaster_started_at is not None
        and check.postmaster_started_at is not None
        and check.postmaster_started_at != db.postmaster_started_at
    )
    if db.failing_since is None and restarted and db.last_ok_write_at is not None:
        # A new primary (or a restarted one) answered: the outage is corroborated even if it fell
        # between two checks or lasted less than the debounce. Writes were lost from the last good
        # write (or the first failed check) to this one, at most.
        since = memory.suspect_since or lost or db.last_ok_write_at
        db = replace(db, failing_since=since)
        reason = "the server restarted" if memory.suspect_since else "the primary changed between checks"
        signals.append(
            _write_unavailable(memory.state, check, resource_id, received_at, at=since, inferred=reason)
        )
    elif db.failing_since is None and memory.suspect_since is not None:
        signals.append(_write_blip(memory, check, resource_id, received_at))
    if db.failing_since is not None:
        continuous = _continuous(memory, db)
        began = max(db.last_ok_write_at, lost) if db.last_ok_write_at and lost else db.last_ok_write_at
        signals.append(
            _write_restored(db, check, resource_id, received_at, continuous=continuous, began=began)
        )
    if restarted:
        signals.append(_postmaster_restarted(db, check, resource_id, received_at))
    ok = DbProbeState(
        failing_since=None,
        last_ok_write_at=check.finished_at,
        postmaster_started_at=check.postmaster_started_at or db.postmaster_started_at,
    )
    return tuple(signals), DbProbeMemory(ok, watch_since=memory.watch_since or check.started_at)


def _session_lost(memory: DbProbeMemory, check: DbCheck) -> datetime | None:
    """When the server closed the probe's session for this failure; never before the last good write."""
    lost = memory.session_lost_at or check.session_lost_at
    last_ok = memory.state.last_ok_write_at
    return None if lost is None or (last_ok is not None and lost < last_ok) else lost


def _continuous(memory: DbProbeMemory, db: DbProbeState) -> bool:
    """Whether the last good write was seen in this same watch (so the gap is a measurement)."""
    return (
        memory.watch_since is not None
        and db.last_ok_write_at is not None
        and db.last_ok_write_at >= memory.watch_since
    )


def _db_signal(
    check: DbCheck,
    kind: SignalKind,
    *,
    key: str,
    at: datetime,
    summary: str,
    resource_id: str,
    received_at: datetime,
    details: dict[str, Any],
) -> Signal:
    return Signal(
        signal_id=f"db_probe:{check.server}:{kind.value}:{key}",
        server=check.server,
        resource_id=resource_id,
        source=Source.DB_PROBE,
        kind=kind,
        cause=Cause.UNPLANNED if kind is SignalKind.WRITE_UNAVAILABLE else Cause.UNKNOWN,
        cause_confidence=0,
        observed_at=at,
        received_at=received_at,
        summary=f"Database probe: {summary}",
        details=details,
    )


def _write_unavailable(
    db: DbProbeState,
    check: DbCheck,
    resource_id: str,
    received_at: datetime,
    *,
    at: datetime,
    inferred: str | None = None,
) -> Signal:
    fallback = "connected to a read-only node" if check.connected else "cannot connect"
    reason = inferred or check.error or fallback
    return _db_signal(
        check,
        SignalKind.WRITE_UNAVAILABLE,
        key=iso(db.last_ok_write_at) or iso(at) or "",
        at=at,
        summary=f"writes failing ({reason}); last good write {iso(db.last_ok_write_at) or 'not seen'}",
        resource_id=resource_id,
        received_at=received_at,
        details={
            "last_ok_write_at": iso(db.last_ok_write_at),
            "error": check.error,
            "fault": check.fault,
            "connected": check.connected,
        },
    )


def _write_blip(memory: DbProbeMemory, check: DbCheck, resource_id: str, received_at: datetime) -> Signal:
    assert memory.suspect_since is not None
    seconds = round((check.finished_at - memory.suspect_since).total_seconds(), 3)
    return _db_signal(
        check,
        SignalKind.WRITE_BLIP,
        key=iso(memory.suspect_since) or "",
        at=memory.suspect_since,
        summary=(
            f"writes failed for {seconds:.1f} s over {memory.suspect_checks} check(s), then succeeded:"
            " too short to be a failover"
        ),
        resource_id=resource_id,
        received_at=received_at,
        details={"failed_checks": memory.suspect_checks, "seconds": seconds},
    )


def _write_restored(
    db: DbProbeState,
    check: DbCheck,
    resource_id: str,
    received_at: datetime,
    *,
    continuous: bool,
    began: datetime | None,
) -> Signal:
    """Writes back; the downtime runs from `began` (the last good write, or the moment the server
    closed the probe's session after it) to this check's write."""
    assert db.failing_since is not None
    details: dict[str, Any] = {
        "first_ok_write_at": iso(check.finished_at),
        "last_ok_write_at": iso(db.last_ok_write_at),
        "failing_since": iso(db.failing_since),
    }
    if began is not None and began != db.last_ok_write_at:
        details["session_lost_at"] = iso(began)
    gap = ""
    if began is not None:
        seconds = round((check.finished_at - began).total_seconds(), 3)
        if continuous:
            details["downtime_seconds"] = seconds
            gap = f" after {seconds:.1f} s without writes"
        else:
            # The last good write was seen by an earlier watch: probing had a gap, so this is a bound.
            details["downtime_upper_bound_seconds"] = seconds
            gap = f"; downtime not measured (probing gap), at most {seconds:.1f} s"
    return _db_signal(
        check,
        SignalKind.WRITE_RESTORED,
        key=iso(db.failing_since) or "",
        at=check.finished_at,
        summary=f"writes succeed again{gap}",
        resource_id=resource_id,
        received_at=received_at,
        details=details,
    )


def _postmaster_restarted(
    db: DbProbeState, check: DbCheck, resource_id: str, received_at: datetime
) -> Signal:
    return _db_signal(
        check,
        SignalKind.POSTMASTER_RESTARTED,
        key=iso(check.postmaster_started_at) or "",
        at=check.postmaster_started_at or check.finished_at,
        summary=f"the server process restarted at {iso(check.postmaster_started_at)}",
        resource_id=resource_id,
        received_at=received_at,
        details={
            "postmaster_started_at": iso(check.postmaster_started_at),
            "previous_postmaster_started_at": iso(db.postmaster_started_at),
        },
    )
