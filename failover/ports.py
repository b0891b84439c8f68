"""Ports: the shapes the core expects from the outside world, and the values crossing them.

Layer: pure core. Protocols and plain values only; adapters in `failover.adapters` implement
them against real services, tests implement them with fakes. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from failover.model import Topology

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class ReplicaView:
    name: str
    resource_id: str
    fqdn: str | None
    location: str | None
    replication_state: str | None


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


class ServerInspector(Protocol):
    """The management API (Microsoft.DBforPostgreSQL/flexibleServers)."""

    def get_server(self, resource_id: str) -> ServerView: ...

    def list_replicas(self, resource_id: str) -> tuple[ReplicaView, ...]: ...

    def start_failover(self, resource_id: str, mode: str, *, wait: bool = True) -> None: ...

    def discover(self, scopes: tuple[str, ...]) -> tuple[str, ...]: ...


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
    error: str | None = None  # redacted; never holds a password or token

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


class TopologyCache(Protocol):
    def publish(self, topology: Topology, *, epoch: int, patterns: tuple[str, ...] = ()) -> PublishResult: ...

    def read(self, server: str) -> Mapping[str, str]: ...

    def ping(self) -> None: ...


class Notifier(Protocol):
    def post(self, url: str, card: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class Health:
    name: str
    status: str  # ok / degraded / down / not_configured
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
