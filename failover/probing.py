"""Probe use case: watch servers through the management API and a PostgreSQL client, record changes.

Layer: application service. Orders the probe's side effects; talks to the outside only through
the ports it is given (`ServerInspector`, `DatabaseProbe`) and records through the `Responder`, so
probe signals get the same de-duplication and concurrency handling as alerts (invariants 1-3).

Why probes: an unplanned failover emits no Activity Log and no Event Grid event
(https://learn.microsoft.com/azure/postgresql/high-availability/concepts-high-availability);
only the server's own state shows it, and only a client can measure the downtime clients saw.

Scheduling inside one invocation (a timer tick every minute, a window of ~50 s):
- with at most `max_workers` servers, every server gets its own watcher for the whole window:
  the management API every `arm_interval`, the database every `db_interval` (every
  `db_fast_interval` while writes fail, so the end of an outage is caught within ~0.2 s);
- with more, one pass checks every server (bounded pool, per-call timeouts, so one slow or
  failing server never delays the others), then the servers that look unwell get watchers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from failover.errors import FailoverError, InspectorError, redact
from failover.incidents import DbProbeState
from failover.ports import Clock, DatabaseProbe, ServerInspector, ServerView
from failover.service import Responder
from failover.sources.probes import DbProbeMemory, diff_check, diff_view, view_dict
from failover.sources.resources import flexible_server_from_resource_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeSchedule:
    window: timedelta = timedelta(seconds=50)
    arm_interval: float = 5.0
    db_interval: float = 0.5
    db_fast_interval: float = 0.2
    max_workers: int = 16
    discovery_interval: timedelta = timedelta(minutes=15)


@dataclass
class ServerHealth:
    server: str
    resource_id: str
    arm: str = "not_checked"  # ok / error / unavailable / not_configured
    arm_error: str | None = None
    db: str = "not_checked"
    db_error: str | None = None
    signals: int = 0
    checked_at: datetime | None = None


@dataclass
class ProbeReport:
    servers: dict[str, ServerHealth] = field(default_factory=dict)

    def summary(self) -> str:
        values = list(self.servers.values())
        arm_bad = sum(1 for s in values if s.arm not in ("ok", "not_configured"))
        db_bad = sum(1 for s in values if s.db not in ("ok", "not_configured"))
        signals = sum(s.signals for s in values)
        return (
            f"{len(values)} servers, {signals} signals,"
            f" management API failing for {arm_bad}, database for {db_bad}"
        )


@dataclass
class Prober:
    responder: Responder
    clock: Clock
    targets: Callable[[], tuple[str, ...]]
    inspector: ServerInspector | None = None
    db_probe: DatabaseProbe | None = None
    schedule: ProbeSchedule = field(default_factory=ProbeSchedule)
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    on_report: Callable[[ProbeReport], None] | None = None
    _fqdn: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fqdn_of(self, server: str) -> str | None:
        with self._lock:
            return self._fqdn.get(server)

    def run_once(self, *, window: timedelta | None = None) -> ProbeReport:
        """One invocation: watch every target until the window ends; never raises for one server."""
        report = ProbeReport()
        deadline = self.monotonic() + (window or self.schedule.window).total_seconds()
        ids = [rid for rid in self.targets() if flexible_server_from_resource_id(rid)]
        for rid in ids:
            server = _server(rid)
            report.servers[server] = ServerHealth(server=server, resource_id=rid)
        workers = max(1, min(self.schedule.max_workers, len(ids)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:
            if len(ids) <= self.schedule.max_workers:
                list(pool.map(lambda rid: self._watch(rid, report, deadline), ids))
            else:
                list(pool.map(lambda rid: self._watch(rid, report, 0.0), ids))
                unwell = [rid for rid in ids if _unwell(report.servers[_server(rid)])]
                list(
                    pool.map(
                        lambda rid: self._watch(rid, report, deadline), unwell[: self.schedule.max_workers]
                    )
                )
        if self.on_report is not None:
            self.on_report(report)
        return report

    # --- one server ---------------------------------------------------------------------------

    def _watch(self, resource_id: str, report: ProbeReport, deadline: float) -> None:
        """Check one server at least once, then keep sampling until `deadline` (monotonic)."""
        health = report.servers[_server(resource_id)]
        memory = self._db_memory(health.server)
        start = self.monotonic()
        next_arm = start if self.inspector is not None else float("inf")
        next_db = start if self.db_probe is not None else float("inf")
        if self.inspector is None:
            health.arm = "not_configured"
        if self.db_probe is None:
            health.db = "not_configured"
        while True:
            now = self.monotonic()
            if now >= next_arm:
                self._arm_check(resource_id, health)
                next_arm = now + self.schedule.arm_interval
            if now >= next_db:
                memory = self._db_check(health, memory)
                failing = (memory is not None and memory.failing) or health.db != "ok"
                next_db = now + (self.schedule.db_fast_interval if failing else self.schedule.db_interval)
            wake = min(next_arm, next_db)
            if wake >= deadline or wake == float("inf"):
                break
            self.sleep(max(0.0, wake - self.monotonic()))
        if memory is not None and self.db_probe is not None:
            try:
                self.responder.save_probe_facts(health.server, db=memory.state)
            except FailoverError as error:
                log.warning(
                    "probe of server %s: could not keep the database bookkeeping: %s",
                    health.server,
                    redact(str(error)),
                )

    def _arm_check(self, resource_id: str, health: ServerHealth) -> None:
        if self.inspector is None:
            health.arm = "not_configured"
            return
        inspector = self.inspector

        def check() -> None:
            view = inspector.get_server(resource_id)
            self._remember(view)
            state, _ = self.responder.store.read_state(view.server)
            now = self.clock()
            signals = diff_view(
                state.topology if state else None,
                view,
                arm_version=state.arm_version if state else 0,
                observed_at=now,
                received_at=now,
            )
            for outcome in self.responder.record_all(signals):
                health.signals += outcome.status == "recorded"
            self.responder.save_probe_facts(view.server, view=view_dict(view), observed_at=now)
            health.checked_at = now

        self._guard(health, "arm", check)

    def _db_check(self, health: ServerHealth, memory: DbProbeMemory | None) -> DbProbeMemory | None:
        if self.db_probe is None or memory is None:
            health.db = "not_configured"
            return memory
        probe = self.db_probe
        result = memory

        def check() -> None:
            nonlocal result
            outcome = probe.check(health.server)
            signals, result = diff_check(
                memory, outcome, resource_id=health.resource_id, received_at=self.clock()
            )
            for recorded in self.responder.record_all(signals):
                health.signals += recorded.status == "recorded"
            if not outcome.ok:
                raise _DbDown(outcome.error or ("read-only" if outcome.connected else "cannot connect"))

        self._guard(health, "db", check)
        return result

    def _db_memory(self, server: str) -> DbProbeMemory | None:
        if self.db_probe is None:
            return None
        try:
            state, _ = self.responder.store.read_state(server)
        except FailoverError:
            return DbProbeMemory(DbProbeState())
        return DbProbeMemory(state.db if state else DbProbeState())

    def _remember(self, view: ServerView) -> None:
        if view.fqdn:
            with self._lock:
                self._fqdn[view.server] = view.fqdn

    def _guard(self, health: ServerHealth, what: str, action: Callable[[], object]) -> None:
        """Run one check; a failure is recorded on the server's health, never raised."""
        try:
            action()
        except _DbDown as down:
            _set(health, what, "unavailable", str(down))
            return
        except InspectorError as error:
            _set(health, what, "error", redact(str(error)))
        except FailoverError as error:
            _set(health, what, "unavailable", redact(str(error)))
        except Exception as error:  # a probe must survive anything one server does
            log.exception("probe of server %s (%s) failed unexpectedly", health.server, what)
            _set(health, what, "error", redact(f"{type(error).__name__}: {error}"))
        else:
            _set(health, what, "ok", None)
            return
        log.warning(
            "probe of server %s: %s check %s: %s",
            health.server,
            what,
            getattr(health, what),
            getattr(health, f"{what}_error"),
        )


class _DbDown(Exception):
    """The database answered, but not as a writable primary (or not at all)."""


def _set(health: ServerHealth, what: str, status: str, message: str | None) -> None:
    setattr(health, what, status)
    setattr(health, f"{what}_error", message)


def _server(resource_id: str) -> str:
    parsed = flexible_server_from_resource_id(resource_id)
    assert parsed is not None
    return parsed[1]


def _unwell(health: ServerHealth) -> bool:
    return health.arm != "ok" or health.db not in ("ok", "not_configured")


class Targets:
    """The watched servers: listed explicitly, plus those discovered in scopes, refreshed periodically."""

    def __init__(
        self,
        listed: tuple[str, ...],
        scopes: tuple[str, ...],
        inspector: ServerInspector | None,
        *,
        clock: Clock,
        refresh: timedelta,
    ) -> None:
        self._listed = listed
        self._scopes = scopes
        self._inspector = inspector
        self._clock = clock
        self._refresh = refresh
        self._found: tuple[str, ...] = ()
        self._found_at: datetime | None = None

    def __call__(self) -> tuple[str, ...]:
        if self._scopes and self._inspector is not None and self._due():
            try:
                self._found = self._inspector.discover(self._scopes)
                self._found_at = self._clock()
            except FailoverError as error:
                log.warning(
                    "discovery failed, keeping %d known servers: %s", len(self._found), redact(str(error))
                )
        return tuple(dict.fromkeys((*self._listed, *self._found)))

    def _due(self) -> bool:
        return self._found_at is None or self._clock() - self._found_at >= self._refresh


__all__ = ["ProbeReport", "ProbeSchedule", "Prober", "ServerHealth", "Targets"]
