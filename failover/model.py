"""Domain values: signals, incidents, timeline entries, effects, and their closed enums.

Layer: pure core. This module holds plain values only; it must not import Azure SDKs, Redis,
HTTP or PostgreSQL clients, and must not read the clock (callers pass times in).
Every persisted enum is a lower-snake string and every datetime is aware UTC.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

from failover.timeutil import ensure_utc, iso, parse_iso


class _StrEnum(str, Enum):
    """A str-valued enum (``enum.StrEnum`` is 3.11+; this project supports 3.10)."""

    def __str__(self) -> str:
        return str(self.value)


class Source(_StrEnum):
    MONITOR_ALERT = "monitor_alert"
    EVENT_GRID = "event_grid"
    ARM_PROBE = "arm_probe"
    DB_PROBE = "db_probe"


class Cause(_StrEnum):
    PLANNED = "planned"
    FORCED = "forced"
    UNPLANNED = "unplanned"
    MAINTENANCE = "maintenance"
    UNKNOWN = "unknown"


class SignalKind(_StrEnum):
    FAILOVER_STARTED = "failover_started"
    FAILOVER_COMPLETED = "failover_completed"
    FAILOVER_FAILED = "failover_failed"
    SERVER_RESTARTED = "server_restarted"
    HEALTH_DEGRADED = "health_degraded"
    HEALTH_UNAVAILABLE = "health_unavailable"
    HEALTH_AVAILABLE = "health_available"
    HEALTH_UNKNOWN = "health_unknown"
    DB_DOWN = "db_down"
    DB_UP = "db_up"
    WRITE_UNAVAILABLE = "write_unavailable"
    WRITE_RESTORED = "write_restored"
    POSTMASTER_RESTARTED = "postmaster_restarted"
    HA_STATE_CHANGED = "ha_state_changed"
    HA_CONFIG_CHANGED = "ha_config_changed"
    SERVER_STATE_CHANGED = "server_state_changed"
    REPLICAS_CHANGED = "replicas_changed"
    REPLICATION_LAG_HIGH = "replication_lag_high"
    REPLICATION_LAG_NORMAL = "replication_lag_normal"
    MAINTENANCE_SCHEDULED = "maintenance_scheduled"


class Role(_StrEnum):
    """What a signal means for the incident lifecycle (derived from kind and details)."""

    PROBLEM = "problem"  # the server is failing over or unavailable: opens or keeps an incident open
    PROGRESS = "progress"  # the primary is serving again in its new place: opens if nothing else did
    RECOVERY = "recovery"  # evidence that the server is whole again
    CONTEXT = "context"  # worth showing on a timeline; never opens an incident


class IncidentStatus(_StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Transition(_StrEnum):
    OPENED = "opened"
    PRIMARY_RESTORED = "primary_restored"
    RESOLVED = "resolved"


class EffectName(_StrEnum):
    REDIS_TOPOLOGY = "redis_topology"
    TEAMS_CARD = "teams_card"
    DAY_INDEX = "day_index"


class EffectStatus(_StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"
    SUPPRESSED = "suppressed"  # a card held back in a maintenance window (kept for the record)
    SKIPPED = "skipped"  # the integration is not configured


# HA states as the management API spells them (case-sensitive in the SDK).
HA_FAILING_OVER = "FailingOver"
HA_HEALTHY = "Healthy"
HA_RECOVERY_STATES = frozenset({HA_HEALTHY})
HA_PROBLEM_STATES = frozenset({HA_FAILING_OVER})

_PROBLEM_KINDS = frozenset(
    {
        SignalKind.FAILOVER_STARTED,
        SignalKind.HEALTH_DEGRADED,
        SignalKind.HEALTH_UNAVAILABLE,
        SignalKind.DB_DOWN,
        SignalKind.WRITE_UNAVAILABLE,
    }
)
_PROGRESS_KINDS = frozenset({SignalKind.FAILOVER_COMPLETED})
_RECOVERY_KINDS = frozenset({SignalKind.HEALTH_AVAILABLE, SignalKind.DB_UP, SignalKind.WRITE_RESTORED})


@dataclass(frozen=True)
class Signal:
    """One normalised observation of one server, from one source."""

    signal_id: str
    server: str
    resource_id: str
    source: Source
    kind: SignalKind
    cause: Cause
    observed_at: datetime
    received_at: datetime
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    # How strongly this signal knows its cause: 3 = the request said so (failoverMode),
    # 2 = the platform said so (Resource Health cause, maintenance notice), 1 = a hint (title text,
    # a user action without its mode), 0 = nothing known. The incident keeps the strongest.
    cause_confidence: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "observed_at", ensure_utc(self.observed_at))
        object.__setattr__(self, "received_at", ensure_utc(self.received_at))
        object.__setattr__(self, "server", self.server.lower())

    @property
    def role(self) -> Role:
        if self.kind is SignalKind.HA_STATE_CHANGED:
            state = self.details.get("ha_state")
            if state in HA_PROBLEM_STATES:
                return Role.PROBLEM
            if state in HA_RECOVERY_STATES:
                return Role.RECOVERY
            return Role.CONTEXT
        if self.kind in _PROBLEM_KINDS:
            return Role.PROBLEM
        if self.kind in _PROGRESS_KINDS:
            return Role.PROGRESS
        if self.kind in _RECOVERY_KINDS:
            return Role.RECOVERY
        return Role.CONTEXT

    @property
    def key_hash(self) -> str:
        return signal_hash(self.signal_id)

    def with_received_at(self, when: datetime) -> Signal:
        return replace(self, received_at=when)

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal_id": self.signal_id,
            "server": self.server,
            "resource_id": self.resource_id,
            "source": self.source.value,
            "kind": self.kind.value,
            "cause": self.cause.value,
            "cause_confidence": self.cause_confidence,
            "observed_at": iso(self.observed_at),
            "received_at": iso(self.received_at),
            "summary": self.summary,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Signal:
        return cls(
            signal_id=str(raw["signal_id"]),
            server=str(raw["server"]),
            resource_id=str(raw.get("resource_id", "")),
            source=Source(raw["source"]),
            kind=SignalKind(raw["kind"]),
            cause=Cause(raw["cause"]),
            cause_confidence=int(raw.get("cause_confidence", 0)),
            observed_at=parse_iso(raw["observed_at"]),
            received_at=parse_iso(raw["received_at"]),
            summary=str(raw.get("summary", "")),
            details=dict(raw.get("details") or {}),
        )


def signal_hash(signal_id: str) -> str:
    """A key-safe, fixed-length digest of a signal id (ids hold `/` and `#`, forbidden in Table keys)."""
    return hashlib.sha256(signal_id.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Notification:
    transition: Transition
    status: EffectStatus
    at: datetime

    def to_dict(self) -> dict[str, str | None]:
        return {"transition": self.transition.value, "status": self.status.value, "at": iso(self.at)}


@dataclass(frozen=True)
class Incident:
    """One failover of one server: the aggregate kept by correlation.

    Every field is a commutative fold over the incident's signals (min, max, count, strongest
    cause), so the same signals in any order give the same incident (invariant 4).
    """

    incident_id: str
    server: str
    resource_id: str
    status: IncidentStatus
    cause: Cause
    cause_confidence: int
    opened_at: datetime
    last_signal_at: datetime
    last_problem_at: datetime | None = None
    last_recovery_at: datetime | None = None
    primary_restored_at: datetime | None = None
    resolved_at: datetime | None = None
    primary_zone_before: str | None = None
    primary_zone_after: str | None = None
    standby_zone_after: str | None = None
    ha_state: str | None = None
    topology_at: datetime | None = None  # observed_at of the signal the zones and HA state came from
    covers_until: datetime | None = None  # the next incident's opening: ranges never overlap
    write_downtime_seconds: float | None = None
    signal_count: int = 0
    transitions: tuple[Transition, ...] = ()
    notifications: tuple[Notification, ...] = ()

    @property
    def recovered(self) -> bool:
        """Recovery evidence newer than every problem signal has been seen."""
        if self.last_recovery_at is None:
            return False
        return self.last_problem_at is None or self.last_recovery_at >= self.last_problem_at

    def covers(self, when: datetime, quiet: timedelta) -> bool:
        """Whether a signal observed at `when` belongs to this incident's time range.

        The range starts at the opening and ends at the next incident's opening, or `quiet` after
        the resolution, whichever comes first: ranges of one server never overlap.
        """
        if when < self.opened_at:
            return False
        if self.covers_until is not None and when >= self.covers_until:
            return False
        return self.resolved_at is None or when <= self.resolved_at + quiet

    def range_end(self, quiet: timedelta) -> datetime | None:
        """The last instant this incident covers (None: still open to later signals)."""
        ends = [t for t in (self.covers_until, self.resolved_at + quiet if self.resolved_at else None) if t]
        return min(ends) if ends else None

    def to_public(self) -> dict[str, Any]:
        """The public incident JSON (field names are a contract: design section 5)."""
        return {
            "incident_id": self.incident_id,
            "server": self.server,
            "resource_id": self.resource_id,
            "status": self.status.value,
            "cause": self.cause.value,
            "opened_at": iso(self.opened_at),
            "primary_restored_at": iso(self.primary_restored_at),
            "resolved_at": iso(self.resolved_at),
            "primary_zone_before": self.primary_zone_before,
            "primary_zone_after": self.primary_zone_after,
            "standby_zone_after": self.standby_zone_after,
            "ha_state": self.ha_state,
            "write_downtime_seconds": self.write_downtime_seconds,
            "signal_count": self.signal_count,
            "notifications": [n.to_dict() for n in self.notifications],
        }


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    source: str
    kind: str
    summary: str
    signal_id: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_public(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "source": self.source,
            "kind": self.kind,
            "summary": self.summary,
            "signal_id": self.signal_id,
        }


@dataclass(frozen=True)
class Effect:
    """One action owed after an incident transition, kept in the outbox until done or dead."""

    incident_id: str
    server: str
    transition: Transition
    name: EffectName
    status: EffectStatus = EffectStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    lease_until: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def effect_key(self) -> str:
        return f"{self.transition.value}~{self.name.value}"


@dataclass(frozen=True)
class Topology:
    """What applications cache about a server's topology (the Redis hash, design section 5)."""

    server: str
    primary_zone: str | None
    standby_zone: str | None
    ha_state: str | None
    fqdn: str | None
    read_replicas: tuple[str, ...]
    incident_id: str | None
    version: int
    updated_at: datetime


UTC = timezone.utc
