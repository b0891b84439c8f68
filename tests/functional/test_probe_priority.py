"""Issue 15: a detected failover is recorded before any more management API checks start.

Found by the fleet benchmark (`make bench-fleet`): one recording pool runs both the management API
checks and the recording of what the database sampler saw, and on the earlier main the dispatcher
handed every due check to the pool at once. With checks overdue (a slow or throttled management API,
a starved machine), a failover's signal queued behind all of them: 12 to 20 s to record a failover
of one of 500 servers. Here the Prober runs for real (its pools, its dispatcher) over 30 servers
with two recording workers and a management API that takes 0.2 s per call (always overdue), against
the memory store; one server's writes stop 1.2 s in.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from failover.adapters.memory_store import MemoryStore
from failover.incidents import Policy
from failover.model import Signal
from failover.ports import DbCheck, ServerView
from failover.probing import Prober, ProbeSchedule
from failover.service import RecordOutcome, Responder
from failover.sources.probes import Debounce
from tests.probe_fakes import CountingInspector

SERVERS = [f"pg-busy-{n:02d}" for n in range(30)]
FAILING = SERVERS[7]
RECORD_WORKERS = 2


def _rid(server: str) -> str:
    return (
        "/subscriptions/00000000-0000-0000-0000-000000000015/resourcegroups/rg/providers/"
        f"microsoft.dbforpostgresql/flexibleservers/{server}"
    )


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Log:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[str] = []

    def add(self, event: str) -> None:
        with self.lock:
            self.events.append(event)


class SlowInspector:
    def __init__(self, log: Log) -> None:
        self.log = log

    def get_server(self, resource_id: str) -> ServerView:
        self.log.add("arm")
        time.sleep(0.2)
        server = resource_id.rsplit("/", 1)[1]
        return ServerView(
            resource_id, server, "eastus", "Ready", "ZoneRedundant", "Healthy", "1", "2", None, "Primary"
        )


class OneServerDown:
    def __init__(self, log: Log) -> None:
        self.log = log
        self.started: float | None = None

    def check(self, server: str) -> DbCheck:
        now = _now()
        self.started = self.started or time.monotonic()
        ok = server != FAILING or time.monotonic() - self.started < 1.2  # checks overdue by then
        if not ok:
            self.log.add("db-failed")
        return DbCheck(server, now, now, connected=ok, writable=ok, fault=None if ok else "unreachable")


class LoggingResponder(Responder):
    log: Log | None = None

    def record(self, signal: Signal) -> RecordOutcome:
        outcome = super().record(signal)
        if self.log is not None and signal.server == FAILING and outcome.status == "recorded":
            self.log.add("recorded")
        return outcome


def test_a_failovers_signal_is_recorded_before_more_overdue_management_api_checks_start():
    log = Log()
    responder = LoggingResponder(store=MemoryStore(), clock=_now, policy=Policy(), sleep=lambda _: None)
    responder.log = log
    inspector: Any = SlowInspector(log)
    prober = Prober(
        responder=responder,
        clock=_now,
        targets=lambda: tuple(_rid(s) for s in SERVERS),
        inspector=inspector,
        db_probe=OneServerDown(log),
        schedule=ProbeSchedule(
            window=timedelta(seconds=2.5),
            arm_interval=0.5,
            db_interval=0.05,
            db_fast_interval=0.05,
            max_workers=4,
            record_workers=RECORD_WORKERS,
            record_grace=5.0,
            debounce=Debounce(outage=timedelta(seconds=0.1), checks=2),
        ),
    )
    prober.run_once()

    events = log.events
    assert "recorded" in events, "the failover was never recorded"
    failed = events.index("db-failed")
    # From the first failed write to the recorded signal (the debounce's 0.1 s included), at most
    # the checks already running when it was handed over may start: none waits in a pool's queue.
    started_between = events[failed : events.index("recorded")].count("arm")
    assert started_between <= 2 * RECORD_WORKERS


def test_a_quiet_management_api_check_is_one_table_request():
    """Issue 15 (cost per 100 servers): a check that finds nothing new read the server's state twice
    and wrote the same view back with a new time: 3 requests every 5 s per server. Now one read."""
    store = MemoryStore()
    inspector = CountingInspector()
    prober = Prober(
        responder=Responder(store=store, clock=_now, policy=Policy()),
        clock=_now,
        targets=lambda: (_rid("pg-quiet-01"),),
        inspector=inspector,
        db_probe=None,
        schedule=ProbeSchedule(window=timedelta(seconds=1.0), arm_interval=0.2),
    )
    prober.run_once()  # the first check keeps the view
    before, checks = store.round_trips, inspector.calls["pg-quiet-01"]
    prober.run_once()
    quiet = inspector.calls["pg-quiet-01"] - checks
    assert quiet >= 3 and store.round_trips - before == quiet
