"""Domain values: signals, incidents, timeline entries, effects, and their closed enums.

Layer: pure core. This module holds plain values only; it must not import Azure SDKs, Redis,
HTTP or PostgreSQL clients, and must not read the clock (callers pass times in).
Every persisted enum is a lower-snake string and every datetime is aware UTC.

Size: over 400 lines because every public value and closed enum lives here, with its JSON form
(the contract of design section 5 in one file).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
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
    SCALING = "scaling"  # a compute change done by failing over (HA state ComputeUpdatingByFailover)
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
    WRITE_BLIP = "write_blip"  # writes failed for less than the outage bound: a note, never a failover
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
    STALE = "stale"  # closed without recovery evidence after INCIDENT_STALE_SECONDS

    @property
    def final(self) -> bool:
        return self is not IncidentStatus.OPEN


class Transition(_StrEnum):
    OPENED = "opened"
    PRIMARY_RESTORED = "primary_restored"
    RESOLVED = "resolved"
    STALE = "stale"


_NOTIFY_PREFIX = "notify_"
_CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9]{1,30}$")


class EffectName(_StrEnum):
    """What an effect does. One `notify_{channel}` value per registered channel (`failover.notify`).

    Channel effect names are open: `EffectName("notify_pagerduty")` is a member made on first use,
    so a new channel needs no edit here. `teams_card` is how Teams effects were stored before
    channels: such rows are still read, and run as the Teams channel.
    """

    REDIS_TOPOLOGY = "redis_topology"
    DAY_INDEX = "day_index"
    NOTIFY_TEAMS = "notify_teams"
    TEAMS_CARD = "teams_card"  # stored before channels; read only

    @classmethod
    def _missing_(cls, value: object) -> EffectName | None:
        if not isinstance(value, str) or not value.startswith(_NOTIFY_PREFIX):
            return None
        if not _CHANNEL_NAME.match(value[len(_NOTIFY_PREFIX) :]):
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        return cls._value2member_map_.setdefault(value, member)  # type: ignore[return-value]

    @classmethod
    def notify(cls, channel: str) -> EffectName:
        """The effect that notifies `channel` (a registered channel name such as `teams`)."""
        return cls(f"{_NOTIFY_PREFIX}{channel}")

    @property
    def channel(self) -> str | None:
        """The channel this effect notifies, or None for an effect that is not a notification."""
        if self is EffectName.TEAMS_CARD:
            return "teams"
        return self.value[len(_NOTIFY_PREFIX) :] if self.value.startswith(_NOTIFY_PREFIX) else None


class EffectStatus(_StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"
    SUPPRESSED = "suppressed"  # a card held back in a maintenance window (kept for the record)
    SKIPPED = "skipped"  # the integration is not configured


# HA states as the management API spells them (case-sensitive in the SDK).
HA_FAILING_OVER = "FailingOver"
HA_SCALING_BY_FAILOVER = "ComputeUpdatingByFailover"  # API 2026-10-01: near-zero-downtime scaling
HA_HEALTHY = "Healthy"
HA_RECOVERY_STATES = frozenset({HA_HEALTHY})
HA_PROBLEM_STATES = frozenset({HA_FAILING_OVER, HA_SCALING_BY_FAILOVER})

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
    channel: str = "teams"

    def to_dict(self) -> dict[str, str | None]:
        return {
            "channel": self.channel,
            "transition": self.transition.value,
            "status": self.status.value,
            "at": iso(self.at),
        }


@dataclass(frozen=True)
class Incident:
    """One failover of one server, as derived from its evidence (`failover.incidents`).

    Every field is a function of the set of signals attributed to the incident (min, max, count,
    strongest cause) and of the clock for its status, so the same signals in any order give the
    same incident (invariant 12). `docs/incident-lifecycle.md` draws the lifecycle.
    """

    incident_id: str
    server: str
    resource_id: str
    status: IncidentStatus
    cause: Cause
    cause_confidence: int
    opened_at: datetime
    last_signal_at: datetime
    primary_restored_at: datetime | None = None
    recovered_at: datetime | None = None  # every watching source said the server is whole again
    resolved_at: datetime | None = None
    stale_at: datetime | None = None
    primary_zone_before: str | None = None
    primary_zone_after: str | None = None
    standby_zone_after: str | None = None
    ha_state: str | None = None
    write_downtime_seconds: float | None = None
    signal_count: int = 0
    detected_at: datetime | None = None  # the app's first evidence (receipt of the first failover signal)
    azure_alert_at: datetime | None = None  # receipt of Azure's first alert or event, if any came
    transitions: tuple[Transition, ...] = ()
    notifications: tuple[Notification, ...] = ()
    # Post-failover verification steps ({check, status, at, detail}); kept beside the incident
    # (`failover.verifying`) and filled by lookups, never stored on the incident row.
    verification: tuple[dict[str, Any], ...] = ()

    @property
    def detection_lead_seconds(self) -> float | None:
        """How long before Azure's first alert the app knew (negative: Azure was first)."""
        if self.detected_at is None or self.azure_alert_at is None:
            return None
        return round((self.azure_alert_at - self.detected_at).total_seconds(), 3)

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
            "stale_at": iso(self.stale_at),
            "primary_zone_before": self.primary_zone_before,
            "primary_zone_after": self.primary_zone_after,
            "standby_zone_after": self.standby_zone_after,
            "ha_state": self.ha_state,
            "write_downtime_seconds": self.write_downtime_seconds,
            "signal_count": self.signal_count,
            "detected_at": iso(self.detected_at),
            "azure_alert_at": iso(self.azure_alert_at),
            "detection_lead_seconds": self.detection_lead_seconds,
            "notifications": [n.to_dict() for n in self.notifications],
            "verification": [dict(step) for step in self.verification],
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
    # One dict per read replica: name, host, zone, replicationState, lagSeconds (None when unknown).
    replicas: tuple[dict[str, Any], ...] = ()
    # Virtual endpoints when the server has them: {"writer": host, "reader": host}.
    endpoints: dict[str, str] = field(default_factory=dict)


def topology_payload(topology: Topology, epoch: int) -> dict[str, Any]:
    """The JSON form of a topology and its epoch (an effect's payload, the reconciliation index)."""
    return {
        "server": topology.server,
        "primary_zone": topology.primary_zone,
        "standby_zone": topology.standby_zone,
        "ha_state": topology.ha_state,
        "fqdn": topology.fqdn,
        "read_replicas": list(topology.read_replicas),
        "replicas": [dict(r) for r in topology.replicas],
        "endpoints": dict(topology.endpoints),
        "incident_id": topology.incident_id,
        "version": topology.version,
        "epoch": epoch,
        "updated_at": iso(topology.updated_at),
    }


def topology_from_payload(payload: dict[str, Any]) -> tuple[Topology, int]:
    topology = Topology(
        server=str(payload["server"]),
        primary_zone=payload.get("primary_zone"),
        standby_zone=payload.get("standby_zone"),
        ha_state=payload.get("ha_state"),
        fqdn=payload.get("fqdn"),
        read_replicas=tuple(payload.get("read_replicas") or ()),
        incident_id=payload.get("incident_id"),
        version=int(payload["version"]),
        updated_at=parse_iso(payload["updated_at"]),
        replicas=tuple(dict(r) for r in payload.get("replicas") or ()),
        endpoints=dict(payload.get("endpoints") or {}),
    )
    return topology, int(payload.get("epoch") or 0)


UTC = timezone.utc
