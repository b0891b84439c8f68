"""Ports: the shapes the core expects from the outside world, and the values crossing them.

Layer: pure core. Protocols and plain values, plus `swap_row`, the one way use cases write a side
row over what they read (it only calls the port it is given); adapters in `failover.adapters`
implement the protocols against real services, tests implement them with fakes. Nothing here does
I/O of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

from failover.incidents import ServerState
from failover.model import (
    Effect,
    EffectName,
    EffectStatus,
    Incident,
    IncidentStatus,
    Signal,
    TimelineEntry,
    Topology,
    Transition,
)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class ReplicaView:
    name: str
    resource_id: str
    fqdn: str | None
    location: str | None
    replication_state: str | None  # Active, Catchup, Broken, Provisioning, Reconfiguring, Updating
    zone: str | None = None  # the replica's availability zone, when the management API gives one
    role: str | None = None  # AsyncReplica, GeoAsyncReplica, Primary (after a promotion), ...

    def as_topology(self, lag_seconds: float | None = None) -> dict[str, Any]:
        """The entry applications route by (the `replicas` JSON in Redis); lag is not in ARM."""
        return {
            "name": self.name,
            "host": self.fqdn,
            "zone": self.zone,
            "replicationState": self.replication_state,
            "role": self.role,
            "lagSeconds": lag_seconds,
        }


@dataclass(frozen=True)
class ServerView:
    """What the management API says about one flexible server right now."""

    resource_id: str  # lower-case ARM id
    server: str  # lower-case name
    location: str | None
    state: str | None  # Ready, Starting, Updating, ...
    ha_mode: str | None  # Disabled, ZoneRedundant, SameZone
    ha_state: str | None  # NotEnabled, ReplicatingData, FailingOver, Healthy, ...
    primary_zone: str | None
    standby_zone: str | None
    fqdn: str | None
    replication_role: str | None
    replicas: tuple[ReplicaView, ...] = ()
    # Virtual endpoints ({"writer": host, "reader": host}); empty when the server has none.
    endpoints: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MaintenanceEvent:
    """One planned maintenance of a server (``maintenanceEvents``, API 2026-10-01).

    ``status`` and ``maintenance_type`` are open strings as Azure sent them (Planned, InProgress,
    Complete, Rescheduled, Canceled; PlannedMaintenance): an unknown value is kept, never an error.
    Times are aware UTC, None when Azure sent none or an unreadable one.
    """

    event_id: str
    server: str  # lower-case name
    status: str | None
    maintenance_type: str | None
    start_at: datetime | None
    end_at: datetime | None
    description: str | None = None
    estimated_downtime: str | None = None  # ISO 8601 duration as sent, e.g. PT60S
    estimated_downtime_seconds: float | None = None
    deferrable: bool | None = None
    original_start_at: datetime | None = None
    last_updated_at: datetime | None = None

    def covers(self, when: datetime) -> bool:
        """Whether this event is in progress and its window contains ``when`` (the exact source
        for "this failover was Azure's planned maintenance")."""
        if (self.status or "").lower() != "inprogress" or self.start_at is None:
            return False
        return self.start_at <= when and (self.end_at is None or when <= self.end_at)


class ServerInspector(Protocol):
    """The management API (Microsoft.DBforPostgreSQL/flexibleServers)."""

    def get_server(self, resource_id: str) -> ServerView: ...

    def list_replicas(self, resource_id: str) -> tuple[ReplicaView, ...]: ...

    def start_failover(self, resource_id: str, mode: str, *, wait: bool = True) -> None: ...

    def discover(self, scopes: tuple[str, ...]) -> tuple[str, ...]: ...

    def maintenance_events(self, resource_id: str, upcoming: bool = True) -> tuple[MaintenanceEvent, ...]:
        """Upcoming (Planned, InProgress) or past maintenance events of one server."""
        ...


@dataclass(frozen=True)
class DbCheck:
    """One availability check of a server's endpoint, as an application would see it."""

    server: str
    started_at: datetime
    finished_at: datetime
    connected: bool
    writable: bool
    in_recovery: bool | None = None
    postmaster_started_at: datetime | None = None
    error: str | None = None  # a classified reason (fixed vocabulary), never driver text
    # Why the check failed: a ``failover.sources.db_faults.DbFault`` value (None when ok). Only
    # the ``outage`` group is failover evidence; ``probe`` faults are probe health.
    fault: str | None = None
    # When the server closed (or spoke on) the probe's idle kept session, found broken by this check:
    # the outage began by then (a primary shutting down terminates its sessions at once).
    session_lost_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.connected and self.writable


class DatabaseProbe(Protocol):
    def check(self, server: str) -> DbCheck: ...


@dataclass(frozen=True)
class PublishResult:
    written: bool  # False when the compare-and-set refused an older or equal version
    epoch: int | None
    invalidated: int = 0
    invalidation_complete: bool = True  # False: the per-run budget ran out before every node was scanned


@dataclass(frozen=True)
class InvalidationResult:
    unlinked: int
    complete: bool  # False when the time or key budget ran out before every primary node was scanned


class TopologyCache(Protocol):
    def publish(self, topology: Topology, *, epoch: int, patterns: tuple[str, ...] = ()) -> PublishResult: ...

    def read(self, server: str) -> Mapping[str, str]: ...

    def missing_or_older(self, versions: Mapping[str, int]) -> frozenset[str]:
        """The servers (of `versions`: server -> version the app knows) whose topology or epoch the
        cache lost, or whose stored version is older. Raises CacheUnavailableError when down."""
        ...

    def ping(self) -> None: ...


class Notifier(Protocol):
    def post(self, url: str, card: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class Health:
    name: str
    status: str  # ok / degraded / down / not_configured
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# --- storage ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalSnapshot:
    """What one read returns before recording a signal: the server's state and the dedupe marker."""

    state: ServerState | None
    etag: str | None
    seen: bool
    seen_incident_id: str | None


@dataclass(frozen=True)
class WorkItem:
    """Owed work found in the outbox: an effect to run, a server to settle, an incident to verify.

    `pointer` is the store's own handle for the outbox entry; use cases pass it back, never parse it.
    """

    pointer: str
    server: str
    kind: str  # effect | settle | verify
    incident_id: str = ""
    transition: Transition | None = None
    name: EffectName | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class Check:
    """A look the sweeper owes a server when due: `settle` it (an incident may resolve or go stale)
    or `verify` an incident's new topology."""

    kind: Literal["settle", "verify"]
    server: str
    due: datetime
    incident_id: str = ""


@dataclass(frozen=True)
class IncidentPage:
    incidents: tuple[Incident, ...]
    next_key: tuple[str, str] | None  # where to resume (opaque to callers but signed in tokens)


class IncidentStore(Protocol):
    """What the use cases need of storage. Layout (row keys, filters, batches) is the adapter's.

    Two implementations pass one contract suite (tests/contract): `adapters.table_store.TableStore`
    on Azure Table storage (Azurite locally) and `adapters.memory_store.MemoryStore`.
    """

    round_trips: int

    def ensure_table(self) -> None: ...

    def ping(self) -> None: ...

    def read_for_signal(self, server: str, signal_hash: str) -> SignalSnapshot: ...

    def read_state(self, server: str) -> tuple[ServerState | None, str | None]: ...

    def commit(
        self,
        state: ServerState,
        etag: str | None,
        *,
        signal: Signal | None = None,
        incident_id: str | None = None,
        incidents: Iterable[Incident] = (),
        effects: Iterable[Effect] = (),
    ) -> None: ...

    def schedule_work(
        self, effects: Iterable[Effect], *, now: datetime, checks: Sequence[Check] = ()
    ) -> list[WorkItem]:
        """Outbox pointers to new effects (due now) and to checks the sweeper owes (settle a server,
        verify an incident), in one write; the work items returned are the effects'. Written before
        the commit that creates the effects."""
        ...

    def side_rows(self) -> SideRows:
        """The rows beside the incidents in the same storage (verification steps, digests)."""
        ...

    def due_work(self, now: datetime, limit: int) -> list[WorkItem]: ...

    def finish_work(self, items: Iterable[WorkItem]) -> None: ...

    def move_work(self, item: WorkItem, due: datetime, *, now: datetime) -> WorkItem: ...

    def pending_work_count(self) -> int: ...

    def get_effect(
        self, server: str, incident_id: str, transition: Transition, name: EffectName
    ) -> tuple[Effect, str] | None: ...

    def replace_effect(self, effect: Effect, etag: str) -> str: ...

    def effects_of(self, incident_id: str) -> list[Effect]: ...

    def record_notification(
        self,
        incident_id: str,
        transition: Transition,
        status: EffectStatus,
        at: datetime,
        *,
        channel: str = "teams",
    ) -> None: ...

    def upsert_day(self, incident: Incident) -> None: ...

    def get_incident(self, incident_id: str) -> Incident | None: ...

    def timeline(self, incident: Incident) -> list[TimelineEntry]: ...

    def incidents_of_server(
        self,
        server: str,
        *,
        since: datetime | None,
        until: datetime | None,
        status: IncidentStatus | None,
        limit: int,
        after: str | None,
    ) -> IncidentPage: ...

    def incidents_of_day(
        self,
        day: date,
        *,
        since: datetime,
        until: datetime,
        after: str | None,
        status: IncidentStatus | None,
        limit: int,
    ) -> list[tuple[str, Incident]]: ...

    def troubled_effects(self, incident_id: str) -> list[Effect]: ...

    def record_dead(self, effect: Effect) -> None: ...

    def dead_effects(self, limit: int) -> list[Effect]: ...

    def save_publication(self, topology: Topology, epoch: int) -> None: ...

    def publications(self, limit: int) -> list[tuple[Topology, int]]: ...

    def save_probe_health(self, rows: Iterable[Mapping[str, Any]]) -> None: ...

    def probe_health(self, limit: int = 1000) -> list[Mapping[str, Any]]: ...


# --- post-failover verification and digests (issue 16) -------------------------------------------


@dataclass(frozen=True)
class SlotView:
    """One logical replication slot on a primary (`pg_replication_slots`).

    ``synced`` and ``failover`` are None where the PostgreSQL version has no such column (< 17).
    """

    name: str
    plugin: str | None
    active: bool
    synced: bool | None = None
    failover: bool | None = None


@dataclass(frozen=True)
class DbObservation:
    """What the database itself says after a failover, read through the writer endpoint."""

    reachable: bool
    writable: bool = False
    in_recovery: bool | None = None
    slots: tuple[SlotView, ...] = ()
    tables_without_statistics: tuple[str, ...] = ()  # up to a few names, sorted
    tables_without_statistics_count: int = 0
    # Tables with planner statistics whose activity counters know no ANALYZE: the counters
    # autovacuum reads restarted (a promotion does that; pg_statistic itself survives it).
    tables_with_reset_counters: int = 0
    catalog_read: bool = True  # False: the slots and statistics could not be read this time
    error: str | None = None  # a classified reason (fixed vocabulary), never driver text


class DatabaseVerifier(Protocol):
    """The database checks after a failover (`failover.adapters.pg_verify`)."""

    def inspect(self, server: str) -> DbObservation: ...


class SideRows(Protocol):
    """A few rows beside the incident store, in the same table (`IncidentStore.side_rows()`).

    Entities are plain Table entities (PartitionKey, RowKey, properties). ``insert`` raises
    `ConcurrencyConflictError` when the row exists, ``replace`` when its ETag moved on.
    """

    def get(self, partition: str, row: str) -> tuple[dict[str, Any], str] | None: ...

    def insert(self, entity: Mapping[str, Any]) -> str: ...

    def replace(self, entity: Mapping[str, Any], etag: str) -> str: ...

    def upsert(self, entity: Mapping[str, Any]) -> None: ...

    def query(self, partition: str, prefix: str, limit: int = 1000) -> list[dict[str, Any]]: ...


def swap_row(rows: SideRows, entity: Mapping[str, Any], found: tuple[dict[str, Any], str] | None) -> str:
    """Write `entity` over what `rows.get` found: insert when there was nothing, else replace under
    that read's ETag. `ConcurrencyConflictError` when another writer got there first."""
    return rows.insert(entity) if found is None else rows.replace(entity, found[1])
