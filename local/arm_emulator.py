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
(``schedule_maintenance``, ``run_maintenance``: the event goes InProgress, the platform fails the
server over, the event completes), a compute scale done by failing over (``run_scaling``: HA state
``ComputeUpdatingByFailover``), and same-zone HA converting to zone-redundant
(``convert_to_zone_redundant``: the standby's zone changes, the primary stays, no failover).

What it must not do: listen on anything but 127.0.0.1, check tokens (any ``Bearer`` value is
accepted; only its presence is checked), record the Authorization header, or leave a thread
running after ``stop()`` (every join is bounded).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from local import pgpair
from local.pgpair import PgPair

logger = logging.getLogger(__name__)

PROVIDER = "Microsoft.DBforPostgreSQL"
SERVER_TYPE = f"{PROVIDER}/flexibleServers"
FAILOVER_MODES = {
    "plannedfailover": ("PlannedFailover", "planned"),
    "forcedfailover": ("ForcedFailover", "forced"),
    "plannedswitchover": ("PlannedSwitchover", "planned"),
    "forcedswitchover": ("ForcedSwitchover", "forced"),
}
_DEFAULT_CODES = {
    400: "BadRequest",
    401: "AuthenticationFailed",
    403: "AuthorizationFailed",
    404: "ResourceNotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

_SEG = r"([^/]+)"
_SERVERS_RG = re.compile(
    rf"^/subscriptions/{_SEG}/resourceGroups/{_SEG}/providers/{PROVIDER}/flexibleServers/?$", re.IGNORECASE
)
_SERVERS_SUB = re.compile(rf"^/subscriptions/{_SEG}/providers/{PROVIDER}/flexibleServers/?$", re.IGNORECASE)
_SERVER = re.compile(
    rf"^/subscriptions/{_SEG}/resourceGroups/{_SEG}/providers/{PROVIDER}/flexibleServers/{_SEG}(/[^/]+)?/?$",
    re.IGNORECASE,
)
_MAINTENANCE_EVENT = re.compile(
    rf"^/subscriptions/{_SEG}/resourceGroups/{_SEG}/providers/{PROVIDER}/flexibleServers/{_SEG}"
    rf"/maintenanceEvents/{_SEG}/?$",
    re.IGNORECASE,
)
MAINTENANCE_TYPE = f"{SERVER_TYPE}/maintenanceEvents"
# Statuses the Past filter returns; every other status (an unknown one too) is Upcoming.
_PAST_MAINTENANCE = frozenset({"complete", "canceled"})
_OPERATION = re.compile(
    rf"^/subscriptions/{_SEG}/providers/{PROVIDER}/locations/{_SEG}/(azureAsyncOperation|operationResults)/{_SEG}/?$",
    re.IGNORECASE,
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ArmError(Exception):
    """An ARM error answer: status plus ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class ReplicaSpec:
    """A read replica of an emulated server (itself listed as a server with HA Disabled)."""

    name: str
    location: str | None = None
    replication_state: str = "Active"
    zone: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    monotonic: float
    at: datetime
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
    description: str = "Planned maintenance: minor version and security updates."
    deferrable: bool = True
    original_start_time: datetime | None = None
    last_updated_time: datetime = field(default_factory=_now)

    @property
    def past(self) -> bool:
        return self.status.lower() in _PAST_MAINTENANCE

    def to_json(self, server_id: str) -> dict[str, Any]:
        props: dict[str, Any] = {
            "maintenanceEventId": self.event_id,
            "maintenanceType": "PlannedMaintenance",
            "description": self.description,
            "status": self.status,
            "startTime": _iso(self.start_time),
            "endTime": _iso(self.end_time),
            "deferrable": self.deferrable,
            "originalStartTime": _iso(self.original_start_time or self.start_time),
            "lastUpdatedTime": _iso(self.last_updated_time),
        }
        if self.estimated_downtime is not None:
            props["estimatedDowntime"] = self.estimated_downtime
        if self.deferrable:
            props["deferralDeadline"] = _iso(self.start_time + timedelta(days=14))
        return {
            "id": f"{server_id}/maintenanceEvents/{self.event_id}",
            "name": self.event_id,
            "type": MAINTENANCE_TYPE,
            "properties": props,
        }


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

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{SERVER_TYPE}/{self.name}"
        )

    def to_json(self) -> dict[str, Any]:
        ha: dict[str, Any] = {"mode": self.ha_mode, "state": self.ha_state}
        if self.ha_mode != "Disabled" and self.standby_zone is not None:
            ha["standbyAvailabilityZone"] = self.standby_zone
        props: dict[str, Any] = {
            "state": self.state,
            "version": self.version,
            "fullyQualifiedDomainName": f"{self.name}.postgres.database.azure.com",
            "administratorLogin": "pgadmin",
            "replicationRole": "Primary",
            "replicaCapacity": 5,
            "highAvailability": ha,
            "storage": {"storageSizeGB": 128, "autoGrow": "Disabled", "tier": "P10"},
            "network": {"publicNetworkAccess": "Disabled"},
        }
        if self.primary_zone is not None:
            props["availabilityZone"] = self.primary_zone
        return {
            "id": self.resource_id,
            "name": self.name,
            "type": SERVER_TYPE,
            "location": self.location,
            "tags": {},
            "sku": {"name": self.sku_name, "tier": "GeneralPurpose"},
            "properties": props,
        }

    def replica_json(self, replica: ReplicaSpec) -> dict[str, Any]:
        return {
            "id": (
                f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/{SERVER_TYPE}/{replica.name}"
            ),
            "name": replica.name,
            "type": SERVER_TYPE,
            "location": replica.location or self.location,
            "tags": {},
            "sku": {"name": "Standard_D2ds_v5", "tier": "GeneralPurpose"},
            "properties": {
                "state": "Ready",
                "version": self.version,
                "fullyQualifiedDomainName": f"{replica.name}.postgres.database.azure.com",
                "replicationRole": "AsyncReplica",
                "replicaCapacity": 0,
                "replica": {
                    "role": "AsyncReplica",
                    "capacity": 0,
                    "replicationState": replica.replication_state,
                },
                "sourceServerResourceId": self.resource_id,
                "highAvailability": {"mode": "Disabled", "state": "NotEnabled"},
                **({"availabilityZone": replica.zone} if replica.zone else {}),
            },
        }


@dataclass
class Operation:
    op_id: str
    server_key: tuple[str, str]
    kind: str
    started_at: datetime
    status: str = "InProgress"
    ended_at: datetime | None = None
    error: dict[str, str] | None = None

    def to_json(self, path: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": path,
            "name": self.op_id,
            "status": self.status,
            "startTime": _iso(self.started_at),
        }
        if self.ended_at is not None:
            body["endTime"] = _iso(self.ended_at)
        if self.error is not None:
            body["error"] = dict(self.error)
        return body


@dataclass
class Injection:
    pattern: re.Pattern[str]
    status: int | None
    remaining: int
    method: str | None = None
    retry_after: float | None = None
    code: str | None = None
    message: str | None = None
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


class ArmEmulator:
    """Emulated flexible servers behind a loopback HTTP endpoint (``base_url`` after ``start()``)."""

    def __init__(
        self,
        *,
        subscription_id: str,
        location: str = "eastus",
        port: int = 0,
        page_size: int = 50,
        watchdog_interval: float = 0.5,
        watchdog_failures: int = 3,
        min_phase_seconds: float = 0.0,
        fake_step_seconds: float = 0.2,
        poll_retry_after: int | None = None,
    ) -> None:
        self.subscription_id = subscription_id
        self.location = location
        self.page_size = page_size
        self.watchdog_interval = watchdog_interval
        self.watchdog_failures = watchdog_failures
        self.watchdog_enabled = True
        # Each reported HA phase lasts at least this long (so pollers can see FailingOver).
        self.min_phase_seconds = min_phase_seconds
        # Duration of each phase of a failover of a server not backed by a pair.
        self.fake_step_seconds = fake_step_seconds
        # Retry-After on InProgress polls (None: the client's polling_interval decides).
        self.poll_retry_after = poll_retry_after
        self._port = port
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._servers: dict[tuple[str, str], EmulatedServer] = {}
        self._operations: dict[str, Operation] = {}
        self._injections: list[Injection] = []
        self._requests: list[RecordedRequest] = []
        self._workers: list[threading.Thread] = []
        self._http: _HttpServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._watchdog_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ArmEmulator:
        if self._http is not None:
            return self
        self._stop.clear()
        self._http = _HttpServer(("127.0.0.1", self._port), _Handler, self)
        self._port = int(self._http.server_address[1])
        self._serve_thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="arm-emulator-http",
            daemon=True,
        )
        self._serve_thread.start()
        self._watchdog_thread = threading.Thread(
            target=self._watchdog_loop, name="arm-emulator-watchdog", daemon=True
        )
        self._watchdog_thread.start()
        logger.info("arm emulator listening on %s (subscription %s)", self.base_url, self.subscription_id)
        return self

    def stop(self, *, timeout: float = 60) -> None:
        """Stop serving and join every thread (bounded); running failovers finish their step first."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        http = self._http
        if http is not None:
            http.shutdown()
            http.server_close()
            http.close_connections(deadline=min(deadline, time.monotonic() + 5))
        for thread in [self._serve_thread, self._watchdog_thread, *self._workers]:
            if thread is not None and thread.is_alive():
                thread.join(timeout=max(0.1, deadline - time.monotonic()))
                if thread.is_alive():
                    logger.error("arm emulator: thread %s still running after stop", thread.name)
        self._http = None
        self._serve_thread = None
        self._watchdog_thread = None
        self._workers = [t for t in self._workers if t.is_alive()]
        logger.info("arm emulator stopped")

    def __enter__(self) -> ArmEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ servers

    def resource_id(self, resource_group: str, name: str) -> str:
        scope = f"/subscriptions/{self.subscription_id}/resourceGroups/{resource_group}"
        return f"{scope}/providers/{SERVER_TYPE}/{name}"

    def add_server(
        self,
        resource_group: str,
        name: str,
        *,
        pair: PgPair | None = None,
        ha_mode: str = "ZoneRedundant",
        zones: tuple[str, str] = ("1", "2"),
        replicas: Sequence[str | ReplicaSpec] = (),
        location: str | None = None,
    ) -> str:
        """Add an emulated server; returns its resource id."""
        if ha_mode not in ("ZoneRedundant", "SameZone", "Disabled"):
            raise ValueError(f"ha_mode must be ZoneRedundant, SameZone or Disabled, not {ha_mode!r}")
        specs = tuple(r if isinstance(r, ReplicaSpec) else ReplicaSpec(name=r) for r in replicas)
        disabled = ha_mode == "Disabled"
        server = EmulatedServer(
            subscription_id=self.subscription_id,
            resource_group=resource_group,
            name=name,
            location=location or self.location,
            ha_mode=ha_mode,
            primary_zone=zones[0],
            standby_zone=None if disabled else (zones[0] if ha_mode == "SameZone" else zones[1]),
            ha_state="NotEnabled" if disabled else "Healthy",
            pair=pair,
            replicas=specs,
        )
        with self._lock:
            key = (resource_group.lower(), name.lower())
            if key in self._servers:
                raise ValueError(f"server {name} already exists in {resource_group}")
            self._servers[key] = server
            self._record_history(server, "created")
        logger.info("arm emulator: added server %s (ha %s, pair %s)", name, ha_mode, "yes" if pair else "no")
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
        self,
        resource_group: str,
        name: str,
        *,
        state: str | None = None,
        ha_state: str | None = None,
        ha_mode: str | None = None,
        primary_zone: str | None = None,
        standby_zone: str | None = None,
        reason: str = "update_server",
    ) -> None:
        """Change what the emulator reports (for tests of states the pair cannot produce)."""
        with self._lock:
            server = self.server(resource_group, name)
            if state is not None:
                server.state = state
            if ha_state is not None:
                server.ha_state = ha_state
            if ha_mode is not None:
                server.ha_mode = ha_mode
            if primary_zone is not None:
                server.primary_zone = primary_zone
            if standby_zone is not None:
                server.standby_zone = standby_zone
            self._record_history(server, reason)

    # ------------------------------------------------------------------ platform work (2026-10-01)

    def schedule_maintenance(
        self,
        resource_group: str,
        name: str,
        *,
        start: datetime,
        duration: timedelta = timedelta(hours=1),
        status: str = "Planned",
        estimated_downtime: str | None = "PT60S",
        event_id: str | None = None,
    ) -> str:
        """Announce a maintenance event (as Azure does 5 days ahead); returns its id."""
        event = EmulatedMaintenance(
            event_id=event_id or f"{uuid.uuid4().hex[:4].upper()}-{uuid.uuid4().hex[:3].upper()}",
            status=status,
            start_time=start,
            end_time=start + duration,
            estimated_downtime=estimated_downtime,
        )
        with self._lock:
            server = self.server(resource_group, name)
            server.maintenance.append(event)
            self._record_history(server, f"maintenance {event.event_id} scheduled ({status})")
        return event.event_id

    def set_maintenance_status(self, resource_group: str, name: str, event_id: str, status: str) -> None:
        with self._lock:
            server = self.server(resource_group, name)
            event = self._maintenance(server, event_id)
            event.status = status
            event.last_updated_time = _now()
            self._record_history(server, f"maintenance {event_id}: {status}")

    def run_maintenance(self, resource_group: str, name: str, event_id: str) -> None:
        """The platform's maintenance: the event goes InProgress, the server fails over (planned,
        platform-initiated: no restart request, no activity log), the event completes once the
        standby is healthy again. Returns at once; ``wait_for`` the outcome."""
        server = self._claim(resource_group, name, "a maintenance")
        with self._lock:
            event = self._maintenance(server, event_id)
            event.status = "InProgress"
            event.start_time = min(event.start_time, _now())
            event.end_time = max(event.end_time, _now() + timedelta(minutes=30))
            event.last_updated_time = _now()
            self._record_history(server, f"maintenance {event_id}: InProgress")

        def complete() -> None:
            self.set_maintenance_status(resource_group, name, event_id, "Complete")

        self._spawn(
            f"maintenance-{server.name}",
            self._run_failover,
            server,
            None,
            "planned",
            "maintenance",
            "FailingOver",
            None,
            complete,
        )

    def run_scaling(self, resource_group: str, name: str, *, sku_name: str = "Standard_D4ds_v5") -> None:
        """Near-zero-downtime scaling: HA state ``ComputeUpdatingByFailover`` while the server fails
        over to the resized standby, then the old primary is rebuilt. Returns at once."""
        server = self._claim(resource_group, name, "a compute scale")

        def resized() -> None:
            self._set(server, f"compute scaled to {sku_name}", sku_name=sku_name, state="Ready")

        self._spawn(
            f"scaling-{server.name}",
            self._run_failover,
            server,
            None,
            "planned",
            "scaling",
            "ComputeUpdatingByFailover",
            "Updating",
            resized,
        )

    def convert_to_zone_redundant(self, resource_group: str, name: str, *, standby_zone: str) -> None:
        """Same-zone HA converting itself to zone-redundant when capacity appears: the standby is
        recreated in ``standby_zone``; the primary (and its zone) stays. No failover."""
        server = self._claim(resource_group, name, "a conversion to zone-redundant")
        if server.ha_mode != "SameZone":
            with self._lock:
                server.busy = False
            raise ValueError(f"server {name} is {server.ha_mode}, not SameZone")

        def convert() -> None:
            try:
                self._set(server, "standby being recreated in another zone", ha_state="RecreatingStandby")
                self._hold()
                self._stop.wait(self.fake_step_seconds)
                self._set(
                    server,
                    f"converted to zone-redundant (standby zone {standby_zone})",
                    ha_mode="ZoneRedundant",
                    standby_zone=standby_zone,
                    ha_state="Healthy",
                )
            finally:
                with self._lock:
                    server.busy = False

        self._spawn(f"convert-{server.name}", convert)

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
    def _maintenance(server: EmulatedServer, event_id: str) -> EmulatedMaintenance:
        for event in server.maintenance:
            if event.event_id.lower() == event_id.lower():
                return event
        raise KeyError(f"server {server.name} has no maintenance event {event_id}")

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
        for _ in range(int(timeout / 0.05) + 2):
            with self._lock:
                server = self.server(resource_group, name)
                if predicate(server):
                    return server
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        raise TimeoutError(f"server {name}: condition not reached within {timeout}s")

    def _record_history(self, server: EmulatedServer, reason: str) -> None:
        server.history.append(
            HistoryEntry(
                monotonic=time.monotonic(),
                at=_now(),
                state=server.state,
                ha_state=server.ha_state,
                primary_zone=server.primary_zone,
                standby_zone=server.standby_zone,
                reason=reason,
            )
        )
        logger.info(
            "arm emulator: server %s state=%s ha=%s zones=%s/%s (%s)",
            server.name,
            server.state,
            server.ha_state,
            server.primary_zone,
            server.standby_zone,
            reason,
        )

    def _set(self, server: EmulatedServer, reason: str, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(server, key, value)
            self._record_history(server, reason)

    # ------------------------------------------------------------------ fault injection and records

    def inject(
        self,
        path_regex: str,
        status: int,
        count: int = 1,
        *,
        retry_after: float | None = None,
        method: str | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """The next ``count`` requests matching ``path_regex`` get ``status`` and an ARM error body."""
        with self._lock:
            self._injections.append(
                Injection(
                    pattern=re.compile(path_regex, re.IGNORECASE),
                    status=status,
                    remaining=count,
                    method=method.upper() if method else None,
                    retry_after=retry_after,
                    code=code,
                    message=message,
                )
            )

    def inject_delay(
        self, path_regex: str, seconds: float, count: int = 1, *, method: str | None = None
    ) -> None:
        """The next ``count`` matching requests are answered normally, but only after ``seconds``."""
        with self._lock:
            self._injections.append(
                Injection(
                    pattern=re.compile(path_regex, re.IGNORECASE),
                    status=None,
                    remaining=count,
                    method=method.upper() if method else None,
                    delay=seconds,
                )
            )

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

    def _take_injection(self, method: str, path: str) -> Injection | None:
        with self._lock:
            for injection in self._injections:
                if injection.remaining <= 0:
                    continue
                if injection.method is not None and injection.method != method:
                    continue
                if injection.pattern.search(path):
                    injection.remaining -= 1
                    return injection
            self._injections = [i for i in self._injections if i.remaining > 0]
        return None

    # ------------------------------------------------------------------ request handling

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        """Route one request; returns (status, headers, JSON body or None)."""
        split = urlsplit(raw_path)
        path = unquote(split.path)
        query = parse_qs(split.query)
        parsed_body: Any = None
        if body:
            try:
                parsed_body = json.loads(body)
            except ValueError:
                parsed_body = body[:200].decode(errors="replace")
        try:
            status, out_headers, out = self._route(method, path, query, headers, parsed_body, raw_body=body)
        except ArmError as err:
            status, out_headers, out = (
                err.status,
                dict(err.headers),
                {"error": {"code": err.code, "message": err.message}},
            )
        except Exception as exc:  # an emulator bug: answer like ARM would, and say so in the log
            logger.exception("arm emulator: %s %s failed", method, path)
            status, out_headers, out = (
                500,
                {},
                {"error": {"code": "InternalServerError", "message": type(exc).__name__}},
            )
        kept = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}
        with self._lock:
            self._requests.append(RecordedRequest(method, path, query, kept, parsed_body, status, _now()))
        return status, out_headers, out

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: Any,
        *,
        raw_body: bytes,
    ) -> tuple[int, dict[str, str], Any]:
        injection = self._take_injection(method, path)
        if injection is not None:
            if injection.delay > 0:
                self._stop.wait(injection.delay)
            if injection.status is not None:
                extra = {}
                if injection.retry_after is not None:
                    extra["Retry-After"] = _retry_after_text(injection.retry_after)
                raise ArmError(
                    injection.status,
                    injection.code or _DEFAULT_CODES.get(injection.status, "Error"),
                    injection.message or f"Injected failure {injection.status} for {method} {path}.",
                    extra,
                )
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
            raise ArmError(
                401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        if not query.get("api-version"):
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if m := _OPERATION.match(path):
            self._check_subscription(m.group(1))
            return self._operation(method, path, m.group(3), m.group(4))
        if m := _MAINTENANCE_EVENT.match(path):
            self._check_subscription(m.group(1))
            server = self._find(m.group(2), m.group(3))
            if method != "GET":
                raise ArmError(405, "MethodNotAllowed", f"{method} is not allowed here.")
            with self._lock:
                try:
                    event = self._maintenance(server, m.group(4))
                except KeyError:
                    raise ArmError(
                        404, "ResourceNotFound", f"The maintenance event '{m.group(4)}' was not found."
                    ) from None
                return 200, {}, event.to_json(server.resource_id)
        if m := _SERVER.match(path):
            self._check_subscription(m.group(1))
            server = self._find(m.group(2), m.group(3))
            action = (m.group(4) or "").strip("/").lower()
            if action == "" and method == "GET":
                with self._lock:
                    return 200, {}, server.to_json()
            if action == "replicas" and method == "GET":
                with self._lock:
                    return 200, {}, {"value": [server.replica_json(r) for r in server.replicas]}
            if action == "restart" and method == "POST":
                return self._restart(server, body)
            if action == "maintenanceevents" and method == "GET":
                return self._maintenance_listing(server, query)
            raise ArmError(
                405 if action in ("", "replicas", "restart", "maintenanceevents") else 404,
                "NotSupported",
                f"{method} {path} is not supported.",
            )
        if m := _SERVERS_RG.match(path):
            self._check_subscription(m.group(1))
            if method != "GET":
                raise ArmError(405, "MethodNotAllowed", f"{method} is not allowed here.")
            rg = m.group(2).lower()
            return self._listing(path, query, lambda s: s.resource_group.lower() == rg)
        if m := _SERVERS_SUB.match(path):
            self._check_subscription(m.group(1))
            if method != "GET":
                raise ArmError(405, "MethodNotAllowed", f"{method} is not allowed here.")
            return self._listing(path, query, lambda s: True)
        raise ArmError(404, "InvalidResourceType", f"The resource type could not be found for path '{path}'.")

    def _check_subscription(self, subscription_id: str) -> None:
        if subscription_id.lower() != self.subscription_id.lower():
            raise ArmError(
                404, "SubscriptionNotFound", f"The subscription '{subscription_id}' could not be found."
            )

    def _find(self, resource_group: str, name: str) -> EmulatedServer:
        with self._lock:
            server = self._servers.get((resource_group.lower(), name.lower()))
            if server is not None:
                return server
            for parent in self._servers.values():
                if parent.resource_group.lower() != resource_group.lower():
                    continue
                for replica in parent.replicas:
                    if replica.name.lower() == name.lower():
                        return _ReplicaServer(parent, replica)
        raise ArmError(
            404,
            "ResourceNotFound",
            f"The Resource '{SERVER_TYPE}/{name}' under resource group '{resource_group}' was not found. "
            "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
        )

    def _maintenance_listing(
        self, server: EmulatedServer, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, str], Any]:
        wanted = query.get("maintenanceStatus", [None])[0]
        if wanted is not None and wanted.lower() not in ("upcoming", "past"):
            raise ArmError(
                400,
                "InvalidParameterValue",
                f"Invalid maintenanceStatus '{wanted}'. Allowed: Upcoming, Past.",
            )
        with self._lock:
            events = sorted(server.maintenance, key=lambda e: e.start_time)
            if wanted is not None:
                past = wanted.lower() == "past"
                events = [e for e in events if e.past == past]
            return 200, {}, {"value": [e.to_json(server.resource_id) for e in events]}

    def _listing(
        self, path: str, query: dict[str, list[str]], keep: Callable[[EmulatedServer], bool]
    ) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            items: list[dict[str, Any]] = []
            for server in sorted(
                self._servers.values(), key=lambda s: (s.resource_group.lower(), s.name.lower())
            ):
                if keep(server):
                    items.append(server.to_json())
                    items.extend(server.replica_json(r) for r in server.replicas)
        try:
            start = int(query.get("$skiptoken", ["0"])[0])
        except ValueError as exc:
            raise ArmError(400, "InvalidSkipToken", "The $skiptoken is invalid.") from exc
        size = max(1, self.page_size)
        page = items[start : start + size]
        body: dict[str, Any] = {"value": page}
        if start + size < len(items):
            api_version = query.get("api-version", ["2026-10-01"])[0]
            body["nextLink"] = f"{self.base_url}{path}?api-version={api_version}&$skiptoken={start + size}"
        return 200, {}, body

    def _operation(self, method: str, path: str, kind: str, op_id: str) -> tuple[int, dict[str, str], Any]:
        if method != "GET":
            raise ArmError(405, "MethodNotAllowed", f"{method} is not allowed here.")
        with self._lock:
            op = self._operations.get(op_id)
            if op is None:
                raise ArmError(404, "OperationNotFound", f"The operation '{op_id}' was not found.")
            done = op.status != "InProgress"
            if kind.lower() == "azureasyncoperation":
                headers = {}
                if not done and self.poll_retry_after is not None:
                    headers["Retry-After"] = str(self.poll_retry_after)
                return 200, headers, op.to_json(path)
            # operationResults (the Location URL)
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

    def _restart(self, server: EmulatedServer, body: Any) -> tuple[int, dict[str, str], Any]:
        if isinstance(server, _ReplicaServer):
            raise ArmError(
                400, "OperationNotSupportedOnReplica", "Restart with failover is not supported on a replica."
            )
        params = body if isinstance(body, dict) else {}
        with_failover = params.get("restartWithFailover") is True
        mode_text = params.get("failoverMode")
        mode: tuple[str, str] | None = None
        if with_failover:
            if server.ha_mode == "Disabled":
                raise ArmError(
                    400,
                    "HighAvailabilityNotEnabled",
                    f"Server '{server.name}' does not have high availability enabled; restart with failover "
                    "only works if the server has high availability enabled.",
                )
            if mode_text is None:
                mode_text = "PlannedFailover"
            mode = FAILOVER_MODES.get(str(mode_text).lower())
            if mode is None:
                raise ArmError(
                    400,
                    "InvalidParameterValue",
                    f"Invalid value '{mode_text}' for failoverMode. Allowed values: "
                    "PlannedFailover, ForcedFailover, PlannedSwitchover, ForcedSwitchover.",
                )
        with self._lock:
            if server.busy:
                raise ArmError(
                    409,
                    "ServerBusy",
                    f"Server '{server.name}' is busy with another operation. Please try again later.",
                )
            if with_failover and server.ha_state != "Healthy":
                raise ArmError(
                    409,
                    "HighAvailabilityNotHealthy",
                    f"Server '{server.name}' cannot fail over while its high availability state "
                    f"is {server.ha_state}.",
                )
            server.busy = True
            op = Operation(
                op_id=str(uuid.uuid4()),
                server_key=(server.resource_group.lower(), server.name.lower()),
                kind="failover" if mode else "restart",
                started_at=_now(),
            )
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

    # ------------------------------------------------------------------ background work

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"arm-emulator-{name}", daemon=True)
        with self._lock:
            self._workers = [t for t in self._workers if t.is_alive()]
            self._workers.append(thread)
        thread.start()

    def _hold(self) -> None:
        if self.min_phase_seconds > 0:
            self._stop.wait(self.min_phase_seconds)

    def _finish(self, op: Operation | None, status: str, error: dict[str, str] | None = None) -> None:
        if op is None:
            return
        with self._lock:
            op.status = status
            op.error = error
            op.ended_at = _now()

    def _run_failover(
        self,
        server: EmulatedServer,
        op: Operation | None,
        how: str,
        mode_name: str,
        ha_phase: str = "FailingOver",
        state_during: str | None = None,
        on_healthy: Callable[[], None] | None = None,
    ) -> None:
        """``ha_phase`` (pair fails over) -> zones swapped -> ReplicatingData (rebuild) -> Healthy.

        ``how`` is planned / forced (a request, a maintenance, a scaling) or unplanned (the
        watchdog). ``ha_phase`` is FailingOver, or ComputeUpdatingByFailover for a scaling;
        ``state_during`` the server state meanwhile (e.g. Updating); ``on_healthy`` runs once the
        standby is healthy again. The operation (if any) succeeds once the new primary serves, as
        the restart call returns before the rebuild ends.
        """
        phase = "failing over"
        try:
            changes: dict[str, Any] = {"ha_state": ha_phase}
            if state_during is not None:
                changes["state"] = state_during
            self._set(server, f"{mode_name}: failing over", **changes)
            self._hold()
            pair = server.pair
            if pair is not None:
                if how == "unplanned":
                    pgpair.promote_standby(pair)
                else:
                    pgpair.failover(pair, mode="planned" if how == "planned" else "forced")
            else:
                self._stop.wait(self.fake_step_seconds)
            self._set(
                server,
                f"{mode_name}: standby promoted",
                primary_zone=server.standby_zone,
                standby_zone=server.primary_zone,
            )
            self._finish(op, "Succeeded")
            phase = "rebuilding the standby"
            self._set(server, f"{mode_name}: rebuilding standby", ha_state="ReplicatingData")
            self._hold()
            if self._stop.is_set():
                return
            if pair is not None:
                pgpair.rebuild_standby(pair)
            else:
                self._stop.wait(self.fake_step_seconds)
            self._set(server, f"{mode_name}: standby healthy", ha_state="Healthy")
            if on_healthy is not None:
                on_healthy()
        except Exception as exc:
            logger.exception("arm emulator: server %s: %s failed while %s", server.name, mode_name, phase)
            self._finish(
                op, "Failed", {"code": "InternalServerError", "message": f"Failover failed while {phase}."}
            )
            self._set(server, f"{mode_name}: failed while {phase}: {type(exc).__name__}")
        finally:
            with self._lock:
                server.busy = False
                server.failures = 0

    def _run_restart(self, server: EmulatedServer, op: Operation) -> None:
        try:
            self._set(server, "restart requested", state="Restarting")
            self._hold()
            if server.pair is not None:
                pgpair.restart_node(server.pair, server.pair.primary)
            else:
                self._stop.wait(self.fake_step_seconds)
            self._set(server, "restart done", state="Ready")
            self._finish(op, "Succeeded")
        except Exception:
            logger.exception("arm emulator: server %s: restart failed", server.name)
            self._finish(op, "Failed", {"code": "InternalServerError", "message": "Restart failed."})
            self._set(server, "restart failed", state="Ready")
        finally:
            with self._lock:
                server.busy = False

    def _watchdog_loop(self) -> None:
        """Azure's health monitor: 3 failed pings of a Healthy server's primary -> unplanned failover."""
        while not self._stop.wait(self.watchdog_interval):
            with self._lock:
                watched = [
                    s for s in self._servers.values() if s.pair is not None and s.ha_mode != "Disabled"
                ]
            for server in watched:
                if self._stop.is_set():
                    return
                with self._lock:
                    if (
                        not self.watchdog_enabled
                        or server.busy
                        or server.ha_state != "Healthy"
                        or (server.pair is not None and server.pair.stopped)
                    ):
                        server.failures = 0
                        continue
                pair = server.pair
                assert pair is not None
                alive = pgpair.ping(pair, pair.primary)
                with self._lock:
                    if server.busy:
                        continue
                    server.failures = 0 if alive else server.failures + 1
                    trigger = server.failures >= self.watchdog_failures
                    if trigger:
                        server.busy = True
                if not alive:
                    logger.warning(
                        "arm emulator: server %s: primary did not answer (%d)", server.name, server.failures
                    )
                if trigger:
                    self._spawn(
                        f"unplanned-{server.name}", self._run_failover, server, None, "unplanned", "unplanned"
                    )


class _ReplicaServer(EmulatedServer):
    """A read replica addressed as a server (GET works; it has no HA and no replicas)."""

    def __init__(self, parent: EmulatedServer, replica: ReplicaSpec) -> None:
        super().__init__(
            subscription_id=parent.subscription_id,
            resource_group=parent.resource_group,
            name=replica.name,
            location=replica.location or parent.location,
            ha_mode="Disabled",
            primary_zone=None,
            standby_zone=None,
            ha_state="NotEnabled",
        )
        self._json = parent.replica_json(replica)

    def to_json(self) -> dict[str, Any]:
        return self._json


def _retry_after_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


# ---------------------------------------------------------------------- HTTP plumbing


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], emulator: ArmEmulator
    ) -> None:
        self.emulator = emulator
        self._conn_lock = threading.Lock()
        self._conns: dict[threading.Thread, socket.socket] = {}
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="arm-emulator-conn",
            daemon=True,
        )
        with self._conn_lock:
            self._conns[thread] = request
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.pop(threading.current_thread(), None)

    def close_connections(self, *, deadline: float) -> None:
        with self._conn_lock:
            conns = list(self._conns.items())
        for _, sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread, _ in conns:
            thread.join(timeout=max(0.05, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "arm-emulator/1"
    timeout = 10  # idle keep-alive connections end on their own

    def _dispatch(self) -> None:
        server = self.server
        assert isinstance(server, _HttpServer)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, 1 << 20)) if length > 0 else b""
        headers = {k: v for k, v in self.headers.items()}
        status, out_headers, out = server.emulator.handle(self.command, self.path, headers, body)
        payload = b"" if out is None else json.dumps(out).encode()
        self.send_response(status)
        if payload:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for key, value in out_headers.items():
            self.send_header(key, value)
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_PATCH = _dispatch
    do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("arm emulator: %s", format % args)


# ---------------------------------------------------------------------- CLI


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.arm_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--subscription-id", default="00000000-0000-0000-0000-000000000000")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--location", default="eastus")
    parser.add_argument("--server", action="append", default=[], help="rg/name (repeatable)")
    parser.add_argument("--pair-dir", type=Path, help="back the first --server by the pgpair in this dir")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    emulator = ArmEmulator(subscription_id=args.subscription_id, location=args.location, port=args.port)
    pair = pgpair.load_pair(args.pair_dir) if args.pair_dir else None
    emulator.start()
    for index, spec in enumerate(args.server or ["rg-local/pg-local"]):
        rg, _, name = spec.partition("/")
        rid = emulator.add_server(rg, name, pair=pair if index == 0 else None)
        print(rid, flush=True)
    print(f"ARM_ENDPOINT={emulator.base_url}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
