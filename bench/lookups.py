"""Lookups at scale: 1,000,000 stored timeline entries, then an incident timeline, a server's
incidents and a day listing through `failover.lookups`, against the bare SDK doing the minimum.

Seeding: 500 servers x 20 incidents (five days apart, about 100 a day over 100 days) x 100
timeline entries, written in the product's own row layout (`failover.adapters.table_codec`): signal
rows, incident rows, three effect rows per incident, one state row per server, the day index.
Dedupe markers are left out: lookups never read them. Rows go in transactions of 100 rows of one
partition, from several processes with several threads each, into an Azurite of its own
(in memory, with a larger Node heap). `--quick` seeds 20,000 entries (40 x 5 x 100).

Each lookup is timed in-process (no HTTP) with its round trips and the entities the adapter read
(`TableStore.round_trips`, `entities_read`); the floor is the bare SDK issuing the minimal queries
for the same answer, interleaved with the product's calls. Azurite evaluates every query by
scanning the table's whole collection (LokiJS `where` with a filter function in
`LokiTableMetadataStore.queryTableEntities`), so absolute latencies grow with the table here, not in
Azure Table storage, which serves a partition and row-key range from its index; the ratio to the
floor and the entities read per entity returned are the figures that carry over.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from bench.common import Result, ms, percentile, save_json
from failover.adapters import table_codec as codec
from failover.incidents import IncidentRecord, ServerState
from failover.model import (
    Cause,
    Effect,
    EffectName,
    EffectStatus,
    Incident,
    IncidentStatus,
    Signal,
    SignalKind,
    Source,
    Transition,
)
from failover.timeutil import compact

BASE = datetime(2026, 8, 1, tzinfo=timezone.utc)
ENTRIES = 100
RESOURCE = (
    "/subscriptions/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e/resourcegroups/rg-data/providers/"
    "microsoft.dbforpostgresql/flexibleservers/{server}"
)
KINDS = (
    SignalKind.HEALTH_DEGRADED, SignalKind.DB_DOWN, SignalKind.WRITE_UNAVAILABLE, SignalKind.HA_STATE_CHANGED,
    SignalKind.FAILOVER_COMPLETED, SignalKind.DB_UP, SignalKind.WRITE_RESTORED, SignalKind.HEALTH_AVAILABLE,
)  # fmt: skip
PROCESSES = 2
THREADS = 4
TARGET_READ_RATIO = 1.0


@dataclass(frozen=True)
class Shape:
    servers: int
    incidents: int  # per server

    @property
    def entries(self) -> int:
        return self.servers * self.incidents * ENTRIES


def server_name(s: int) -> str:
    return f"pg-{s:04d}"


def opened_at(s: int, k: int) -> datetime:
    return BASE + timedelta(days=k * 5 + s % 5, seconds=(s * 37) % 80_000)


def incident(s: int, k: int) -> Incident:
    server, opened = server_name(s), opened_at(s, k)
    return Incident(
        incident_id=f"{server}~{compact(opened)}",
        server=server,
        resource_id=RESOURCE.format(server=server),
        status=IncidentStatus.RESOLVED,
        cause=Cause.UNPLANNED,
        cause_confidence=2,
        opened_at=opened,
        last_signal_at=opened + timedelta(seconds=3 * (ENTRIES - 1)),
        recovered_at=opened + timedelta(seconds=3 * (ENTRIES - 1)),
        primary_restored_at=opened + timedelta(seconds=60),
        resolved_at=opened + timedelta(seconds=3 * (ENTRIES - 1)),
        primary_zone_before="1",
        primary_zone_after="2",
        standby_zone_after="1",
        ha_state="Healthy",
        write_downtime_seconds=41.5,
        signal_count=ENTRIES,
        transitions=(Transition.OPENED, Transition.PRIMARY_RESTORED, Transition.RESOLVED),
    )


def signal_rows(s: int, k: int) -> list[dict[str, Any]]:
    server, opened = server_name(s), opened_at(s, k)
    rows = []
    for j in range(ENTRIES):
        kind = KINDS[j * len(KINDS) // ENTRIES]
        at = opened + timedelta(seconds=3 * j)
        signal = Signal(
            signal_id=f"monitor:rh:{uuid.UUID(int=(s << 48) ^ (k << 24) ^ j)}",
            server=server,
            resource_id=RESOURCE.format(server=server),
            source=Source.MONITOR_ALERT,
            kind=kind,
            cause=Cause.UNPLANNED,
            observed_at=at,
            received_at=at + timedelta(seconds=20),
            summary=f"Resource Health: {kind.value} (seeded entry {j} of incident {k})",
            details={
                "health_status": "Degraded",
                "title": "Unplanned Failover Initiated",
                "event_status": "Active",
            },
            cause_confidence=2,
        )
        rows.append(codec.signal_to_entity(signal))
    return rows


def server_rows(s: int, shape: Shape) -> list[dict[str, Any]]:
    incidents = [incident(s, k) for k in range(shape.incidents)]
    rows = [codec.incident_to_entity(i) for i in incidents]
    for i in incidents:
        for name in EffectName:
            rows.append(
                codec.effect_to_entity(
                    Effect(i.incident_id, i.server, Transition.RESOLVED, name, EffectStatus.DONE, attempts=1,
                           created_at=i.resolved_at, updated_at=i.resolved_at)
                )
            )  # fmt: skip
    rows.append(
        codec.state_to_entity(
            ServerState(server=server_name(s), resource_id=RESOURCE.format(server=server_name(s)),
                        records=tuple(_record(i) for i in incidents[-8:]),
                        signals_recorded=shape.incidents * ENTRIES)
        )
    )  # fmt: skip
    return rows


def _record(incident: Incident) -> IncidentRecord:
    return IncidentRecord(
        incident.incident_id,
        f"anchor-{incident.incident_id}",
        incident.opened_at,
        incident.last_signal_at,
        status=incident.status,
        closed_at=incident.resolved_at,
    )


def _seed_part(connection: str, table: str, shape: Shape, units: list[tuple[str, int, int]]) -> int:
    """Write the given units (signals of one incident, rows of one server, one day) with THREADS threads."""
    from azure.data.tables import TableClient

    client = TableClient.from_connection_string(connection, table_name=table, retry_total=5)
    lock = threading.Lock()
    pending = iter(units)
    written = [0]

    def rows_of(unit: tuple[str, int, int]) -> list[dict[str, Any]]:
        what, a, b = unit
        if what == "signals":
            return signal_rows(a, b)
        if what == "server":
            return server_rows(a, shape)
        return [codec.day_entity(incident(s, k)) for s, k in day_members(shape)[a]]

    failures: list[BaseException] = []

    def worker() -> None:
        deadline = time.monotonic() + 3 * 3600
        while time.monotonic() < deadline and not failures:
            with lock:
                unit = next(pending, None)
            if unit is None:
                return
            rows = rows_of(unit)
            try:
                for start in range(0, len(rows), 100):
                    _submit(client, [("upsert", r) for r in rows[start : start + 100]])
            except BaseException as error:  # the part stops; seed() refuses to report figures
                failures.append(error)
                return
            with lock:
                written[0] += len(rows)
        if not failures and next(pending, None) is not None:
            failures.append(TimeoutError("seeding ran past its 3 hour bound"))

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"seeding failed after retries: {type(failures[0]).__name__}: {failures[0]}")
    return written[0]


_SEED_ATTEMPTS = 6


def _submit(client: Any, operations: list[tuple[str, dict[str, Any]]]) -> None:
    """One transaction of upserts (idempotent), retried on a dropped connection or a 5xx."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    for attempt in range(_SEED_ATTEMPTS):
        try:
            client.submit_transaction(operations)
            return
        except (ServiceRequestError, ServiceResponseError, HttpResponseError) as error:
            status = getattr(error, "status_code", None)
            if isinstance(error, HttpResponseError) and status is not None and status < 500:
                raise
            if attempt == _SEED_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * 2**attempt)


def day_members(shape: Shape) -> dict[int, list[tuple[int, int]]]:
    """Incidents by day number (days since BASE), for the day index."""
    days: dict[int, list[tuple[int, int]]] = {}
    for s in range(shape.servers):
        for k in range(shape.incidents):
            days.setdefault((opened_at(s, k) - BASE).days, []).append((s, k))
    return days


def seed(connection: str, table: str, shape: Shape) -> tuple[int, float]:
    units: list[tuple[str, int, int]] = [
        ("signals", s, k) for s in range(shape.servers) for k in range(shape.incidents)
    ]
    units += [("server", s, 0) for s in range(shape.servers)]
    units += [("day", d, 0) for d in sorted(day_members(shape))]
    random.Random(3).shuffle(units)
    parts = [units[n::PROCESSES] for n in range(PROCESSES)]
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        written = sum(pool.starmap(_seed_part, [(connection, table, shape, part) for part in parts]))
    return written, time.perf_counter() - started


@dataclass
class Sample:
    seconds: float
    floor: float
    trips: int
    read: int
    returned: int


def _timed(action: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


@dataclass
class _Probe:
    """One sample of each lookup through failover.lookups, and the floor's minimal queries."""

    store: Any
    settings: Any
    floor: Any
    now: datetime

    def _floor(self, query: str, parameters: dict[str, Any], limit: int | None = None) -> list[Any]:
        pages = self.floor.query_entities(query, parameters=parameters, results_per_page=limit).by_page()
        return list(next(pages, []))

    def _product(self, action: Any) -> tuple[float, Any, int, int]:
        self.store.reset_counters()
        took, body = _timed(action)
        return took, body, self.store.round_trips, self.store.entities_read

    def timeline(self, chosen: Incident) -> Sample:
        from failover import lookups

        took, body, trips, read = self._product(
            lambda: lookups.get_incident(self.store, self.settings, chosen.incident_id)
        )
        low, high = codec.incident_signal_range(chosen)
        point = {"pk": chosen.server, "rk": codec.incident_key(chosen.incident_id)}
        span = {"pk": chosen.server, "low": low, "high": high}
        base, _ = _timed(
            lambda: (
                self._floor("PartitionKey eq @pk and RowKey eq @rk", point),
                self._floor("PartitionKey eq @pk and RowKey ge @low and RowKey lt @high", span),
            )
        )
        return Sample(took, base, trips, read, 1 + len(body["timeline"]))

    def server(self, server: str) -> Sample:
        from failover import lookups

        took, body, trips, read = self._product(
            lambda: lookups.list_incidents(self.store, self.settings, server=server, now=self.now)
        )
        span = {"pk": server, "low": "incident~", "high": "incident~~"}
        base, _ = _timed(
            lambda: self._floor("PartitionKey eq @pk and RowKey ge @low and RowKey lt @high", span, limit=50)
        )
        return Sample(took, base, trips, read, len(body["incidents"]))

    def day(self, since: datetime) -> Sample:
        from failover import lookups

        until = since + timedelta(days=1) - timedelta(seconds=1)
        took, body, trips, read = self._product(
            lambda: lookups.list_incidents(
                self.store, self.settings, since=since.isoformat(), until=until.isoformat(), now=self.now
            )
        )
        partition = f"{codec.DAY_PREFIX}{since.date().isoformat()}"
        base, _ = _timed(lambda: self._floor("PartitionKey eq @pk", {"pk": partition}, limit=50))
        return Sample(took, base, trips, read, len(body["incidents"]))

    def default_listing(self) -> tuple[float, int, int]:
        from failover import lookups

        took, body, trips, _ = self._product(
            lambda: lookups.list_incidents(self.store, self.settings, now=self.now)
        )
        return took, trips, len(body["incidents"])


def run(*, quick: bool = False) -> Result:
    from azure.data.tables import TableClient

    from failover.adapters.table_store import TableStore
    from failover.config import Settings
    from local.services import LocalServices, free_port

    shape = Shape(40, 5) if quick else Shape(500, 20)
    samples = 30 if quick else 40
    result = Result(
        "lookups",
        f"Lookups with {shape.entries:,} stored timeline entries",
        f"{shape.servers} servers x {shape.incidents} incidents x {ENTRIES} entries seeded into Azurite"
        f" (in memory), {PROCESSES} processes x {THREADS} threads, transactions of 100; {samples} samples"
        " per lookup through failover.lookups, interleaved with the bare-SDK floor",
    )
    services = LocalServices()
    previous = os.environ.get("NODE_OPTIONS")
    os.environ["NODE_OPTIONS"] = (
        "--max-old-space-size=16384"  # a million rows need more than Node's default heap
    )
    try:
        connection = services.azurite(free_port())
    finally:
        if previous is None:
            os.environ.pop("NODE_OPTIONS", None)
        else:
            os.environ["NODE_OPTIONS"] = previous
    try:
        table = "lookups" + uuid.uuid4().hex[:8]
        store = TableStore.from_connection_string(connection, table)
        store.ensure_table()
        written, seconds = seed(connection, table, shape)
        result.add(
            "seeding rate",
            f"{written / seconds:,.0f} rows/s",
            notes=f"{written:,} rows ({shape.entries:,} timeline entries) in {seconds:.0f} s",
        )
        settings = Settings.from_env({"AzureWebJobsStorage": connection, "FAILOVER_TABLE": table})
        floor = TableClient.from_connection_string(connection, table_name=table)
        now = BASE + timedelta(days=shape.incidents * 5 + 5)
        rng = random.Random(7)
        days = day_members(shape)
        measured: dict[str, list[Sample]] = {"timeline": [], "server": [], "day": []}

        probe = _Probe(store, settings, floor, now)
        deadline = time.monotonic() + 3600
        for _ in range(samples):
            if time.monotonic() > deadline:
                break
            measured["timeline"].append(
                probe.timeline(incident(rng.randrange(shape.servers), rng.randrange(shape.incidents)))
            )
            measured["server"].append(probe.server(server_name(rng.randrange(shape.servers))))
            measured["day"].append(probe.day(BASE + timedelta(days=rng.choice(sorted(days)))))
        default_listing = probe.default_listing()
    finally:
        services.stop()

    labels = {
        "timeline": "incident timeline (get_incident: incident + 100 entries)",
        "server": f"a server's incidents (list_incidents server=, {shape.incidents} incidents)",
        "day": "a day listing (list_incidents since/until one day, limit 50)",
    }
    raw: dict[str, Any] = {}
    for name, rows in measured.items():
        times = [r.seconds for r in rows]
        floors = [r.floor for r in rows]
        read = sum(r.read for r in rows)
        returned = sum(r.returned for r in rows)
        ratio = read / max(1, returned)
        p50, floor50 = percentile(times, 50), percentile(floors, 50)
        result.add(
            f"{labels[name]}: p50 / p99",
            f"{ms(p50)} / {ms(percentile(times, 99))}",
            notes=f"floor p50 {ms(floor50)} ({p50 / floor50:.2f}x);"
            f" {sum(r.trips for r in rows) / len(rows):.1f} round trips per lookup",
        )
        result.add(
            f"{labels[name]}: entities read per entity returned",
            f"{ratio:.3f}",
            f"{TARGET_READ_RATIO:.1f}",
            abs(ratio - TARGET_READ_RATIO) < 0.0005,
            f"{read:,} read, {returned:,} returned over {len(rows)} lookups",
        )
        raw[name] = [r.__dict__ for r in rows]
    took, trips, count = default_listing
    result.add(
        "default listing (no filter: the last 30 days across servers)",
        ms(took),
        notes=f"{trips} round trips (one per day partition, walked back from now until 50 incidents),"
        f" {count} returned",
    )
    result.notes.append(
        "Absolute latencies are Azurite's: it scans the whole table for every filtered query, so they grow"
        " with the table size; Azure Table storage serves the same single-partition key-range queries"
        " from its index. The ratio to the floor isolates what the product adds."
    )
    save_json("lookups.json", {"shape": shape.__dict__, "samples": raw, "default_listing": default_listing})
    return result
