"""Azure Table storage adapter (azure-data-tables): the one place that talks to the table.

Layer: adapter. It takes a `TableClient` (built lazily by the runtime, or by tests against
Azurite), reads and writes the layout defined in `table_codec`, counts its round trips and the
entities it reads, and translates every SDK error into the project's own: ETag and insert
conflicts become `ConcurrencyConflictError` (the caller re-reads and retries), transport failures
and 5xx become `StorageUnavailableError`, anything else `StorageError`. It makes no decisions.

Concurrency (https://learn.microsoft.com/azure/storage/tables/concurrency-manage): the `state` row
is updated with If-Match on its ETag, inserts fail when the row exists, and an entity group
transaction (one partition, at most 100 operations) is all or nothing.

Size: over 400 lines because it implements the whole `IncidentStore` port on Azure Table storage
and is the only module that builds queries and batches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from failover.adapters import table_batch
from failover.adapters import table_codec as codec
from failover.errors import ConcurrencyConflictError, StorageError, StorageUnavailableError
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

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = logging.getLogger(__name__)
T = TypeVar("T")
_BATCH = 100  # entity group transactions hold at most 100 operations
# Short timeouts and few retries: callers answer 503 and Azure retries the delivery itself.
_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.2,
    "connection_timeout": 3,
    "read_timeout": 10,
    # The HTTP session does not read proxy settings from the environment on every request
    # (requests' trust_env): measurable on the recording path, and a Function app has no proxy.
    "use_env_settings": False,
}
_CONFLICT_TRIES = 5
# Connections kept per host: every thread of a probe run (PROBE_MAX_WORKERS + PROBE_RECORD_WORKERS,
# 24 by default) and the HTTP functions share one client; requests' default of 10 made urllib3
# discard and reopen connections under load (a TLS handshake each, in Azure).
_POOL_SIZE = 64


def _transport() -> Any:
    """The SDK's requests transport on a session with a pool for every thread, no proxy lookups."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.trust_env = False  # what use_env_settings=False does for a session the SDK creates
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=_POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return RequestsTransport(session=session, session_owner=True, use_env_settings=False)


_CONFLICT_CODES = {"UpdateConditionNotSatisfied", "EntityAlreadyExists", "ConditionNotMet"}


Page = IncidentPage  # (partition, row key) to resume after


class TableStore:
    def __init__(self, client: TableClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.round_trips = 0
        self.entities_read = 0
        self._table_ready = False

    @classmethod
    def from_connection_string(cls, connection: str, table: str) -> TableStore:
        """Build the client with short timeouts and few retries: callers answer 503 and Azure retries."""
        from azure.data.tables import TableClient

        return cls(
            TableClient.from_connection_string(
                connection, table_name=table, transport=_transport(), **_CLIENT_OPTIONS
            )
        )

    @classmethod
    def from_endpoint(cls, endpoint: str, table: str, credential: Any) -> TableStore:
        """Identity-based access (the Function app's managed identity with Storage Table Data Contributor)."""
        from azure.data.tables import TableClient

        client = TableClient(
            endpoint=endpoint,
            table_name=table,
            credential=credential,
            transport=_transport(),
            **_CLIENT_OPTIONS,
        )
        return cls(client)

    # --- bookkeeping --------------------------------------------------------------------------

    def reset_counters(self) -> None:
        with self._lock:
            self.round_trips = 0
            self.entities_read = 0

    def _count(self, trips: int = 1, read: int = 0) -> None:
        with self._lock:
            self.round_trips += trips
            self.entities_read += read

    def ensure_table(self) -> None:
        if self._table_ready:
            return
        from azure.core.exceptions import ResourceExistsError

        try:
            self._call(self._client.create_table)
        except ConcurrencyConflictError:
            pass
        except StorageError as error:
            if not isinstance(error.__cause__, ResourceExistsError):
                raise
        self._table_ready = True

    def ping(self) -> None:
        self._query("PartitionKey eq @pk and RowKey eq @rk", {"pk": "~health", "rk": "~"}, limit=1)

    # --- recording ----------------------------------------------------------------------------

    def read_for_signal(self, server: str, signal_hash: str) -> SignalSnapshot:
        """One round trip: the state row and the dedupe marker of this signal, together."""
        rows = self._query(
            # The SDK substitutes only @words that stand between spaces: keep the brackets apart.
            "PartitionKey eq @pk and ( RowKey eq @state or RowKey eq @seen )",
            {"pk": server, "state": codec.STATE_KEY, "seen": codec.seen_key(signal_hash)},
        )
        state_row = next((r for r in rows if r["RowKey"] == codec.STATE_KEY), None)
        seen_row = next((r for r in rows if r["RowKey"] != codec.STATE_KEY), None)
        return SignalSnapshot(
            state=codec.state_from_entity(state_row) if state_row else None,
            etag=_etag(state_row),
            seen=seen_row is not None,
            seen_incident_id=(seen_row.get("incident_id") or None) if seen_row else None,
        )

    def read_state(self, server: str) -> tuple[ServerState | None, str | None]:
        rows = self._query("PartitionKey eq @pk and RowKey eq @rk", {"pk": server, "rk": codec.STATE_KEY})
        if not rows:
            return None, None
        return codec.state_from_entity(rows[0]), _etag(rows[0])

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
        """One atomic transaction in the server's partition: marker, entry, state, incidents, effects."""
        operations = codec.commit_operations(
            state, etag, signal=signal, incident_id=incident_id, incidents=incidents, effects=effects
        )
        self._transaction([_sdk_operation(op) for op in operations])

    # --- outbox -------------------------------------------------------------------------------

    def schedule_work(
        self, effects: Iterable[Effect], *, now: datetime, checks: Sequence[Check] = ()
    ) -> list[WorkItem]:
        """Pointers to new effects (due now) and to the decision's checks, in one transaction."""
        entities = codec.outbox_entities(effects, checks, now=now)
        self._add_outbox(entities)
        return [codec.work_item(e) for e in entities if e["kind"] == "effect"]

    def side_rows(self) -> SideRows:
        """Rows beside the incidents in the same table (verification steps, digests, post slots),
        through this store's client and error translation."""
        return _TableSideRows(self)

    def move_work(self, item: WorkItem, due: datetime, *, now: datetime) -> WorkItem:
        """Re-point pending work at its next attempt (add the new pointer first: never lose it)."""
        if item.transition is None or item.name is None:
            raise ValueError("only effect work moves")
        row_key = codec.effect_key(item.incident_id, item.transition, item.name)
        entity = codec.outbox_pointer(item.server, row_key, due, now=now, incident_id=item.incident_id)
        if entity["RowKey"] == item.pointer:
            return item
        self._add_outbox([entity])
        self.finish_work([item])
        return codec.work_item(entity)

    def finish_work(self, items: Iterable[WorkItem]) -> None:
        """Delete pointers one by one: another worker may have removed one already (that is fine)."""
        for item in items:
            self._call(partial(self._client.delete_entity, codec.OUTBOX_PARTITION, item.pointer))

    def due_work(self, now: datetime, limit: int) -> list[WorkItem]:
        """Pointers due by `now`, soonest first. Reads only due rows: cost follows pending work."""
        rows = self._query(
            "PartitionKey eq @pk and RowKey le @due",
            {"pk": codec.OUTBOX_PARTITION, "due": f"{sortable(now)}~~"},
            limit=limit,
        )
        return [codec.work_item(r) for r in rows]

    def pending_work_count(self) -> int:
        rows = self._query("PartitionKey eq @pk", {"pk": codec.OUTBOX_PARTITION}, select=["RowKey"])
        return len(rows)

    def _add_outbox(self, entities: list[dict[str, Any]]) -> None:
        for start in range(0, len(entities), _BATCH):
            self._transaction([("upsert", e) for e in entities[start : start + _BATCH]])

    def record_dead(self, effect: Effect) -> None:
        """Index a dead effect (`~dead`), so /api/health shows it without scanning partitions."""
        from azure.data.tables import UpdateMode

        entity = codec.dead_entity(effect)
        self._call(lambda: self._client.upsert_entity(entity, mode=UpdateMode.REPLACE))

    def dead_effects(self, limit: int) -> list[Effect]:
        rows = self._query("PartitionKey eq @pk", {"pk": codec.DEAD_PARTITION}, limit=limit)
        return [codec.effect_from_entity(codec.dead_row_as_effect(r)) for r in rows]

    def save_publication(self, topology: Topology, epoch: int) -> None:
        """Write the server's row of the reconciliation index (`~topology`); never an older version.

        Compare-and-swap on the row: two workers finishing out of order cannot put an older
        topology back (an ETag conflict re-reads; an equal or newer stored version wins).
        """
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        entity = codec.publication_entity(topology, epoch)
        key = {"pk": codec.TOPOLOGY_PARTITION, "rk": topology.server}
        for _ in range(_CONFLICT_TRIES):
            rows = self._query("PartitionKey eq @pk and RowKey eq @rk", key)
            if rows and int(rows[0].get("version") or 0) >= topology.version:
                return
            match = MatchConditions.IfNotModified
            write = (
                partial(
                    self._client.update_entity,
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=_etag(rows[0]),
                    match_condition=match,
                )
                if rows
                else partial(self._client.create_entity, entity)
            )
            try:
                self._call(write)
                return
            except ConcurrencyConflictError:
                continue

    def publications(self, limit: int) -> list[tuple[Topology, int]]:
        rows = self._query("PartitionKey eq @pk", {"pk": codec.TOPOLOGY_PARTITION}, limit=limit)
        return [codec.publication_from_entity(r) for r in rows]

    # --- probe health -------------------------------------------------------------------------

    def save_probe_health(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """One row per server in the `~probe` partition: what the last probe run could check."""
        from azure.data.tables import UpdateMode

        entities = [{"PartitionKey": codec.PROBE_PARTITION, "RowKey": r["server"], **r} for r in rows]
        for start in range(0, len(entities), _BATCH):
            batch = entities[start : start + _BATCH]
            self._transaction([("upsert", e, {"mode": UpdateMode.REPLACE}) for e in batch])

    def probe_health(self, limit: int = 1000) -> list[Mapping[str, Any]]:
        return self._query("PartitionKey eq @pk", {"pk": codec.PROBE_PARTITION}, limit=limit)

    # --- effects ------------------------------------------------------------------------------

    def get_effect(
        self, server: str, incident_id: str, transition: Transition, name: EffectName
    ) -> tuple[Effect, str] | None:
        row_key = codec.effect_key(incident_id, transition, name)
        rows = self._query("PartitionKey eq @pk and RowKey eq @rk", {"pk": server, "rk": row_key})
        if not rows:
            return None
        return codec.effect_from_entity(rows[0]), _etag(rows[0]) or ""

    def replace_effect(self, effect: Effect, etag: str) -> str:
        """Compare-and-swap on the effect row: this is the lease (invariant 5)."""
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        result = self._call(
            lambda: self._client.update_entity(
                codec.effect_to_entity(effect),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        )
        return str(result.get("etag", ""))

    def record_notification(
        self,
        incident_id: str,
        transition: Transition,
        status: EffectStatus,
        at: datetime,
        *,
        channel: str = "teams",
    ) -> None:
        """Merge one `notify_{transition}` column into the incident row and its day index copy.

        MERGE touches only that column, so effects of one incident never overwrite each other.
        """
        from azure.data.tables import UpdateMode

        server, _ = codec.split_incident_id(incident_id)
        column = {codec.notify_column(transition, channel): codec.notification_value(status, at)}
        for partition, row in (
            (server, codec.incident_key(incident_id)),
            (codec.day_partition(incident_id), codec.day_key(incident_id)),
        ):
            entity = {"PartitionKey": partition, "RowKey": row, **column}
            self._call(partial(self._client.upsert_entity, entity, mode=UpdateMode.MERGE))

    def upsert_day(self, incident: Incident) -> None:
        from azure.data.tables import UpdateMode

        # MERGE keeps the notify_* columns that effects write beside the copy.
        self._call(lambda: self._client.upsert_entity(codec.day_entity(incident), mode=UpdateMode.MERGE))

    # --- lookups ------------------------------------------------------------------------------

    def get_incident(self, incident_id: str) -> Incident | None:
        """A point read: the id carries its partition and row key."""
        server, _ = codec.split_incident_id(incident_id)
        rows = self._query(
            "PartitionKey eq @pk and RowKey eq @rk", {"pk": server, "rk": codec.incident_key(incident_id)}
        )
        return codec.incident_from_entity(rows[0]) if rows else None

    def timeline(self, incident: Incident) -> list[TimelineEntry]:
        """The entries in the incident's time range: one single-partition range query."""
        low, high = codec.incident_signal_range(incident)
        rows = self._query(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
            {"pk": incident.server, "low": low, "high": high},
        )
        return [codec.timeline_entry(r) for r in rows]

    def effects_of(self, incident_id: str) -> list[Effect]:
        server, _ = codec.split_incident_id(incident_id)
        prefix = codec.effect_prefix(incident_id)
        rows = self._query(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
            {"pk": server, "low": prefix, "high": prefix + "~"},
        )
        return [codec.effect_from_entity(r) for r in rows]

    def incidents_of_server(
        self,
        server: str,
        *,
        since: datetime | None,
        until: datetime | None,
        status: IncidentStatus | None,
        limit: int,
        after: str | None,
    ) -> Page:
        """Newest first, one partition, row-key range for the time filter, exact to the second."""
        low, high = codec.server_incident_range(since, until, after)
        rows = self._query(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high" + _status_clause(status),
            {"pk": server, "low": low, "high": high, "status": status.value if status else ""},
            limit=limit,
        )
        incidents = tuple(codec.incident_from_entity(r) for r in rows)
        next_key = (server, rows[-1]["RowKey"]) if len(rows) == limit else None
        return Page(incidents, next_key)

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
        """One day of the cross-server index, newest first, opened in [since, until].

        Returns (resume key, incident); pass the last resume key as `after` to continue that day.
        """
        low, high = codec.day_range(since, until, after)
        rows = self._query(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high" + _status_clause(status),
            {
                "pk": codec.day_partition_of(day),
                "low": low,
                "high": high,
                "status": status.value if status else "",
            },
            limit=limit,
        )
        # A row holding only notification columns (its day_index effect not done yet) is skipped.
        return [(r["RowKey"], codec.incident_from_entity(r)) for r in rows if r.get("aggregate")]

    def troubled_effects(self, incident_id: str) -> list[Effect]:
        """Effects a person must see: dead, suppressed, or failing and waiting for a retry.

        The status filter runs in the service, so only the rows shown are read (a healthy incident
        reads none).
        """
        server, _ = codec.split_incident_id(incident_id)
        prefix = codec.effect_prefix(incident_id)
        rows = self._query(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and ( status eq @dead"
            " or status eq @suppressed or ( status eq @pending and last_error ne @empty ) )",
            {
                "pk": server,
                "low": prefix,
                "high": prefix + "~",
                "dead": EffectStatus.DEAD.value,
                "suppressed": EffectStatus.SUPPRESSED.value,
                "pending": EffectStatus.PENDING.value,
                "empty": "",
            },
        )
        return [codec.effect_from_entity(r) for r in rows]

    # --- plumbing -----------------------------------------------------------------------------

    def _query(
        self,
        query_filter: str,
        parameters: Mapping[str, Any],
        *,
        limit: int | None = None,
        select: list[str] | None = None,
    ) -> list[Mapping[str, Any]]:
        def run() -> list[Mapping[str, Any]]:
            pages = self._client.query_entities(
                query_filter, parameters=dict(parameters), results_per_page=limit, select=select
            ).by_page()
            rows: list[Mapping[str, Any]] = []
            trips = 0
            for page in _pages(pages):
                trips += 1
                for row in page:
                    rows.append(row)
                    if limit is not None and len(rows) >= limit:
                        break
                if limit is not None and len(rows) >= limit:
                    break
            self._count(trips=max(trips, 1), read=len(rows))
            return rows

        return self._call(run, count=False)

    def _transaction(self, operations: list[tuple[Any, ...]]) -> None:
        if len(operations) > _BATCH:  # Azure refuses it; Azurite answers with a malformed reply
            raise StorageError(f"a transaction holds at most {_BATCH} operations ({len(operations)})")
        if len(operations) == 1:
            # One operation is atomic on its own: the plain entity call gives the same result and the
            # same conflicts, without a multipart envelope to write or a batch answer to read.
            self._call(partial(_single_operation, self._client, *operations[0]))
            return
        self._call(partial(table_batch.submit, self._client, operations))

    def _call(self, action: Callable[[], T], *, count: bool = True) -> T:
        from azure.core.exceptions import (
            AzureError,
            HttpResponseError,
            ResourceExistsError,
            ResourceModifiedError,
            ServiceRequestError,
            ServiceResponseError,
        )

        if count:
            self._count()
        try:
            return action()
        except (ResourceModifiedError, ResourceExistsError) as error:
            raise ConcurrencyConflictError("concurrent write to the same rows") from error
        except HttpResponseError as error:
            code = str(getattr(error, "error_code", "") or "")
            if code in _CONFLICT_CODES or error.status_code in (409, 412):
                raise ConcurrencyConflictError(f"concurrent write ({code or error.status_code})") from error
            if error.status_code is None or error.status_code >= 500 or error.status_code in (408, 429):
                raise StorageUnavailableError(f"table storage answered {error.status_code}") from error
            raise StorageError(f"table storage refused the request ({code or error.status_code})") from error
        except (ServiceRequestError, ServiceResponseError) as error:
            raise StorageUnavailableError("table storage unreachable") from error
        except AzureError as error:
            raise StorageUnavailableError(f"table storage failed ({type(error).__name__})") from error


class _TableSideRows:
    """`SideRows` on this store: the same client, round-trip counting and error translation."""

    def __init__(self, store: TableStore) -> None:
        self._store = store

    def get(self, partition: str, row: str) -> tuple[dict[str, Any], str] | None:
        rows = self._store._query("PartitionKey eq @pk and RowKey eq @rk", {"pk": partition, "rk": row})
        return (dict(rows[0]), _etag(rows[0]) or "") if rows else None

    def insert(self, entity: Mapping[str, Any]) -> str:
        answer = self._store._call(partial(self._store._client.create_entity, dict(entity)))
        return str(answer.get("etag", ""))

    def replace(self, entity: Mapping[str, Any], etag: str) -> str:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        update = partial(
            self._store._client.update_entity,
            dict(entity),
            mode=UpdateMode.REPLACE,
            etag=etag,
            match_condition=MatchConditions.IfNotModified,
        )
        return str(self._store._call(update).get("etag", ""))

    def upsert(self, entity: Mapping[str, Any]) -> None:
        from azure.data.tables import UpdateMode

        self._store._call(partial(self._store._client.upsert_entity, dict(entity), mode=UpdateMode.REPLACE))

    def query(self, partition: str, prefix: str, limit: int = 1000) -> list[dict[str, Any]]:
        # The smallest string above every string starting with `prefix` ends the RowKey range.
        high = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\uffff"
        rows = self._store._query(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
            {"pk": partition, "low": prefix, "high": high},
            limit=limit,
        )
        return [dict(r) for r in rows]


def _pages(pages: Iterator[Iterator[Mapping[str, Any]]]) -> Iterator[Iterator[Mapping[str, Any]]]:
    yield from pages


def _sdk_operation(op: codec.Operation) -> tuple[Any, ...]:
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    if op.kind == "create":
        return ("create", op.entity)
    if op.kind == "merge":
        return ("upsert", op.entity, {"mode": UpdateMode.MERGE})
    options = {"mode": UpdateMode.REPLACE, "etag": op.etag, "match_condition": MatchConditions.IfNotModified}
    return ("update", op.entity, options)


def _single_operation(
    client: TableClient, kind: str, entity: Mapping[str, Any], options: Mapping[str, Any] | None = None
) -> None:
    """One transaction operation (as `submit_transaction` takes it) as the entity call it stands for."""
    call = {"create": client.create_entity, "upsert": client.upsert_entity, "update": client.update_entity}
    call[kind](entity, **(options or {}))


def _status_clause(status: IncidentStatus | None) -> str:
    return " and status eq @status" if status is not None else ""


def _etag(row: Mapping[str, Any] | None) -> str | None:
    if row is None:
        return None
    metadata = getattr(row, "metadata", None) or {}
    return metadata.get("etag")
