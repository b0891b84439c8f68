"""Probe observations -> Signals: what changed since the last known state (pure).

Layer: pure core, the probe source family. Takes what the management API or a database check
saw, and the last known state, and returns the signals for what changed. No I/O, no clock reads.

Signal ids are scoped by the last known state (the ARM view version, the last good write), so two
workers that observe the same change from the same starting point derive the same id and the
change is recorded once (invariant 1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from failover.incidents import DbProbeState, KnownTopology
from failover.model import HA_FAILING_OVER, Cause, Signal, SignalKind, Source
from failover.ports import DbCheck, ServerView
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
    }


def diff_view(
    known: KnownTopology | None,
    view: ServerView,
    *,
    arm_version: int,
    observed_at: datetime,
    received_at: datetime,
) -> tuple[Signal, ...]:
    """Signals for what the management API shows changed. A first sighting is a baseline: none."""
    if known is None:
        return ()
    current = view_dict(view)
    make = _ArmSignalFactory(view, current, arm_version, observed_at, received_at)
    signals: list[Signal] = []
    if known.primary_zone and view.primary_zone and known.primary_zone != view.primary_zone:
        signals.append(
            make(
                SignalKind.FAILOVER_COMPLETED,
                "primary_zone",
                known.primary_zone,
                view.primary_zone,
                f"Primary moved from zone {known.primary_zone} to zone {view.primary_zone}"
                f" (standby zone {view.standby_zone or 'unknown'})",
                Cause.UNPLANNED,
                zone_before=known.primary_zone,
            )
        )
    if view.ha_state != known.ha_state and view.ha_state is not None:
        cause = Cause.UNPLANNED if view.ha_state == HA_FAILING_OVER else Cause.UNKNOWN
        signals.append(
            make(
                SignalKind.HA_STATE_CHANGED,
                "ha_state",
                known.ha_state,
                view.ha_state,
                f"High availability state {known.ha_state or 'unknown'} -> {view.ha_state}",
                cause,
                previous_ha_state=known.ha_state,
            )
        )
    if view.state != known.state and view.state is not None:
        signals.append(
            make(
                SignalKind.SERVER_STATE_CHANGED,
                "state",
                known.state,
                view.state,
                f"Server state {known.state or 'unknown'} -> {view.state}",
                Cause.UNKNOWN,
            )
        )
    if tuple(current["replicas"]) != tuple(sorted(known.replicas)):
        signals.append(
            make(
                SignalKind.REPLICAS_CHANGED,
                "replicas",
                ",".join(sorted(known.replicas)),
                ",".join(current["replicas"]),
                f"Read replicas now: {', '.join(current['replicas']) or 'none'}",
                Cause.UNKNOWN,
            )
        )
    return tuple(signals)


@dataclass(frozen=True)
class _ArmSignalFactory:
    view: ServerView
    current: dict[str, Any]
    arm_version: int
    observed_at: datetime
    received_at: datetime

    def __call__(
        self,
        kind: SignalKind,
        what: str,
        old: str | None,
        new: str | None,
        summary: str,
        cause: Cause,
        **extra: Any,
    ) -> Signal:
        return Signal(
            signal_id=f"arm_probe:{self.view.server}:{what}:{old}>{new}:v{self.arm_version}",
            server=self.view.server,
            resource_id=self.view.resource_id,
            source=Source.ARM_PROBE,
            kind=kind,
            cause=cause,
            cause_confidence=0,
            observed_at=self.observed_at,
            received_at=self.received_at,
            summary=f"Management API: {summary}",
            details={"view": self.current, "ha_state": self.view.ha_state, **extra},
        )


@dataclass(frozen=True)
class DbProbeMemory:
    """The sampler's running memory between checks of one server."""

    state: DbProbeState

    @property
    def failing(self) -> bool:
        return self.state.failing_since is not None


def diff_check(
    memory: DbProbeMemory, check: DbCheck, *, resource_id: str, received_at: datetime
) -> tuple[tuple[Signal, ...], DbProbeMemory]:
    """Signals for one database check: writes lost, writes back (with the measured gap), restarts."""
    db = memory.state
    signals: list[Signal] = []
    if check.ok:
        restarted = (
            db.postmaster_started_at is not None
            and check.postmaster_started_at is not None
            and check.postmaster_started_at != db.postmaster_started_at
        )
        if db.failing_since is None and restarted and db.last_ok_write_at is not None:
            # A new primary (or a restarted one) answered although no check failed: the outage fell
            # between two checks. Writes were lost from the last good write to this one, at most.
            db = replace(db, failing_since=db.last_ok_write_at)
            signals.append(_write_unavailable(db, check, resource_id, received_at, inferred=True))
        if db.failing_since is not None:
            signals.append(_write_restored(db, check, resource_id, received_at))
        if restarted:
            signals.append(_postmaster_restarted(db, check, resource_id, received_at))
        db = DbProbeState(
            failing_since=None,
            last_ok_write_at=check.finished_at,
            postmaster_started_at=check.postmaster_started_at or db.postmaster_started_at,
        )
    elif db.failing_since is None:
        signals.append(_write_unavailable(db, check, resource_id, received_at))
        db = replace(db, failing_since=check.started_at)
    return tuple(signals), DbProbeMemory(db)


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
    db: DbProbeState, check: DbCheck, resource_id: str, received_at: datetime, *, inferred: bool = False
) -> Signal:
    if inferred:
        reason = "the primary changed between two checks"
    else:
        reason = "connected to a read-only node" if check.connected else "cannot connect"
    at = db.failing_since if inferred and db.failing_since else check.started_at
    return _db_signal(
        check,
        SignalKind.WRITE_UNAVAILABLE,
        key=iso(db.last_ok_write_at) or iso(check.started_at) or "",
        at=at,
        summary=f"writes failing ({reason}); last good write {iso(db.last_ok_write_at) or 'not seen'}",
        resource_id=resource_id,
        received_at=received_at,
        details={
            "last_ok_write_at": iso(db.last_ok_write_at),
            "error": check.error,
            "connected": check.connected,
        },
    )


def _write_restored(db: DbProbeState, check: DbCheck, resource_id: str, received_at: datetime) -> Signal:
    assert db.failing_since is not None
    details: dict[str, Any] = {
        "first_ok_write_at": iso(check.finished_at),
        "last_ok_write_at": iso(db.last_ok_write_at),
        "failing_since": iso(db.failing_since),
    }
    gap = ""
    if db.last_ok_write_at is not None:
        seconds = round((check.finished_at - db.last_ok_write_at).total_seconds(), 3)
        details["downtime_seconds"] = seconds
        gap = f" after {seconds:.1f} s without writes"
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
