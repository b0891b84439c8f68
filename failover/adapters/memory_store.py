"""An in-memory `IncidentStore` with Azure Table semantics, for fast tests of the core.

Layer: adapter (a fake of Table storage). It stores the very entities `table_codec` builds, so the
layout is the real one, and it enforces what the real service enforces: ETag compare-and-swap on
replace, insert-if-absent on create, all-or-nothing transactions of one partition with at most 100
operations and 4 MiB, entities of at most 1 MiB with string properties of at most 64 KiB, and key
characters (https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model,
https://learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions).
The contract suite (tests/contract) runs against it and against Azurite, so it cannot drift.

Faults can be injected per method (`fail_next`) to test what callers do when storage fails.
It must not be used by the deployed app.

Size: over 400 lines because it implements the whole `IncidentStore` port with Table semantics;
splitting it would split the one fake the contract suite checks.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from failover.adapters import table_codec as codec
from failover.errors import (
    ConcurrencyConflictError,
    FailoverError,
    StorageError,
    StorageUnavailableError,
)
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
from failover.ports import Check, IncidentPage, SideRows, SignalSnapshot, WorkItem
from failover.timeutil import sortable

MAX_OPERATIONS = 100
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
MAX_ENTITY_BYTES = 1024 * 1024
MAX_STRING_CHARS = 32 * 1024  # 64 KiB of UTF-16
MAX_PROPERTIES = 252
_FORBIDDEN_KEY_CHARS = (
    frozenset("/\\#?") | {chr(c) for c in range(0x20)} | {chr(c) for c in range(0x7F, 0xA0)}
)


@dataclass
class _Row:
    entity: dict[str, Any]
    etag: str


class MemoryStore:
    """Thread-safe; every public call counts one round trip, like the Table adapter."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], _Row] = {}
        self._lock = threading.RLock()
        self._etags = itertools.count(1)
        self._faults: dict[str, list[FailoverError]] = {}
        self.round_trips = 0

    # --- fault injection ----------------------------------------------------------------------

    def fail_next(self, method: str, times: int = 1, error: FailoverError | None = None) -> None:
        """Make the next `times` calls of `method` raise (default: storage unavailable, a 503)."""
        raised = error or StorageUnavailableError("table storage answered 503 (injected)")
        with self._lock:
            self._faults.setdefault(method, []).extend([raised] * times)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _enter(self, method: str) -> None:
        with self._lock:
            self.round_trips += 1
            pending = self._faults.get(method)
            if pending:
                raise pending.pop(0)

    # --- basics -------------------------------------------------------------------------------

    def ensure_table(self) -> None:
        self._enter("ensure_table")

    def ping(self) -> None:
        self._enter("ping")

    def read_for_signal(self, server: str, signal_hash: str) -> SignalSnapshot:
        self._enter("read_for_signal")
        with self._lock:
            state_row = self._rows.get((server, codec.STATE_KEY))
            seen_row = self._rows.get((server, codec.seen_key(signal_hash)))
        return SignalSnapshot(
            state=codec.state_from_entity(state_row.entity) if state_row else None,
            etag=state_row.etag if state_row else None,
            seen=seen_row is not None,
            seen_incident_id=(seen_row.entity.get("incident_id") or None) if seen_row else None,
        )

    def read_state(self, server: str) -> tuple[ServerState | None, str | None]:
        self._enter("read_state")
        with self._lock:
            row = self._rows.get((server, codec.STATE_KEY))
        return (codec.state_from_entity(row.entity), row.etag) if row else (None, None)

    def commit(
        self,
        state: ServerState,
        etag: str | None,
        *,
        signal: Signal | None = None,
        incident_id: str | None = None,
        incidents: Iterable[Incident] = (),
        effects: Iterable[Effect] = (),
    ) -> None:
        operations = codec.commit_operations(
            state, etag, signal=signal, incident_id=incident_id, incidents=incidents, effects=effects
        )
        self._enter("commit")
        self._transaction(operations)

    # --- outbox -------------------------------------------------------------------------------

    def schedule_work(
        self, effects: Iterable[Effect], *, now: datetime, checks: Sequence[Check] = ()
    ) -> list[WorkItem]:
        entities = codec.outbox_entities(effects, checks, now=now)
        self._enter("schedule_work")
        self._upsert_all(entities)
        return [codec.work_item(e) for e in entities if e["kind"] == "effect"]

    def side_rows(self) -> SideRows:
        """Rows beside the incidents (verification steps, digests, post slots), with this store's
        Table semantics (ETags, insert-if-absent, entity limits) and fault injection."""
        return _MemorySideRows(self)

    def due_work(self, now: datetime, limit: int) -> list[WorkItem]:
        self._enter("due_work")
        high = f"{sortable(now)}~~"
        rows = self._partition(codec.OUTBOX_PARTITION, lambda key: key <= high)
        return [codec.work_item(r) for r in rows[:limit]]

    def finish_work(self, items: Iterable[WorkItem]) -> None:
        for item in items:
            self._enter("finish_work")
            with self._lock:
                self._rows.pop((codec.OUTBOX_PARTITION, item.pointer), None)

    def move_work(self, item: WorkItem, due: datetime, *, now: datetime) -> WorkItem:
        if item.transition is None or item.name is None:
            raise ValueError("only effect work moves")
        row_key = codec.effect_key(item.incident_id, item.transition, item.name)
        entity = codec.outbox_pointer(item.server, row_key, due, now=now, incident_id=item.incident_id)
        if entity["RowKey"] == item.pointer:
            return item
        self._enter("move_work")
        self._upsert_all([entity])
        self.finish_work([item])
        return codec.work_item(entity)

    def pending_work_count(self) -> int:
        self._enter("pending_work_count")
        return len(self._partition(codec.OUTBOX_PARTITION, lambda key: True))

    # --- effects ------------------------------------------------------------------------------

    def get_effect(
        self, server: str, incident_id: str, transition: Transition, name: EffectName
    ) -> tuple[Effect, str] | None:
        self._enter("get_effect")
        with self._lock:
            row = self._rows.get((server, codec.effect_key(incident_id, transition, name)))
        return (codec.effect_from_entity(row.entity), row.etag) if row else None

    def replace_effect(self, effect: Effect, etag: str) -> str:
        self._enter("replace_effect")
        entity = codec.effect_to_entity(effect)
        with self._lock:
            self._apply([codec.Operation("replace", entity, etag)])
            return self._rows[(entity["PartitionKey"], entity["RowKey"])].etag

    def effects_of(self, incident_id: str) -> list[Effect]:
        self._enter("effects_of")
        server, _ = codec.split_incident_id(incident_id)
        prefix = codec.effect_prefix(incident_id)
        rows = self._partition(server, lambda key: key.startswith(prefix))
        return [codec.effect_from_entity(r) for r in rows]

    def record_notification(
        self,
        incident_id: str,
        transition: Transition,
        status: EffectStatus,
        at: datetime,
        *,
        channel: str = "teams",
    ) -> None:
        server, _ = codec.split_incident_id(incident_id)
        column = {codec.notify_column(transition, channel): codec.notification_value(status, at)}
        for partition, row in (
            (server, codec.incident_key(incident_id)),
            (codec.day_partition(incident_id), codec.day_key(incident_id)),
        ):
            self._enter("record_notification")
            with self._lock:
                self._apply([codec.Operation("merge", {"PartitionKey": partition, "RowKey": row, **column})])

    def upsert_day(self, incident: Incident) -> None:
        self._enter("upsert_day")
        with self._lock:
            self._apply([codec.Operation("merge", codec.day_entity(incident))])

    # --- lookups ------------------------------------------------------------------------------

    def get_incident(self, incident_id: str) -> Incident | None:
        self._enter("get_incident")
        server, _ = codec.split_incident_id(incident_id)
        with self._lock:
            row = self._rows.get((server, codec.incident_key(incident_id)))
        if row is None or "aggregate" not in row.entity:
            return None
        return codec.incident_from_entity(row.entity)

    def timeline(self, incident: Incident) -> list[TimelineEntry]:
        self._enter("timeline")
        low, high = codec.incident_signal_range(incident)
        rows = self._partition(incident.server, lambda key: low <= key < high)
        return [codec.timeline_entry(r) for r in rows]

    def incidents_of_server(
        self,
        server: str,
        *,
        since: datetime | None,
        until: datetime | None,
        status: IncidentStatus | None,
        limit: int,
        after: str | None,
    ) -> IncidentPage:
        self._enter("incidents_of_server")
        low, high = codec.server_incident_range(since, until, after)
        rows = [r for r in self._partition(server, lambda key: low <= key < high) if _status_is(r, status)]
        rows = rows[:limit]
        next_key = (server, str(rows[-1]["RowKey"])) if len(rows) == limit else None
        return IncidentPage(tuple(codec.incident_from_entity(r) for r in rows), next_key)

    def incidents_of_day(
        self,
        day: date,
        *,
        since: datetime,
        until: datetime,
        after: str | None,
        status: IncidentStatus | None,
        limit: int,
    ) -> list[tuple[str, Incident]]:
        self._enter("incidents_of_day")
        low, high = codec.day_range(since, until, after)
        partition = codec.day_partition_of(day)
        rows = [r for r in self._partition(partition, lambda key: low <= key < high) if _status_is(r, status)]
        return [(str(r["RowKey"]), codec.incident_from_entity(r)) for r in rows[:limit] if r.get("aggregate")]

    def troubled_effects(self, incident_id: str) -> list[Effect]:
        return [
            e
            for e in self.effects_of(incident_id)
            if e.status in (EffectStatus.DEAD, EffectStatus.SUPPRESSED)
            or (e.status is EffectStatus.PENDING and e.last_error)
        ]

    def record_dead(self, effect: Effect) -> None:
        self._enter("record_dead")
        with self._lock:
            self._apply([codec.Operation("merge", codec.dead_entity(effect))])

    def dead_effects(self, limit: int) -> list[Effect]:
        self._enter("dead_effects")
        rows = self._partition(codec.DEAD_PARTITION, lambda key: True)[:limit]
        return [codec.effect_from_entity(codec.dead_row_as_effect(r)) for r in rows]

    def save_publication(self, topology: Topology, epoch: int) -> None:
        self._enter("save_publication")
        with self._lock:
            row = self._rows.get((codec.TOPOLOGY_PARTITION, topology.server))
            if row is None or int(row.entity.get("version") or 0) < topology.version:
                self._apply([codec.Operation("merge", codec.publication_entity(topology, epoch))])

    def publications(self, limit: int) -> list[tuple[Topology, int]]:
        self._enter("publications")
        rows = self._partition(codec.TOPOLOGY_PARTITION, lambda key: True)[:limit]
        return [codec.publication_from_entity(r) for r in rows]

    def save_probe_health(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._enter("save_probe_health")
        with self._lock:
            for r in rows:
                entity = {"PartitionKey": codec.PROBE_PARTITION, "RowKey": r["server"], **r}
                _check_entity(entity)
                self._rows[(codec.PROBE_PARTITION, str(r["server"]))] = _Row(entity, self._etag())

    def probe_health(self, limit: int = 1000) -> list[Mapping[str, Any]]:
        self._enter("probe_health")
        return list(self._partition(codec.PROBE_PARTITION, lambda key: True)[:limit])

    def entities(self, partition: str) -> list[dict[str, Any]]:
        """Every entity of one partition in row-key order (tests inspect the layout through this)."""
        return self._partition(partition, lambda key: True)

    # --- the Table semantics ------------------------------------------------------------------

    def _partition(self, partition: str, keep: Callable[[str], bool]) -> list[dict[str, Any]]:
        with self._lock:
            rows = [(k[1], dict(r.entity)) for k, r in self._rows.items() if k[0] == partition and keep(k[1])]
        return [entity for _, entity in sorted(rows, key=lambda pair: pair[0])]

    def _upsert_all(self, entities: list[dict[str, Any]]) -> None:
        with self._lock:
            for start in range(0, len(entities), MAX_OPERATIONS):
                self._transaction(
                    [codec.Operation("merge", e) for e in entities[start : start + MAX_OPERATIONS]]
                )

    def _transaction(self, operations: list[codec.Operation]) -> None:
        if not operations:
            return
        if len(operations) > MAX_OPERATIONS:
            raise StorageError(f"a transaction holds at most {MAX_OPERATIONS} operations ({len(operations)})")
        if len({op.entity["PartitionKey"] for op in operations}) != 1:
            raise StorageError("a transaction spans one partition")
        if sum(_entity_bytes(op.entity) for op in operations) > MAX_TRANSACTION_BYTES:
            raise StorageError("a transaction payload is at most 4 MiB")
        keys = [(op.entity["PartitionKey"], op.entity["RowKey"]) for op in operations]
        if len(set(keys)) != len(keys):
            raise StorageError("a transaction touches each entity once")
        with self._lock:
            self._apply(operations)

    def _apply(self, operations: Sequence[codec.Operation]) -> None:
        """All or nothing: every check first, then every write (callers hold the lock)."""
        for op in operations:
            _check_entity(op.entity)
            row = self._rows.get((op.entity["PartitionKey"], op.entity["RowKey"]))
            if op.kind == "create" and row is not None:
                raise ConcurrencyConflictError("concurrent write (EntityAlreadyExists)")
            if op.kind == "replace" and (row is None or row.etag != op.etag):
                raise ConcurrencyConflictError("concurrent write (UpdateConditionNotSatisfied)")
        for op in operations:
            key = (op.entity["PartitionKey"], op.entity["RowKey"])
            if op.kind == "merge" and key in self._rows:
                merged = {**self._rows[key].entity, **op.entity}
                _check_entity(merged)
                self._rows[key] = _Row(merged, self._etag())
            else:
                self._rows[key] = _Row(dict(op.entity), self._etag())

    def _etag(self) -> str:
        return f'W/"{next(self._etags)}"'


class _MemorySideRows:
    """`SideRows` on the in-memory store; each call is one round trip (`side_get`, `side_insert`, ...)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def get(self, partition: str, row: str) -> tuple[dict[str, Any], str] | None:
        self._store._enter("side_get")
        with self._store._lock:
            found = self._store._rows.get((partition, row))
            return None if found is None else (dict(found.entity), found.etag)

    def insert(self, entity: Mapping[str, Any]) -> str:
        return self._write(codec.Operation("create", dict(entity)))

    def replace(self, entity: Mapping[str, Any], etag: str) -> str:
        return self._write(codec.Operation("replace", dict(entity), etag))

    def upsert(self, entity: Mapping[str, Any]) -> None:
        self._store._enter("side_upsert")
        with self._store._lock:
            self._store._rows.pop((entity["PartitionKey"], entity["RowKey"]), None)
            self._store._transaction([codec.Operation("create", dict(entity))])

    def query(self, partition: str, prefix: str, limit: int = 1000) -> list[dict[str, Any]]:
        self._store._enter("side_query")
        return self._store._partition(partition, lambda key: key.startswith(prefix))[:limit]

    def _write(self, operation: codec.Operation) -> str:
        self._store._enter(f"side_{operation.kind}")
        with self._store._lock:
            self._store._transaction([operation])
            return self._store._rows[(operation.entity["PartitionKey"], operation.entity["RowKey"])].etag


def _status_is(row: Mapping[str, Any], status: IncidentStatus | None) -> bool:
    return status is None or row.get("status") == status.value


def _check_entity(entity: Mapping[str, Any]) -> None:
    for key_name in ("PartitionKey", "RowKey"):
        key = str(entity[key_name])
        if len(key) > 1024 or any(ch in _FORBIDDEN_KEY_CHARS for ch in key):
            raise StorageError(f"{key_name} has a character or length Table storage refuses")
    if len(entity) - 2 > MAX_PROPERTIES:
        raise StorageError(f"an entity holds at most {MAX_PROPERTIES} properties")
    for name, value in entity.items():
        if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
            raise StorageError(f"property {name} is over 64 KiB")
    if _entity_bytes(entity) > MAX_ENTITY_BYTES:
        raise StorageError("an entity is at most 1 MiB")


def _entity_bytes(entity: Mapping[str, Any]) -> int:
    """The size formula Microsoft documents for an entity (UTF-16 strings, 8 bytes per property)."""
    total = 4 + len(str(entity["PartitionKey"])) * 2 + len(str(entity["RowKey"])) * 2
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            continue
        size = 4 + len(value) * 2 if isinstance(value, str) else 8
        total += 8 + len(name) * 2 + size
    return total
