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
(``run_scaling``: HA state ``ComputeUpdatingByFailover``), and same-zone HA converting to
zone-redundant (``convert_to_zone_redundant``: the standby's zone changes, no failover).

What it must not do: listen on anything but 127.0.0.1, check tokens (any ``Bearer`` value is
accepted; only its presence is checked), record the Authorization header, or leave a thread
running after ``stop()`` (every join is bounded).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local import pgpair
from local.loopback import LoopbackServer
from local.pgpair import PgPair

logger = logging.getLogger(__name__)

PROVIDER = "Microsoft.DBforPostgreSQL"
SERVER_TYPE = f"{PROVIDER}/flexibleServers"
MAINTENANCE_TYPE = f"{SERVER_TYPE}/maintenanceEvents"
FAILOVER_MODES = {
    "plannedfailover": ("PlannedFailover", "planned"),
    "forcedfailover": ("ForcedFailover", "forced"),
    "plannedswitchover": ("PlannedSwitchover", "planned"),
    "forcedswitchover": ("ForcedSwitchover", "forced"),
}
# Statuses the Past filter returns; every other status (an unknown one too) is Upcoming.
_PAST_MAINTENANCE = frozenset({"complete", "canceled"})
# Matched against the lower-cased path: ARM paths are case-insensitive.
_SUB = "/subscriptions/<sub>/providers/microsoft.dbforpostgresql"
_SERVERS = "/subscriptions/<sub>/resourcegroups/<rg>/providers/microsoft.dbforpostgresql/flexibleservers"
_ROUTES = Map(
    [
        Rule(f"{_SUB}/flexibleservers", endpoint="list", methods=["GET"]),
        Rule(_SERVERS, endpoint="list", methods=["GET"]),
        Rule(f"{_SERVERS}/<name>", endpoint="get", methods=["GET"]),
        Rule(f"{_SERVERS}/<name>/replicas", endpoint="replicas", methods=["GET"]),
        Rule(f"{_SERVERS}/<name>/restart", endpoint="restart", methods=["POST"]),
        Rule(f"{_SERVERS}/<name>/maintenanceevents", endpoint="maintenance_list", methods=["GET"]),
        Rule(f"{_SERVERS}/<name>/maintenanceevents/<event>", endpoint="maintenance", methods=["GET"]),
        Rule(f"{_SUB}/locations/<location>/<kind>/<op_id>", endpoint="operation", methods=["GET"]),
    ],
    strict_slashes=False,
    merge_slashes=False,
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class ArmError(Exception):
    """An ARM error answer: status plus ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass(frozen=True)
class ReplicaSpec:
    """A read replica of an emulated server (itself listed as a server with HA Disabled)."""

    name: str
    location: str | None = None
    replication_state: str = "Active"
    zone: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
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
    estimated_downtime: str | None = "PT60S"
    original_start_time: datetime | None = None
    last_updated_time: datetime = field(default_factory=_now)

    @property
    def past(self) -> bool:
        return self.status.lower() in _PAST_MAINTENANCE

    def to_json(self, server_id: str) -> dict[str, Any]:
        props: dict[str, Any] = {
            "maintenanceEventId": self.event_id,
            "maintenanceType": "PlannedMaintenance",
            "description": "Planned maintenance: minor version and security updates.",
            "status": self.status,
            "startTime": _iso(self.start_time),
            "endTime": _iso(self.end_time),
            "deferrable": True,
            "originalStartTime": _iso(self.original_start_time or self.start_time),
            "lastUpdatedTime": _iso(self.last_updated_time),
            "deferralDeadline": _iso(self.start_time + timedelta(days=14)),
        }
        if self.estimated_downtime is not None:
            props["estimatedDowntime"] = self.estimated_downtime
        event_id = f"{server_id}/maintenanceEvents/{self.event_id}"
        return {"id": event_id, "name": self.event_id, "type": MAINTENANCE_TYPE, "properties": props}


def _server_id(subscription_id: str, resource_group: str, name: str) -> str:
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/{SERVER_TYPE}/{name}"


def _resource(rid: str, name: str, location: str, sku: str, props: dict[str, Any]) -> dict[str, Any]:
    props.setdefault("fullyQualifiedDomainName", f"{name}.postgres.database.azure.com")
    body = {"id": rid, "name": name, "type": SERVER_TYPE, "location": location, "tags": {}}
    return {**body, "sku": {"name": sku, "tier": "GeneralPurpose"}, "properties": props}


@dataclass
class EmulatedServer:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    ha_mode: str
    primary_zone: str | None
    standby_zone: str | None
    ha_state: str
    state: str = "Ready"
    pair: PgPair | None = None
    replicas: tuple[ReplicaSpec, ...] = ()
    version: str = "15"
    sku_name: str = "Standard_D2ds_v5"
    maintenance: list[EmulatedMaintenance] = field(default_factory=list)
    busy: bool = False
    failures: int = 0
    history: list[HistoryEntry] = field(default_factory=list)

    def sibling_id(self, name: str) -> str:
        return _server_id(self.subscription_id, self.resource_group, name)

    @property
    def resource_id(self) -> str:
        return self.sibling_id(self.name)

    def to_json(self) -> dict[str, Any]:
        ha: dict[str, Any] = {"mode": self.ha_mode, "state": self.ha_state}
        if self.ha_mode != "Disabled" and self.standby_zone is not None:
            ha["standbyAvailabilityZone"] = self.standby_zone
        props: dict[str, Any] = {
            "state": self.state,
            "version": self.version,
            "administratorLogin": "pgadmin",
            "replicationRole": "Primary",
            "replicaCapacity": 5,
            "highAvailability": ha,
            "storage": {"storageSizeGB": 128, "autoGrow": "Disabled", "tier": "P10"},
            "network": {"publicNetworkAccess": "Disabled"},
        }
        if self.primary_zone is not None:
            props["availabilityZone"] = self.primary_zone
        return _resource(self.resource_id, self.name, self.location, self.sku_name, props)

    def replica_json(self, replica: ReplicaSpec) -> dict[str, Any]:
        props: dict[str, Any] = {
            "state": "Ready",
            "version": self.version,
            "replicationRole": "AsyncReplica",
            "replicaCapacity": 0,
            "replica": {"role": "AsyncReplica", "capacity": 0, "replicationState": replica.replication_state},
            "sourceServerResourceId": self.resource_id,
            "highAvailability": {"mode": "Disabled", "state": "NotEnabled"},
        }
        if replica.zone:
            props["availabilityZone"] = replica.zone
        location = replica.location or self.location
        return _resource(self.sibling_id(replica.name), replica.name, location, "Standard_D2ds_v5", props)


@dataclass
class Operation:
    op_id: str
    started_at: datetime
    status: str = "InProgress"
    ended_at: datetime | None = None
    error: dict[str, str] | None = None

    def to_json(self, path: str) -> dict[str, Any]:
        body: dict[str, Any] = {"id": path, "name": self.op_id, "status": self.status}
        body["startTime"] = _iso(self.started_at)
        if self.ended_at is not None:
            body["endTime"] = _iso(self.ended_at)
        if self.error is not None:
            body["error"] = dict(self.error)
        return body


@dataclass
class Injection:
    pattern: re.Pattern[str]
    status: int | None  # None: answer normally, after `delay`
    remaining: int
    retry_after: float | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # without Authorization
    body: Any
    status: int
    at: datetime


Answer = tuple[int, dict[str, str], Any]  # status, headers, JSON body (None: empty)


class ArmEmulator:
    """Emulated flexible servers behind a loopback HTTP endpoint (``base_url`` after ``start()``)."""

    def __init__(
        self,
        *,
        subscription_id: str,
        watchdog_interval: float = 0.5,
        min_phase_seconds: float = 0.0,
        fake_step_seconds: float = 0.2,
    ) -> None:
        self.subscription_id = subscription_id
        self.location = "eastus"
        self.page_size = 50  # tests lower it to see nextLink paging
        self.watchdog_interval = watchdog_interval
        self.watchdog_failures = 3  # failed pings before the health monitor fails a server over
        self.watchdog_enabled = True
        self.min_phase_seconds = min_phase_seconds  # each HA phase lasts this long (pollers see it)
        self.fake_step_seconds = fake_step_seconds  # each failover step of a server with no pair
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._servers: dict[tuple[str, str], EmulatedServer] = {}
        self._operations: dict[str, Operation] = {}
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
        """Stop serving and join every thread (bounded); running failovers finish their step first."""
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

    # ------------------------------------------------------------------ servers

    def resource_id(self, resource_group: str, name: str) -> str:
        return _server_id(self.subscription_id, resource_group, name)

    def add_server(
        self,
        resource_group: str,
        name: str,
        *,
        pair: PgPair | None = None,
        ha_mode: str = "ZoneRedundant",
        zones: tuple[str, str] = ("1", "2"),
        replicas: Sequence[str | ReplicaSpec] = (),
    ) -> str:
        """Add an emulated server; returns its resource id."""
        if ha_mode not in ("ZoneRedundant", "SameZone", "Disabled"):
            raise ValueError(f"ha_mode must be ZoneRedundant, SameZone or Disabled, not {ha_mode!r}")
        disabled = ha_mode == "Disabled"
        server = EmulatedServer(
            subscription_id=self.subscription_id,
            resource_group=resource_group,
            name=name,
            location=self.location,
            ha_mode=ha_mode,
            primary_zone=zones[0],
            standby_zone=None if disabled else (zones[0] if ha_mode == "SameZone" else zones[1]),
            ha_state="NotEnabled" if disabled else "Healthy",
            pair=pair,
            replicas=tuple(r if isinstance(r, ReplicaSpec) else ReplicaSpec(name=r) for r in replicas),
        )
        with self._lock:
            key = (resource_group.lower(), name.lower())
            if key in self._servers:
                raise ValueError(f"server {name} already exists in {resource_group}")
            self._servers[key] = server
            self._set(server, "created")
        return server.resource_id

    def server(self, resource_group: str, name: str) -> EmulatedServer:
        with self._lock:
            return self._servers[(resource_group.lower(), name.lower())]

    def snapshot(self, resource_group: str, name: str) -> dict[str, Any]:
        """The server's JSON as GET returns it."""
        with self._lock:
            return self.server(resource_group, name).to_json()

    def history(self, resource_group: str, name: str) -> list[HistoryEntry]:
        with self._lock:
            return list(self.server(resource_group, name).history)

    def update_server(
        self, resource_group: str, name: str, *, reason: str = "update_server", **changes: Any
    ) -> None:
        """Change what the emulator reports (state, ha_state, ha_mode, primary_zone, standby_zone)."""
        self._set(
            self.server(resource_group, name), reason, **{k: v for k, v in changes.items() if v is not None}
        )

    # ------------------------------------------------------------------ platform work (2026-10-01)

    def schedule_maintenance(
        self,
        resource_group: str,
        name: str,
        *,
        start: datetime,
        status: str = "Planned",
        estimated_downtime: str | None = "PT60S",
    ) -> str:
        """Announce a one-hour maintenance event (as Azure does 5 days ahead); returns its id."""
        event_id = f"{uuid.uuid4().hex[:4].upper()}-{uuid.uuid4().hex[:3].upper()}"
        event = EmulatedMaintenance(event_id, status, start, start + timedelta(hours=1), estimated_downtime)
        with self._lock:
            server = self.server(resource_group, name)
            server.maintenance.append(event)
            self._set(server, f"maintenance {event_id} scheduled ({status})")
        return event_id

    def set_maintenance_status(self, resource_group: str, name: str, event_id: str, status: str) -> None:
        with self._lock:
            server = self.server(resource_group, name)
            event = self._maintenance_event(server, event_id)
            event.status, event.last_updated_time = status, _now()
            if status == "InProgress":
                event.start_time = min(event.start_time, _now())
                event.end_time = max(event.end_time, _now() + timedelta(minutes=30))
            self._set(server, f"maintenance {event_id}: {status}")

    def run_maintenance(self, resource_group: str, name: str, event_id: str) -> None:
        """The platform's maintenance: the event goes InProgress, the server fails over (planned,
        platform-initiated: no restart request, no activity log), the event completes once the
        standby is healthy again. Returns at once; ``wait_for`` the outcome."""
        server = self._claim(resource_group, name, "a maintenance")
        self.set_maintenance_status(resource_group, name, event_id, "InProgress")

        def complete() -> None:
            self.set_maintenance_status(resource_group, name, event_id, "Complete")

        self._spawn(
            f"maintenance-{name}", self._run_failover, server, None, "planned", "maintenance", complete
        )

    def run_scaling(self, resource_group: str, name: str, *, sku_name: str = "Standard_D4ds_v5") -> None:
        """Near-zero-downtime scaling: HA state ``ComputeUpdatingByFailover`` while the server fails
        over to the resized standby, then the old primary is rebuilt. Returns at once."""
        server = self._claim(resource_group, name, "a compute scale")

        def resized() -> None:
            self._set(server, f"compute scaled to {sku_name}", sku_name=sku_name, state="Ready")

        args = (server, None, "planned", "scaling", resized, "ComputeUpdatingByFailover", "Updating")
        self._spawn(f"scaling-{name}", self._run_failover, *args)

    def convert_to_zone_redundant(self, resource_group: str, name: str, *, standby_zone: str) -> None:
        """Same-zone HA converting itself to zone-redundant when capacity appears: the standby is
        recreated in ``standby_zone``; the primary (and its zone) stays. No failover."""
        server = self._claim(resource_group, name, "a conversion to zone-redundant")
        if server.ha_mode != "SameZone":
            self._set(server, "conversion refused", busy=False)
            raise ValueError(f"server {name} is {server.ha_mode}, not SameZone")

        def convert() -> None:
            try:
                self._set(server, "standby being recreated in another zone", ha_state="RecreatingStandby")
                self._stop.wait(self.min_phase_seconds + self.fake_step_seconds)
                reason = f"converted to zone-redundant (standby zone {standby_zone})"
                self._set(
                    server, reason, ha_mode="ZoneRedundant", standby_zone=standby_zone, ha_state="Healthy"
                )
            finally:
                self._set(server, "conversion done", busy=False)

        self._spawn(f"convert-{name}", convert)

    def _claim(self, resource_group: str, name: str, what: str) -> EmulatedServer:
        with self._lock:
            server = self.server(resource_group, name)
            if server.busy or server.ha_state != "Healthy" or server.ha_mode == "Disabled":
                raise RuntimeError(
                    f"server {name} cannot start {what} now (busy={server.busy}, HA {server.ha_state})"
                )
            server.busy = True
            return server

    @staticmethod
    def _maintenance_event(server: EmulatedServer, event_id: str) -> EmulatedMaintenance:
        for event in server.maintenance:
            if event.event_id.lower() == event_id.lower():
                return event
        raise ArmError(404, "ResourceNotFound", f"The maintenance event '{event_id}' was not found.")

    def wait_for(
        self,
        resource_group: str,
        name: str,
        predicate: Callable[[EmulatedServer], bool],
        *,
        timeout: float = 30,
    ) -> EmulatedServer:
        """Block until ``predicate(server)`` holds (bounded); raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                server = self.server(resource_group, name)
                if predicate(server):
                    return server
            if time.monotonic() >= deadline:
                raise TimeoutError(f"server {name}: condition not reached within {timeout}s")
            time.sleep(0.05)

    def _set(self, server: EmulatedServer, reason: str, **changes: Any) -> None:
        """Change the server and record the result in its history (the ``busy`` flag is not history)."""
        with self._lock:
            for key, value in changes.items():
                setattr(server, key, value)
            if changes and set(changes) <= {"busy", "failures"}:
                return
            entry = HistoryEntry(
                server.state, server.ha_state, server.primary_zone, server.standby_zone, reason
            )
            server.history.append(entry)
        logger.info("arm emulator: server %s: %s", server.name, entry)

    # ------------------------------------------------------------------ fault injection and records

    def inject(
        self,
        path_regex: str,
        status: int | None,
        count: int = 1,
        *,
        retry_after: float | None = None,
        delay: float = 0.0,
    ) -> None:
        """The next ``count`` requests matching ``path_regex`` get ``status`` and an ARM error body
        (``status=None``: answered normally), after ``delay`` seconds."""
        injection = Injection(re.compile(path_regex, re.IGNORECASE), status, count, retry_after, delay)
        with self._lock:
            self._injections.append(injection)

    def inject_delay(self, path_regex: str, seconds: float, count: int = 1) -> None:
        """The next ``count`` matching requests are answered normally, but only after ``seconds``."""
        self.inject(path_regex, None, count, delay=seconds)

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

    def _take_injection(self, path: str) -> Injection | None:
        with self._lock:
            self._injections = [i for i in self._injections if i.remaining > 0]
            for injection in self._injections:
                if injection.pattern.search(path):
                    injection.remaining -= 1
                    return injection
        return None

    # ------------------------------------------------------------------ request handling

    def _handle(self, request: Request) -> Response:
        body = request.get_data()
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = body[:200].decode(errors="replace")
        try:
            status, headers, out = self._route(request, parsed)
        except ArmError as err:
            status, headers, out = err.status, dict(err.headers), _error_body(err.code, err.message)
        except Exception as exc:  # an emulator bug: answer like ARM would, and say so in the log
            logger.exception("arm emulator: %s %s failed", request.method, request.path)
            status, headers, out = 500, {}, _error_body("InternalServerError", type(exc).__name__)
        kept = {k: v for k, v in request.headers.items() if k.lower() not in ("authorization", "cookie")}
        query = request.args.to_dict(flat=False)
        with self._lock:
            self._requests.append(
                RecordedRequest(request.method, request.path, query, kept, parsed, status, _now())
            )
        response = Response(b"" if out is None else json.dumps(out), status=status, headers=headers)
        response.headers["x-ms-request-id"] = str(uuid.uuid4())
        if out is not None:
            response.headers["Content-Type"] = "application/json; charset=utf-8"
        return response

    def _route(self, request: Request, body: Any) -> Answer:
        method, path = request.method, request.path
        injection = self._take_injection(path)
        if injection is not None:
            self._stop.wait(injection.delay)
            if injection.status is not None:
                extra = {} if injection.retry_after is None else {"Retry-After": f"{injection.retry_after:g}"}
                code = HTTPStatus(injection.status).phrase.title().replace(" ", "")
                text = f"Injected failure {injection.status} for {method} {path}."
                raise ArmError(injection.status, code, text, extra)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
            message = "Authentication failed. The 'Authorization' header is missing."
            raise ArmError(401, "AuthenticationFailed", message)
        if not request.args.get("api-version"):
            message = "The api-version query parameter (?api-version=) is required for all requests."
            raise ArmError(400, "MissingApiVersionParameter", message)
        try:
            endpoint, matched = _ROUTES.bind("localhost").match(path.lower(), method=method)
        except MethodNotAllowed:
            raise ArmError(405, "MethodNotAllowed", f"{method} is not allowed here.") from None
        except NotFound:
            message = f"The resource type could not be found for path '{path}'."
            raise ArmError(404, "InvalidResourceType", message) from None
        values = dict(matched)
        if values.pop("sub") != self.subscription_id.lower():
            message = f"The subscription '{path.split('/')[2]}' could not be found."
            raise ArmError(404, "SubscriptionNotFound", message)
        answer: Answer = getattr(self, f"_{endpoint}")(request, body, **values)
        return answer

    def _list(self, request: Request, body: Any, rg: str | None = None) -> Answer:
        with self._lock:
            items: list[dict[str, Any]] = []
            for key in sorted(self._servers):
                server = self._servers[key]
                if rg is None or key[0] == rg:
                    items.append(server.to_json())
                    items.extend(server.replica_json(r) for r in server.replicas)
        try:
            start = int(request.args.get("$skiptoken", "0"))
        except ValueError:
            raise ArmError(400, "InvalidSkipToken", "The $skiptoken is invalid.") from None
        size = max(1, self.page_size)
        page: dict[str, Any] = {"value": items[start : start + size]}
        if start + size < len(items):
            api_version = request.args.get("api-version", "2026-10-01")
            page["nextLink"] = (
                f"{self.base_url}{request.path}?api-version={api_version}&$skiptoken={start + size}"
            )
        return 200, {}, page

    def _find(self, rg: str, name: str) -> tuple[EmulatedServer | None, dict[str, Any]]:
        """(the server, its JSON), or (None, a replica's JSON) for a read replica addressed as a server."""
        with self._lock:
            server = self._servers.get((rg, name))
            if server is not None:
                return server, server.to_json()
            for parent in self._servers.values():
                for replica in parent.replicas if parent.resource_group.lower() == rg else ():
                    if replica.name.lower() == name:
                        return None, parent.replica_json(replica)
        message = f"The Resource '{SERVER_TYPE}/{name}' under resource group '{rg}' was not found."
        raise ArmError(404, "ResourceNotFound", f"{message} See https://aka.ms/ARMResourceNotFoundFix")

    def _get(self, request: Request, body: Any, rg: str, name: str) -> Answer:
        return 200, {}, self._find(rg, name)[1]

    def _replicas(self, request: Request, body: Any, rg: str, name: str) -> Answer:
        server, _ = self._find(rg, name)
        with self._lock:
            return 200, {}, {"value": [server.replica_json(r) for r in server.replicas] if server else []}

    def _maintenance_list(self, request: Request, body: Any, rg: str, name: str) -> Answer:
        server = self._server_only(rg, name)
        wanted = request.args.get("maintenanceStatus")
        if wanted is not None and wanted.lower() not in ("upcoming", "past"):
            message = f"Invalid maintenanceStatus '{wanted}'. Allowed: Upcoming, Past."
            raise ArmError(400, "InvalidParameterValue", message)
        with self._lock:
            events = sorted(server.maintenance, key=lambda e: e.start_time)
            shown = [e for e in events if wanted is None or e.past == (wanted.lower() == "past")]
            return 200, {}, {"value": [e.to_json(server.resource_id) for e in shown]}

    def _maintenance(self, request: Request, body: Any, rg: str, name: str, event: str) -> Answer:
        server = self._server_only(rg, name)
        with self._lock:
            return 200, {}, self._maintenance_event(server, event).to_json(server.resource_id)

    def _server_only(self, rg: str, name: str) -> EmulatedServer:
        server, _ = self._find(rg, name)
        if server is None:
            raise ArmError(405, "NotSupported", "Not supported on a replica.")
        return server

    def _operation(self, request: Request, body: Any, location: str, kind: str, op_id: str) -> Answer:
        with self._lock:
            op = self._operations.get(op_id)
            if op is None or kind not in ("azureasyncoperation", "operationresults"):
                raise ArmError(404, "OperationNotFound", f"The operation '{op_id}' was not found.")
            done = op.status != "InProgress"
            if kind == "azureasyncoperation":
                return 200, {}, op.to_json(request.path)
            if not done:
                return 202, {"Location": self._op_url(op, "operationResults"), "Retry-After": "1"}, None
            if op.status == "Succeeded":
                return 204, {}, None
            error = op.error or {"code": "OperationFailed", "message": "The operation failed."}
            raise ArmError(500, error["code"], error["message"])

    def _op_url(self, op: Operation, kind: str) -> str:
        return (
            f"{self.base_url}/subscriptions/{self.subscription_id}/providers/{PROVIDER}/locations/"
            f"{self.location}/{kind}/{op.op_id}?api-version=2026-10-01"
        )

    def _restart(self, request: Request, body: Any, rg: str, name: str) -> Answer:
        server, _ = self._find(rg, name)
        if server is None:
            message = "Restart with failover is not supported on a replica."
            raise ArmError(400, "OperationNotSupportedOnReplica", message)
        params = body if isinstance(body, dict) else {}
        mode = self._failover_mode(server, params) if params.get("restartWithFailover") is True else None
        with self._lock:
            if server.busy:
                message = f"Server '{server.name}' is busy with another operation. Please try again later."
                raise ArmError(409, "ServerBusy", message)
            if mode and server.ha_state != "Healthy":
                message = f"Server '{server.name}' cannot fail over while its HA state is {server.ha_state}."
                raise ArmError(409, "HighAvailabilityNotHealthy", message)
            server.busy = True
            op = Operation(op_id=str(uuid.uuid4()), started_at=_now())
            self._operations[op.op_id] = op
        if mode is not None:
            self._spawn(f"failover-{server.name}", self._run_failover, server, op, mode[1], mode[0])
        else:
            self._spawn(f"restart-{server.name}", self._run_restart, server, op)
        headers = {
            "Azure-AsyncOperation": self._op_url(op, "azureAsyncOperation"),
            "Location": self._op_url(op, "operationResults"),
            "Retry-After": "1",
        }
        return 202, headers, None

    @staticmethod
    def _failover_mode(server: EmulatedServer, params: dict[str, Any]) -> tuple[str, str]:
        if server.ha_mode == "Disabled":
            message = (
                f"Server '{server.name}' does not have high availability enabled; restart with failover "
                "only works if the server has high availability enabled."
            )
            raise ArmError(400, "HighAvailabilityNotEnabled", message)
        text = params.get("failoverMode") or "PlannedFailover"
        mode = FAILOVER_MODES.get(str(text).lower())
        if mode is None:
            message = (
                f"Invalid value '{text}' for failoverMode. Allowed values: "
                "PlannedFailover, ForcedFailover, PlannedSwitchover, ForcedSwitchover."
            )
            raise ArmError(400, "InvalidParameterValue", message)
        return mode

    # ------------------------------------------------------------------ background work

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"arm-emulator-{name}", daemon=True)
        with self._lock:
            self._workers = [t for t in self._workers if t.is_alive()]
            self._workers.append(thread)
        thread.start()

    def _finish(self, op: Operation | None, failure: str | None = None) -> None:
        """Succeeded, or Failed with an InternalServerError saying ``failure``."""
        error = None if failure is None else {"code": "InternalServerError", "message": failure}
        if op is not None:
            with self._lock:
                op.status, op.error, op.ended_at = "Succeeded" if error is None else "Failed", error, _now()

    def _run_failover(
        self,
        server: EmulatedServer,
        op: Operation | None,
        how: str,
        mode_name: str,
        on_healthy: Callable[[], None] | None = None,
        ha_phase: str = "FailingOver",
        state_during: str | None = None,
    ) -> None:
        """``ha_phase`` (pair fails over) -> zones swapped -> ReplicatingData (rebuild) -> Healthy.

        ``how`` is planned / forced (a request, a maintenance, a scaling) or unplanned (the
        watchdog). ``ha_phase`` is FailingOver, or ComputeUpdatingByFailover for a scaling;
        ``state_during`` the server state meanwhile (e.g. Updating); ``on_healthy`` runs once the
        standby is healthy again. The operation (if any) succeeds once the new primary serves, as
        the restart call returns before the rebuild ends.
        """
        phase, pair = "failing over", server.pair
        try:
            during = {"state": state_during} if state_during is not None else {}
            self._set(server, f"{mode_name}: failing over", ha_state=ha_phase, **during)
            self._stop.wait(self.min_phase_seconds)
            if pair is None:
                self._stop.wait(self.fake_step_seconds)
            elif how == "unplanned":
                pgpair.promote_standby(pair)
            else:
                pgpair.failover(pair, mode="planned" if how == "planned" else "forced")
            zones = {"primary_zone": server.standby_zone, "standby_zone": server.primary_zone}
            self._set(server, f"{mode_name}: standby promoted", **zones)
            self._finish(op)
            phase = "rebuilding the standby"
            self._set(server, f"{mode_name}: rebuilding standby", ha_state="ReplicatingData")
            if self._stop.wait(self.min_phase_seconds):
                return
            if pair is None:
                self._stop.wait(self.fake_step_seconds)
            else:
                pgpair.rebuild_standby(pair)
            self._set(server, f"{mode_name}: standby healthy", ha_state="Healthy")
            if on_healthy is not None:
                on_healthy()
        except Exception as exc:
            logger.exception("arm emulator: server %s: %s failed while %s", server.name, mode_name, phase)
            self._finish(op, f"Failover failed while {phase}.")
            self._set(server, f"{mode_name}: failed while {phase}: {type(exc).__name__}")
        finally:
            self._set(server, "operation over", busy=False, failures=0)

    def _run_restart(self, server: EmulatedServer, op: Operation) -> None:
        try:
            self._set(server, "restart requested", state="Restarting")
            self._stop.wait(self.min_phase_seconds)
            if server.pair is not None:
                pgpair.restart_node(server.pair, server.pair.primary)
            else:
                self._stop.wait(self.fake_step_seconds)
            self._set(server, "restart done", state="Ready")
            self._finish(op)
        except Exception:
            logger.exception("arm emulator: server %s: restart failed", server.name)
            self._finish(op, "Restart failed.")
            self._set(server, "restart failed", state="Ready")
        finally:
            self._set(server, "restart over", busy=False)

    def _watchdog_loop(self) -> None:
        """Azure's health monitor: 3 failed pings of a Healthy server's primary -> unplanned failover."""
        while not self._stop.wait(self.watchdog_interval):
            with self._lock:
                watched = [
                    s for s in self._servers.values() if s.pair is not None and s.ha_mode != "Disabled"
                ]
            for server in watched:
                if not self._stop.is_set():
                    self._watch(server)

    def _watch(self, server: EmulatedServer) -> None:
        pair = server.pair
        assert pair is not None
        with self._lock:
            if not self.watchdog_enabled or server.busy or server.ha_state != "Healthy" or pair.stopped:
                server.failures = 0
                return
        alive = pgpair.ping(pair, pair.primary)
        with self._lock:
            if server.busy:
                return
            server.failures = 0 if alive else server.failures + 1
            trigger = server.failures >= self.watchdog_failures
            server.busy = trigger
        if not alive:
            logger.warning(
                "arm emulator: server %s: primary did not answer (%d)", server.name, server.failures
            )
        if trigger:
            self._spawn(
                f"unplanned-{server.name}", self._run_failover, server, None, "unplanned", "unplanned"
            )
