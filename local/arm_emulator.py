"""A loopback emulator of the Azure Resource Manager API for PostgreSQL flexible servers.

Layer: local tooling (never deployed). It speaks the REST shape of
``Microsoft.DBforPostgreSQL/flexibleServers`` that ``azure-mgmt-postgresqlflexibleservers``
3.0.0 expects (see shared/reference/mgmt-sdk-local.md section 3): GET server, list replicas,
list by resource group and by subscription (``value`` + ``nextLink`` paging), POST ``/restart``
with failover (202 + ``Azure-AsyncOperation`` + ``Location``, then the operation status), ARM
error bodies, and (API 2026-10-01) ``maintenanceEvents`` (list, filtered with
``maintenanceStatus=Upcoming|Past``, and get by id). A server can be backed by a real
``local.pgpair.PgPair``: a restart with failover then really fails the pair over, and a watchdog
plays Azure's health monitor, promoting the standby after the primary stops answering, with no
activity log at all (as in Azure).

Platform work Azure does on its own is driven from Python: a planned maintenance
(``schedule_maintenance``, ``run_maintenance``), a compute scale done by failing over
(``run_scaling``), and same-zone HA converting to zone-redundant (``convert_to_zone_redundant``).
Every kind of work, a restart included, is a ``Job`` playing its rows of one phase table
(``PHASES``).

What it must not do: listen on anything but 127.0.0.1, check tokens (any ``Bearer`` value is
accepted; only its presence is checked), record the Authorization header, or leave a thread
running after ``stop()`` (every join is bounded).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any, NamedTuple

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local import pgpair
from local.loopback import LoopbackServer
from local.pgpair import FailoverMode, PgPair

logger = logging.getLogger(__name__)

PROVIDER = "Microsoft.DBforPostgreSQL"
SERVER_TYPE = f"{PROVIDER}/flexibleServers"
# failoverMode, lower-cased -> (its canonical spelling, how the pair fails over)
FAILOVER_MODES: dict[str, tuple[str, FailoverMode]] = {
    "plannedfailover": ("PlannedFailover", "planned"),
    "forcedfailover": ("ForcedFailover", "forced"),
    "plannedswitchover": ("PlannedSwitchover", "planned"),
    "forcedswitchover": ("ForcedSwitchover", "forced"),
}
# Statuses the Past filter returns; every other status (an unknown one too) is Upcoming.
_PAST_MAINTENANCE = frozenset({"complete", "canceled"})
# Matched against the lower-cased path (ARM paths are case-insensitive); each endpoint is the
# ArmEmulator method "_<endpoint>(request, the path's values)".
_SUB = "/subscriptions/<sub>/providers/microsoft.dbforpostgresql"
_GROUP = "/subscriptions/<sub>/resourcegroups/<rg>/providers/microsoft.dbforpostgresql/flexibleservers"
_ROUTES = Map(
    [
        Rule(f"{_SUB}/flexibleservers", endpoint="list", methods=["GET"]),
        Rule(_GROUP, endpoint="list", methods=["GET"]),
        Rule(f"{_GROUP}/<name>", endpoint="get", methods=["GET"]),
        Rule(f"{_GROUP}/<name>/replicas", endpoint="replicas", methods=["GET"]),
        Rule(f"{_GROUP}/<name>/restart", endpoint="restart", methods=["POST"]),
        Rule(f"{_GROUP}/<name>/maintenanceevents", endpoint="maintenance", methods=["GET"]),
        Rule(f"{_GROUP}/<name>/maintenanceevents/<event>", endpoint="maintenance", methods=["GET"]),
        Rule(f"{_SUB}/locations/<location>/<kind>/<op_id>", endpoint="operation", methods=["GET"]),
    ],
    strict_slashes=False,
    merge_slashes=False,
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _present(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without its None values: ARM leaves an unset property out."""
    return {key: value for key, value in body.items() if value is not None}


def _resource(rid: str, kind: str, props: dict[str, Any], **top: Any) -> dict[str, Any]:
    """An ARM resource (a server, a replica, a maintenance event): id, name, type, ``top``, properties."""
    return {"id": rid, "name": rid.rsplit("/", 1)[1], "type": kind, **top, "properties": _present(props)}


class ArmError(RuntimeError):
    """An ARM error answer: status plus ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.headers = status, headers or {}
        self.body = {"error": {"code": code, "message": message}}


@dataclass(frozen=True)
class ReplicaSpec:
    """A read replica of an emulated server (itself listed as a server with HA Disabled)."""

    name: str
    location: str | None = None
    replication_state: str = "Active"
    zone: str | None = None


class HistoryEntry(NamedTuple):
    state: str
    ha_state: str
    primary_zone: str | None
    standby_zone: str | None
    reason: str


@dataclass
class EmulatedMaintenance:
    """One maintenance event of an emulated server, in the 2026-10-01 REST shape."""

    event_id: str
    status: str  # Planned, InProgress, Complete, Rescheduled, Canceled (any string is served as is)
    start_time: datetime
    end_time: datetime
    original_start_time: datetime
    estimated_downtime: str | None = "PT60S"
    last_updated_time: datetime = field(default_factory=_now)

    @property
    def past(self) -> bool:
        return self.status.lower() in _PAST_MAINTENANCE

    def to_json(self, server_id: str) -> dict[str, Any]:
        props = {
            "maintenanceEventId": self.event_id,
            "maintenanceType": "PlannedMaintenance",
            "description": "Planned maintenance: minor version and security updates.",
            "status": self.status,
            "startTime": _iso(self.start_time),
            "endTime": _iso(self.end_time),
            "deferrable": True,
            "originalStartTime": _iso(self.original_start_time),
            "lastUpdatedTime": _iso(self.last_updated_time),
            "deferralDeadline": _iso(self.start_time + timedelta(days=14)),
            "estimatedDowntime": self.estimated_downtime,
        }
        rid = f"{server_id}/maintenanceEvents/{self.event_id}"
        return _resource(rid, f"{SERVER_TYPE}/maintenanceEvents", props)


@dataclass
class EmulatedServer:
    """A flexible server, or a read replica (HA Disabled, ``replica_of`` its source), as GET shows it."""

    resource_id: str
    location: str
    ha_mode: str
    primary_zone: str | None
    standby_zone: str | None
    ha_state: str
    state: str = "Ready"
    pair: PgPair | None = None
    replica_of: str | None = None  # a read replica's source server
    replication_state: str = "Active"  # a read replica's
    version: str = "15"
    sku_name: str = "Standard_D2ds_v5"
    maintenance: list[EmulatedMaintenance] = field(default_factory=list)
    busy: bool = False  # a Job is running on it (one at a time)
    failures: int = 0  # the watchdog's failed pings in a row
    history: list[HistoryEntry] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.resource_id.rsplit("/", 1)[1]

    def event(self, event_id: str) -> EmulatedMaintenance:
        found = [e for e in self.maintenance if e.event_id.lower() == event_id.lower()]
        if not found:
            raise ArmError(404, "ResourceNotFound", f"The maintenance event '{event_id}' was not found.")
        return found[0]

    def replica(self, spec: ReplicaSpec) -> EmulatedServer:
        """The read replica ``spec`` describes, as a server of its own."""
        rid = f"{self.resource_id.rsplit('/', 1)[0]}/{spec.name}"
        replica = EmulatedServer(
            rid, spec.location or self.location, "Disabled", spec.zone, None, "NotEnabled"
        )
        replica.replica_of, replica.replication_state = self.resource_id, spec.replication_state
        return replica

    def to_json(self) -> dict[str, Any]:
        """GET's body: one template for a server and a read replica."""
        role = "Primary" if self.replica_of is None else "AsyncReplica"
        ha = {"mode": self.ha_mode, "state": self.ha_state, "standbyAvailabilityZone": self.standby_zone}
        replica = {"role": role, "capacity": 0, "replicationState": self.replication_state}
        props = {
            "state": self.state,
            "version": self.version,
            "administratorLogin": "pgadmin",
            "fullyQualifiedDomainName": f"{self.name}.postgres.database.azure.com",
            "availabilityZone": self.primary_zone,
            "highAvailability": _present(ha),
            "storage": {"storageSizeGB": 128, "autoGrow": "Disabled", "tier": "P10"},
            "network": {"publicNetworkAccess": "Disabled"},
            "replicationRole": role,
            "replicaCapacity": 5 if self.replica_of is None else 0,
            "replica": None if self.replica_of is None else replica,
            "sourceServerResourceId": self.replica_of,
        }
        sku = {"name": self.sku_name, "tier": "GeneralPurpose"}
        return _resource(self.resource_id, SERVER_TYPE, props, location=self.location, tags={}, sku=sku)


def _work(pair: PgPair, step: str, how: FailoverMode | None) -> None:
    """A phase's work on the backing pair: restart, promote (fail over) or rebuild (the standby)."""
    if step == "restart":
        pgpair.restart_node(pair, pair.primary)
    elif step == "rebuild":
        pgpair.rebuild_standby(pair)
    elif how is None:  # unplanned: the primary is gone, the health monitor promotes the standby
        pgpair.promote_standby(pair)
    else:
        pgpair.failover(pair, mode=how)


@dataclass(frozen=True)
class Phase:
    """A row of the phase table: GET shows ``shows`` while ``work`` runs, then ``after`` holds."""

    name: str
    shows: dict[str, str]
    work: str | None = None  # see _work; a server without a pair (or a row without work) just waits
    after: dict[str, str] = field(default_factory=dict)
    swap_zones: bool = False  # the standby is the primary now


_FAILING_OVER = Phase("failing over", {"ha_state": "FailingOver"}, "promote", swap_zones=True)
_REBUILDING = Phase(
    "rebuilding the standby", {"ha_state": "ReplicatingData"}, "rebuild", {"ha_state": "Healthy"}
)
# Each kind of work, phase by phase. Its operation succeeds once the first phase is over: a
# failover's restart call returns once the new primary serves, before the old one is rebuilt.
PHASES: dict[str, tuple[Phase, ...]] = {
    "restart": (Phase("restarting", {"state": "Restarting"}, "restart", {"state": "Ready"}),),
    "failover": (_FAILING_OVER, _REBUILDING),
    # Near-zero-downtime scaling: the server fails over to the resized standby (HA state
    # ComputeUpdatingByFailover), the old primary is rebuilt; the server is Updating throughout.
    "scaling": (
        replace(_FAILING_OVER, shows={"ha_state": "ComputeUpdatingByFailover", "state": "Updating"}),
        replace(_REBUILDING, after={"ha_state": "Healthy", "state": "Ready"}),
    ),
    # Same-zone HA made zone-redundant when capacity appears: the standby is recreated in another
    # zone; the primary (and its zone) stays, no failover.
    "conversion": (Phase("recreating the standby", {"ha_state": "RecreatingStandby"}),),
}


@dataclass
class Job:
    """Work on a server (``PHASES[kind]``, then ``result`` holds and ``then`` runs) and its operation."""

    server: EmulatedServer
    label: str  # starts each history reason
    kind: str
    how: FailoverMode | None = "planned"  # None: unplanned (the health monitor promotes)
    result: dict[str, Any] = field(default_factory=dict)
    then: Callable[[], None] | None = None
    op_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_at: datetime = field(default_factory=_now)
    status: str = "InProgress"  # Succeeded or Failed: the operation's
    ended_at: datetime | None = None
    error: dict[str, str] | None = None


@dataclass
class Injection:
    pattern: re.Pattern[str]
    status: int | None  # None: answer normally, after `delay`
    remaining: int
    retry_after: float | None = None
    delay: float = 0.0


class RecordedRequest(NamedTuple):
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # without Authorization
    body: Any
    status: int
    at: datetime


Answer = tuple[int, dict[str, str], Any]  # status, headers, JSON body (None: empty)


@dataclass(eq=False, kw_only=True)
class ArmEmulator:
    """Emulated flexible servers behind a loopback HTTP endpoint (``base_url`` after ``start()``)."""

    subscription_id: str
    watchdog_interval: float = 0.5
    min_phase_seconds: float = 0.0  # each HA phase lasts this long (pollers see it)
    fake_step_seconds: float = 0.2  # each phase's work on a server with no pair
    location: str = "eastus"
    page_size: int = 50  # tests lower it to see nextLink paging
    watchdog_failures: int = 3  # failed pings before the health monitor fails a server over
    watchdog_enabled: bool = True

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._servers: dict[tuple[str, str], EmulatedServer] = {}
        self._jobs: dict[str, Job] = {}  # by operation id
        self._injections: list[Injection] = []
        self._requests: list[RecordedRequest] = []
        self._workers: list[threading.Thread] = []
        self._http = LoopbackServer(self._handle, name="arm-emulator-http")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ArmEmulator:
        if not self._http.running:
            self._stop.clear()
            self._http.start()
            self._spawn("watchdog", self._watchdog_loop)
            logger.info("arm emulator listening on %s (subscription %s)", self.base_url, self.subscription_id)
        return self

    def stop(self, *, timeout: float = 60) -> None:
        """Stop serving and join every thread (bounded); running jobs finish their phase first."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._http.stop()
        for thread in self._workers:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
            if thread.is_alive():
                logger.error("arm emulator: thread %s still running after stop", thread.name)
        self._workers = [t for t in self._workers if t.is_alive()]

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"arm-emulator-{name}", daemon=True)
        with self._lock:
            self._workers = [*(t for t in self._workers if t.is_alive()), thread]
        thread.start()

    # ------------------------------------------------------------------ servers

    def resource_id(self, group: str, name: str) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{group}/providers/{SERVER_TYPE}/{name}"

    def add_server(
        self,
        group: str,
        name: str,
        *,
        pair: PgPair | None = None,
        ha_mode: str = "ZoneRedundant",
        zones: tuple[str, str] = ("1", "2"),
        replicas: Sequence[str | ReplicaSpec] = (),
    ) -> str:
        """Add an emulated server and its read replicas; returns the server's resource id."""
        standby_zones = {"ZoneRedundant": zones[1], "SameZone": zones[0], "Disabled": None}
        if ha_mode not in standby_zones:
            raise ValueError(f"ha_mode must be ZoneRedundant, SameZone or Disabled, not {ha_mode!r}")
        ha_state = "NotEnabled" if ha_mode == "Disabled" else "Healthy"
        rid, standby = self.resource_id(group, name), standby_zones[ha_mode]
        server = EmulatedServer(rid, self.location, ha_mode, zones[0], standby, ha_state, pair=pair)
        specs = (r if isinstance(r, ReplicaSpec) else ReplicaSpec(r) for r in replicas)
        added = [server, *(server.replica(spec) for spec in specs)]
        with self._lock:
            if any((group.lower(), s.name.lower()) in self._servers for s in added):
                raise ValueError(f"server {name} (or a replica of it) already exists in {group}")
            for each in added:
                self._servers[(group.lower(), each.name.lower())] = each
                self._set(each, "created")
        return rid

    def server(self, group: str, name: str) -> EmulatedServer:
        with self._lock:
            return self._servers[(group.lower(), name.lower())]

    def snapshot(self, group: str, name: str) -> dict[str, Any]:
        """The server's JSON as GET returns it."""
        with self._lock:
            return self.server(group, name).to_json()

    def history(self, group: str, name: str) -> list[HistoryEntry]:
        with self._lock:
            return list(self.server(group, name).history)

    def update_server(self, group: str, name: str, *, reason: str = "update_server", **changes: Any) -> None:
        """Change what the emulator reports (state, ha_state, ha_mode, primary_zone, standby_zone)."""
        self._set(self.server(group, name), reason, **_present(changes))

    def wait_for(
        self, group: str, name: str, predicate: Callable[[EmulatedServer], bool], *, timeout: float = 30
    ) -> EmulatedServer:
        """Block until ``predicate(server)`` holds (bounded); raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                server = self.server(group, name)
                if predicate(server):
                    return server
            if time.monotonic() >= deadline:
                raise TimeoutError(f"server {name}: condition not reached within {timeout}s")
            time.sleep(0.05)

    def _set(self, server: EmulatedServer, reason: str, **changes: Any) -> None:
        """Change what the server reports and record the result in its history."""
        with self._lock:
            for key, value in changes.items():
                setattr(server, key, value)
            entry = HistoryEntry(
                server.state, server.ha_state, server.primary_zone, server.standby_zone, reason
            )
            server.history.append(entry)
        logger.info("arm emulator: server %s: %s", server.name, entry)

    # ------------------------------------------------------------------ platform work (2026-10-01)

    def schedule_maintenance(
        self,
        group: str,
        name: str,
        *,
        start: datetime,
        status: str = "Planned",
        estimated_downtime: str | None = "PT60S",
    ) -> str:
        """Announce a one-hour maintenance event (as Azure does 5 days ahead); returns its id."""
        event_id = f"{uuid.uuid4().hex[:4].upper()}-{uuid.uuid4().hex[:3].upper()}"
        event = EmulatedMaintenance(
            event_id, status, start, start + timedelta(hours=1), start, estimated_downtime
        )
        with self._lock:
            self.server(group, name).maintenance.append(event)
            self._set(self.server(group, name), f"maintenance {event_id} scheduled ({status})")
        return event_id

    def set_maintenance_status(self, group: str, name: str, event_id: str, status: str) -> None:
        with self._lock:
            server = self.server(group, name)
            event = server.event(event_id)
            event.status, event.last_updated_time = status, _now()
            if status == "InProgress":
                event.start_time = min(event.start_time, _now())
                event.end_time = max(event.end_time, _now() + timedelta(minutes=30))
            self._set(server, f"maintenance {event_id}: {status}")

    def run_maintenance(self, group: str, name: str, event_id: str) -> None:
        """The event goes InProgress, the server fails over (planned and platform-initiated: no
        restart request, no activity log) and the event completes once the standby is healthy again.
        Returns at once; ``wait_for`` the outcome."""

        def complete() -> None:
            self.set_maintenance_status(group, name, event_id, "Complete")

        with self._lock:  # InProgress before the job's first phase (which waits for the lock)
            self._launch(Job(self.server(group, name), "maintenance", "failover", then=complete))
            self.set_maintenance_status(group, name, event_id, "InProgress")

    def run_scaling(self, group: str, name: str, *, sku_name: str = "Standard_D4ds_v5") -> None:
        """A compute scale by failing over (``PHASES["scaling"]``); returns at once."""
        self._launch(Job(self.server(group, name), "scaling", "scaling", result={"sku_name": sku_name}))

    def convert_to_zone_redundant(self, group: str, name: str, *, standby_zone: str) -> None:
        """Same-zone HA recreating its standby in ``standby_zone`` (``PHASES["conversion"]``)."""
        server = self.server(group, name)
        if server.ha_mode != "SameZone":
            raise ValueError(f"server {name} is {server.ha_mode}, not SameZone")
        changes = {"ha_mode": "ZoneRedundant", "standby_zone": standby_zone, "ha_state": "Healthy"}
        self._launch(Job(server, "conversion", "conversion", result=changes))

    # ------------------------------------------------------------------ jobs

    def _launch(self, job: Job, *, needs_ha: bool = True) -> Job:
        """Claim the job's server (one job at a time) and play the job on a thread of its own."""
        server = job.server
        with self._lock:
            if needs_ha and server.ha_mode == "Disabled":
                message = f"Server '{server.name}' does not have high availability enabled."
                raise ArmError(400, "HighAvailabilityNotEnabled", message)
            if server.busy:
                message = f"Server '{server.name}' is busy with another operation. Please try again later."
                raise ArmError(409, "ServerBusy", message)
            if needs_ha and server.ha_state != "Healthy":
                message = f"Server '{server.name}' cannot fail over now: its HA state is {server.ha_state}."
                raise ArmError(409, "HighAvailabilityNotHealthy", message)
            server.busy = True
            self._jobs[job.op_id] = job
        self._spawn(f"{job.label}-{server.name}", lambda: self._play(job))
        return job

    def _play(self, job: Job) -> None:
        """Each phase: show it, last at least ``min_phase_seconds``, do its work, apply what holds
        after it (the last one: ``result`` too). A failure fails the operation naming the phase."""
        server, phases = job.server, PHASES[job.kind]
        phase = phases[0]
        try:
            for phase in phases:
                if self._stop.is_set():
                    return
                self._set(server, f"{job.label}: {phase.name}", **phase.shows)
                self._stop.wait(self.min_phase_seconds)
                if server.pair is None or phase.work is None:
                    self._stop.wait(self.fake_step_seconds)
                else:
                    _work(server.pair, phase.work, job.how)
                after = {**phase.after, **(job.result if phase is phases[-1] else {})}
                if phase.swap_zones:
                    after.update(primary_zone=server.standby_zone, standby_zone=server.primary_zone)
                self._set(server, f"{job.label}: {phase.name} done", **after)
                self._finish(job)
            if job.then is not None:
                job.then()
        except Exception as exc:
            logger.exception("arm emulator: %s: %s failed while %s", server.name, job.label, phase.name)
            self._finish(job, f"{job.label} failed while {phase.name}.")
            self._set(server, f"{job.label}: failed while {phase.name}: {type(exc).__name__}", state="Ready")
        finally:
            with self._lock:
                server.busy, server.failures = False, 0

    def _finish(self, job: Job, failure: str | None = None) -> None:
        """The job's operation: Succeeded, or Failed with an InternalServerError saying ``failure``."""
        with self._lock:
            if job.status == "InProgress":
                job.status, job.ended_at = ("Succeeded" if failure is None else "Failed"), _now()
                job.error = None if failure is None else {"code": "InternalServerError", "message": failure}

    def _watchdog_loop(self) -> None:
        """Azure's health monitor: 3 failed pings of a Healthy server's primary -> unplanned failover."""
        while not self._stop.wait(self.watchdog_interval):
            with self._lock:
                servers = list(self._servers.values())
            for server in servers:
                if server.pair is not None and server.ha_mode != "Disabled" and not self._stop.is_set():
                    self._watch(server, server.pair)

    def _watch(self, server: EmulatedServer, pair: PgPair) -> None:
        with self._lock:
            if not self.watchdog_enabled or server.busy or server.ha_state != "Healthy" or pair.stopped:
                server.failures = 0
                return
        alive = pgpair.ping(pair, pair.primary)
        with self._lock:
            server.failures = 0 if alive else server.failures + 1
            trigger = server.failures >= self.watchdog_failures
        if not alive:
            logger.warning("arm emulator: %s: primary did not answer (%d)", server.name, server.failures)
        if trigger:
            with contextlib.suppress(ArmError):  # another job claimed the server meanwhile
                self._launch(Job(server, "unplanned", "failover", how=None))

    # ------------------------------------------------------------------ fault injection and records

    def inject(
        self,
        path: str,
        status: int | None,
        count: int = 1,
        *,
        retry_after: float | None = None,
        delay: float = 0,
    ) -> None:
        """The next ``count`` requests whose path ``path`` (a regex) matches get ``status`` and an ARM
        error body (``status=None``: answered normally), after ``delay`` seconds."""
        injection = Injection(re.compile(path, re.IGNORECASE), status, count, retry_after, delay)
        with self._lock:
            self._injections.append(injection)

    def inject_delay(self, path: str, seconds: float, count: int = 1) -> None:
        """The next ``count`` matching requests are answered normally, but only after ``seconds``."""
        self.inject(path, None, count, delay=seconds)

    def clear_injections(self) -> None:
        with self._lock:
            self._injections.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _injected(self, request: Request) -> None:
        """Play the first injection matching the path, if any: wait its delay, raise its failure."""
        with self._lock:
            self._injections = [i for i in self._injections if i.remaining > 0]
            injection = next((i for i in self._injections if i.pattern.search(request.path)), None)
            if injection is None:
                return
            injection.remaining -= 1
        self._stop.wait(injection.delay)
        if injection.status is not None:
            extra = {} if injection.retry_after is None else {"Retry-After": f"{injection.retry_after:g}"}
            code = HTTPStatus(injection.status).phrase.title().replace(" ", "")
            text = f"Injected failure {injection.status} for {request.method} {request.path}."
            raise ArmError(injection.status, code, text, extra)

    # ------------------------------------------------------------------ request handling

    def _handle(self, request: Request) -> Response:
        body: Any = request.get_json(force=True, silent=True)
        if body is None and request.get_data():
            body = request.get_data()[:200].decode(errors="replace")
        try:
            status, headers, out = self._route(request)
        except ArmError as err:
            status, headers, out = err.status, err.headers, err.body
        except Exception as exc:  # an emulator bug: answer like ARM would, and say so in the log
            logger.exception("arm emulator: %s %s failed", request.method, request.path)
            status, headers, out = 500, {}, ArmError(500, "InternalServerError", type(exc).__name__).body
        kept = {k: v for k, v in request.headers.items() if k.lower() not in ("authorization", "cookie")}
        query = request.args.to_dict(flat=False)
        with self._lock:
            self._requests.append(
                RecordedRequest(request.method, request.path, query, kept, body, status, _now())
            )
        response = Response(b"" if out is None else json.dumps(out), status=status, headers=headers)
        response.headers["x-ms-request-id"] = str(uuid.uuid4())
        if out is not None:
            response.headers["Content-Type"] = "application/json; charset=utf-8"
        return response

    def _route(self, request: Request) -> Answer:
        """Injections, ARM's checks (a bearer token, an api-version, the subscription), the endpoint."""
        self._injected(request)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
            message = "Authentication failed. The 'Authorization' header is missing."
            raise ArmError(401, "AuthenticationFailed", message)
        if not request.args.get("api-version"):
            message = "The api-version query parameter (?api-version=) is required for all requests."
            raise ArmError(400, "MissingApiVersionParameter", message)
        try:
            endpoint, values = _ROUTES.bind("localhost").match(request.path.lower(), method=request.method)
        except HTTPException as exc:  # NotFound or MethodNotAllowed
            code = "MethodNotAllowed" if isinstance(exc, MethodNotAllowed) else "InvalidResourceType"
            message = f"The resource type could not be found for {request.method} '{request.path}'."
            raise ArmError(exc.code or 404, code, message) from None
        if values["sub"] != self.subscription_id.lower():
            message = f"The subscription '{request.path.split('/')[2]}' could not be found."
            raise ArmError(404, "SubscriptionNotFound", message)
        answer: Answer = getattr(self, f"_{endpoint}")(request, dict(values))
        return answer

    def _find(self, path: dict[str, str], *, replica_ok: bool = True) -> EmulatedServer:
        """The server (or read replica) the path names."""
        rg, name = path["rg"], path["name"]
        with self._lock:
            server = self._servers.get((rg, name))
        if server is None:
            message = f"The Resource '{SERVER_TYPE}/{name}' under resource group '{rg}' was not found."
            raise ArmError(404, "ResourceNotFound", f"{message} See https://aka.ms/ARMResourceNotFoundFix")
        if server.replica_of is not None and not replica_ok:
            message = f"'{server.name}' is a read replica: the operation is not supported on a replica."
            raise ArmError(400, "OperationNotSupportedOnReplica", message)
        return server

    def _page(self, request: Request, items: list[Any], render: Callable[[Any], dict[str, Any]]) -> Answer:
        """A list answer, ``page_size`` items a page, ``nextLink`` to the next one. Only the page's
        items are rendered: a 500-server listing of 10 pages rendered every server on each page."""
        start, size = int(request.args.get("$skiptoken", "0")), max(1, self.page_size)
        page: dict[str, Any] = {"value": [render(item) for item in items[start : start + size]]}
        if start + size < len(items):
            query = f"api-version={request.args['api-version']}&$skiptoken={start + size}"
            page["nextLink"] = f"{self.base_url}{request.path}?{query}"
        return 200, {}, page

    def _list(self, request: Request, path: dict[str, str]) -> Answer:
        """Servers and replicas, in the subscription or in a resource group."""
        with self._lock:
            servers = [s for (rg, _), s in sorted(self._servers.items()) if path.get("rg", rg) == rg]
            return self._page(request, servers, EmulatedServer.to_json)

    def _replicas(self, request: Request, path: dict[str, str]) -> Answer:
        rid = self._find(path).resource_id
        with self._lock:
            replicas = [s for _, s in sorted(self._servers.items()) if s.replica_of == rid]
            return self._page(request, replicas, EmulatedServer.to_json)

    def _get(self, request: Request, path: dict[str, str]) -> Answer:
        server = self._find(path)
        with self._lock:
            return 200, {}, server.to_json()

    def _maintenance(self, request: Request, path: dict[str, str]) -> Answer:
        """One event by id, or the list (``maintenanceStatus``: Upcoming, Past or absent: all)."""
        server = self._find(path, replica_ok=False)
        wanted = request.args.get("maintenanceStatus")
        if wanted is not None and wanted.lower() not in ("upcoming", "past"):
            message = f"Invalid maintenanceStatus '{wanted}'. Allowed: Upcoming, Past."
            raise ArmError(400, "InvalidParameterValue", message)
        with self._lock:
            if "event" in path:
                return 200, {}, server.event(path["event"]).to_json(server.resource_id)
            events = sorted(server.maintenance, key=lambda e: e.start_time)
            shown = [e for e in events if wanted is None or e.past == (wanted.lower() == "past")]
            return self._page(request, shown, lambda e: e.to_json(server.resource_id))

    def _restart(self, request: Request, path: dict[str, str]) -> Answer:
        """A restart, or with ``restartWithFailover`` a failover: 202, then the operation to poll."""
        server = self._find(path, replica_ok=False)
        params = request.get_json(force=True, silent=True)
        params = params if isinstance(params, dict) else {}
        if params.get("restartWithFailover") is not True:
            return self._accepted(self._launch(Job(server, "restart", "restart"), needs_ha=False))
        text = str(params.get("failoverMode") or "PlannedFailover")
        if text.lower() not in FAILOVER_MODES:
            allowed = ", ".join(canonical for canonical, _ in FAILOVER_MODES.values())
            message = f"Invalid value '{text}' for failoverMode. Allowed values: {allowed}."
            raise ArmError(400, "InvalidParameterValue", message)
        mode, how = FAILOVER_MODES[text.lower()]
        return self._accepted(self._launch(Job(server, mode, "failover", how=how)))

    def _operation(self, request: Request, path: dict[str, str]) -> Answer:
        """The operation's status (``azureAsyncOperation``), or its result (``operationResults``):
        202 while it runs, 204 once it succeeded, its error once it failed."""
        with self._lock:
            job = self._jobs.get(path["op_id"])
            if job is None or path["kind"] not in ("azureasyncoperation", "operationresults"):
                raise ArmError(404, "OperationNotFound", f"The operation '{path['op_id']}' was not found.")
            if path["kind"] == "azureasyncoperation":
                body = {"id": request.path, "name": job.op_id, "status": job.status, "error": job.error}
                return (
                    200,
                    {},
                    _present({**body, "startTime": _iso(job.started_at), "endTime": _iso(job.ended_at)}),
                )
        if job.status == "InProgress":
            return self._accepted(job)
        if job.error is None:
            return 204, {}, None
        raise ArmError(500, job.error["code"], job.error["message"])

    def _accepted(self, job: Job) -> Answer:
        """202: the job's operation, to poll for its status or its result."""
        location = f"/subscriptions/{self.subscription_id}/providers/{PROVIDER}/locations/{self.location}"
        url = f"{self.base_url}{location}/{{}}/{job.op_id}?api-version=2026-10-01"
        headers = {"Azure-AsyncOperation": url.format("azureAsyncOperation"), "Retry-After": "1"}
        return 202, {**headers, "Location": url.format("operationResults")}, None
