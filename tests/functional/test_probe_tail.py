"""Issue 11: a slow management API call never holds the database unwatched.

On the earlier main, sampling stopped at the end of the probe's window while the run still waited
on a management API check that had started before it (2 s per call measured in bench/detection.py):
the database went unwatched until the run returned, and an outage ending in that time was seen
only by the next run (a new watch: no measured downtime, only a bound). Here the Prober runs for
real (its pools, its ordered recorder) against the memory store, a fake management API that
takes `SLOW` seconds on its second call, and a fake database whose writes fail for a while.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from failover.adapters.memory_store import MemoryStore
from failover.incidents import Policy, derive
from failover.ports import DbCheck, ServerView
from failover.probing import Prober, ProbeSchedule
from failover.service import Responder
from failover.sources.probes import Debounce

SERVER = "pg-tail-01"
RID = (
    "/subscriptions/00000000-0000-0000-0000-000000000011/resourcegroups/rg/providers/"
    f"microsoft.dbforpostgresql/flexibleservers/{SERVER}"
)
WINDOW = 1.0  # seconds
SLOW = 1.5  # the second management API call (due 0.6 s into the window) takes this long
POLICY = Policy(quiet=timedelta(seconds=0))


def _now() -> datetime:
    return datetime.now(timezone.utc)


class SlowSecondCall:
    """Healthy; the second `get_server` takes `SLOW` seconds (a throttled or slow management API)."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def get_server(self, resource_id: str) -> ServerView:
        with self.lock:
            self.calls += 1
            slow = self.calls == 2
        if slow:
            time.sleep(SLOW)
        return ServerView(
            resource_id, SERVER, "eastus", "Ready", "ZoneRedundant", "Healthy", "1", "2", None, "Primary"
        )


class TimedOutage:
    """Writes fail from `down` to `up` seconds after the first check; every check's time is kept."""

    def __init__(self, down: float, up: float) -> None:
        self.down, self.up = down, up
        self.first: float | None = None
        self.samples: list[float] = []
        self.lock = threading.Lock()

    def check(self, server: str) -> DbCheck:
        at = time.monotonic()
        with self.lock:
            self.first = at if self.first is None else self.first
            self.samples.append(at)
            ok = not (self.down <= at - self.first < self.up)
        now = _now()
        fault = None if ok else "unreachable"
        return DbCheck(server, now, now, connected=ok, writable=ok, fault=fault)


def _run(db: TimedOutage) -> tuple[MemoryStore, float]:
    store = MemoryStore()
    inspector: Any = SlowSecondCall()  # a fake of the one call the probe makes
    prober = Prober(
        responder=Responder(store=store, clock=_now, policy=POLICY, sleep=lambda _: None),
        clock=_now,
        targets=lambda: (RID,),
        inspector=inspector,
        db_probe=db,
        schedule=ProbeSchedule(
            window=timedelta(seconds=WINDOW),
            arm_interval=0.6,
            db_interval=0.05,
            db_fast_interval=0.05,
            record_grace=5.0,
            debounce=Debounce(outage=timedelta(seconds=0.1), checks=2),
        ),
    )
    prober.run_once()
    return store, time.monotonic()


def test_sampling_goes_on_while_the_run_waits_on_a_slow_management_api_call():
    db = TimedOutage(down=float("inf"), up=float("inf"))  # no outage: only the sampling is looked at
    _, returned = _run(db)

    assert db.first is not None
    assert returned - db.first >= 0.6 + SLOW - 0.1, "the run ended before the slow call did"
    # The database was watched until the run returned, not only until its window ended.
    assert returned - db.samples[-1] < 0.5
    assert max(b - a for a, b in zip(db.samples, db.samples[1:], strict=False)) < 0.5


def test_an_outage_ending_while_a_slow_call_runs_is_measured_in_the_same_watch():
    db = TimedOutage(down=0.7, up=1.3)  # ends after the window, while the slow call still runs
    store, _ = _run(db)

    state, _ = store.read_state(SERVER)
    assert state is not None
    (incident,) = derive(state, now=_now() + timedelta(hours=1), policy=POLICY)
    assert incident.primary_restored_at is not None, "the end of the outage was not seen by this run"
    assert incident.write_downtime_seconds is not None
    assert 0.6 - 0.15 <= incident.write_downtime_seconds <= 0.6 + 0.3
