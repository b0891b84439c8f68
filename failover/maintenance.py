"""Maintenance use case: read a server's ``maintenanceEvents`` when it matters, hand the probe the
window signals, and keep the upcoming events for people.

Layer: application service. Talks to the management API only through the ``ServerInspector`` port
and never records by itself: the probe records the window signals it is given *before* the
failover evidence of the same check, so an incident opening inside a running maintenance gets the
cause ``maintenance`` from its first decision. A failed read is logged and retried, never raised:
failover evidence is never held back by a maintenance read.

When it reads (at most one read per server per call; ``due``):
- every ``poll`` (``MAINTENANCE_POLL_MINUTES``, default 60), and at once on a worker's first check;
- every ``window_poll`` while a known upcoming event's window is near or open, so the event's
  ``InProgress`` is seen before (or as) the platform fails the server over;
- at most every ``urgent_gap`` while the probe sees a failover (HA state, primary zone change):
  then also the past events that ended within ``recent``, for a maintenance already ``Complete``;
- within a worker's read budget (``ReadBudget``: ARM throttles reads per subscription), urgent
  reads first; a read put off stays due for the server's next check.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from failover.errors import FailoverError
from failover.model import Signal
from failover.ports import Clock, MaintenanceEvent, ServerInspector
from failover.secrets import redact
from failover.sources.maintenance_events import UpcomingMaintenance, upcoming, window_signals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaintenancePolls:
    poll: timedelta = timedelta(minutes=60)
    window_poll: timedelta = timedelta(minutes=1)
    window_lead: timedelta = timedelta(minutes=5)  # how early before a window reads speed up
    # While a failover is seen, its cause may be a maintenance that just started: read often (a
    # failover lasts a minute or two, so this costs a few dozen reads per failover, none otherwise).
    urgent_gap: timedelta = timedelta(seconds=2)
    urgent_near_gap: timedelta = timedelta(seconds=1)
    recent: timedelta = timedelta(hours=1)


@dataclass
class ReadBudget:
    """A token bucket for one worker's maintenance reads (pure: the caller passes the time).

    Azure Resource Manager refills 25 reads a second per subscription and principal, shared by
    every instance and by the probe's listings
    (https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling).
    A cold worker of a 500-server fleet would otherwise read every server's events at its first
    check, at once. Routine reads (first reads, the hourly poll) leave `reserve` tokens to urgent
    ones (a failover in progress, whose cause may be a maintenance), and a refused read stays due
    for the server's next check.
    """

    rate: float = 4.0  # tokens a second
    burst: float = 20.0
    reserve: float = 8.0
    tokens: float = field(init=False)
    at: datetime | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst  # a cold worker starts with a full bucket

    def take(self, now: datetime, *, cost: float, urgent: bool) -> bool:
        if self.at is not None:
            elapsed = max(0.0, (now - self.at).total_seconds())
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.at = now
        if self.tokens - cost < (0.0 if urgent else self.reserve):
            return False
        self.tokens -= cost
        return True


@dataclass(frozen=True)
class _Read:
    at: datetime
    ok: bool
    upcoming: tuple[UpcomingMaintenance, ...] | None = None  # None: never read successfully


def due(last: _Read | None, now: datetime, *, urgent: bool, polls: MaintenancePolls) -> bool:
    """Whether to read a server's maintenance events now (pure)."""
    if last is None:
        return True
    since = now - last.at
    near = last.ok and any(
        u.start_at - polls.window_lead <= now and (u.end_at is None or now <= u.end_at)
        for u in last.upcoming or ()
    )
    if urgent:
        # A failover near an announced window: its status now decides the cause (read at once,
        # at most once a second); otherwise at most every `urgent_gap` while the failover lasts.
        return since >= (polls.urgent_near_gap if near else polls.urgent_gap)
    if not last.ok:
        return since >= polls.window_poll
    return since >= (polls.window_poll if near else polls.poll)


@dataclass
class MaintenanceWatch:
    """Per worker memory of the last read of each server (a cold worker reads at once)."""

    inspector: ServerInspector
    clock: Clock
    polls: MaintenancePolls = field(default_factory=MaintenancePolls)
    budget: ReadBudget = field(default_factory=ReadBudget)
    _reads: dict[str, _Read] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, resource_id: str, server: str, *, urgent: bool = False) -> tuple[Signal, ...]:
        """The window signals of running (or, when urgent, just completed) maintenance, if due."""
        now = self.clock()
        with self._lock:
            last = self._reads.get(server)
            if not due(last, now, urgent=urgent, polls=self.polls):
                return ()
            if not self.budget.take(now, cost=2 if urgent else 1, urgent=urgent):  # urgent: + past
                return ()  # put off: still due at the server's next check
            # Claimed before reading: two threads watching one server never read twice.
            self._reads[server] = _Read(now, ok=False, upcoming=last.upcoming if last else None)
        try:
            events = self.inspector.maintenance_events(resource_id, upcoming=True)
            signals = window_signals(events, resource_id=resource_id, observed_at=now)
            if urgent and not signals:
                past = self.inspector.maintenance_events(resource_id, upcoming=False)
                signals = window_signals(
                    _recent(past, now, self.polls.recent), resource_id=resource_id, observed_at=now
                )
        except FailoverError as error:
            log.warning(
                "maintenance events of server %s: read failed, retried later: %s", server, redact(str(error))
            )
            return ()
        found = upcoming(events, now=now)
        with self._lock:
            self._reads[server] = _Read(now, ok=True, upcoming=found)
        if signals:
            log.info(
                "server %s: maintenance running (%d event(s)); failovers in it are maintenance",
                server,
                len(signals),
            )
        return signals

    def check_hook(self, resource_id: str, server: str, urgent: bool) -> tuple[Signal, ...]:
        """`check` in the shape the probe calls (`Prober.maintenance`)."""
        return self.check(resource_id, server, urgent=urgent)

    def upcoming(self, server: str) -> tuple[UpcomingMaintenance, ...] | None:
        """The upcoming events of the last good read; None when this worker never read them."""
        with self._lock:
            last = self._reads.get(server)
        return last.upcoming if last else None


def _recent(events: tuple[MaintenanceEvent, ...], now: datetime, recent: timedelta) -> list[MaintenanceEvent]:
    return [e for e in events if e.end_at is not None and e.end_at >= now - recent]
