"""Issue 10, case 3: a probe signal whose recording fails once is derived or retried, never lost.

On the earlier main the database probe's memory advanced before `record` committed, and the management
API probe absorbed the whole server view with the first signal of a batch: one 503 from storage on
`write_restored` left the incident open for ever with no downtime, one on `Healthy` lost the recovery.
Here the Prober runs for real (its sampling thread, its ordered recorder) against the memory store,
with a commit refused once for the signal that matters.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from failover.adapters.memory_store import MemoryStore
from failover.errors import StorageUnavailableError
from failover.incidents import Policy, derive
from failover.model import IncidentStatus, SignalKind
from failover.ports import DbCheck
from failover.probing import Prober, ProbeSchedule
from failover.service import Responder
from failover.sources.probes import Debounce
from tests.probe_fakes import FailingOverInspector

SERVER = "pg-rec-01"
RID = (
    "/subscriptions/00000000-0000-0000-0000-000000000012/resourcegroups/rg/providers/"
    f"microsoft.dbforpostgresql/flexibleservers/{SERVER}"
)
POLICY = Policy(quiet=timedelta(seconds=0))


def _now() -> datetime:
    return datetime.now(timezone.utc)


class RefusesOnce(MemoryStore):
    """Answers 503 to the first commit that records a signal of `kind` (with `ha_state`, if given)."""

    def __init__(self, kind: SignalKind, ha_state: str | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.ha_state = ha_state
        self.refused = 0

    def commit(self, state: Any, etag: Any, *, signal: Any = None, **rest: Any) -> None:
        matches = signal is not None and signal.kind is self.kind
        if matches and self.ha_state is not None:
            matches = signal.details.get("ha_state") == self.ha_state
        if matches and not self.refused:
            self.refused += 1
            raise StorageUnavailableError("table storage answered 503 (injected)")
        super().commit(state, etag, signal=signal, **rest)


class OutageProbe:
    """Writes succeed, fail for a while, then succeed again (calls counted, thread-safe)."""

    def __init__(self, good: int, bad: int) -> None:
        self.calls = 0
        self.good, self.bad = good, bad
        self.lock = threading.Lock()

    def check(self, server: str) -> DbCheck:
        with self.lock:
            self.calls += 1
            n = self.calls
        ok = not (self.good < n <= self.good + self.bad)
        now = _now()
        return DbCheck(
            server, now, now, connected=ok, writable=ok, fault=None if ok else "unreachable", error=None
        )


def _prober(store: MemoryStore, **ports: Any) -> Prober:
    return Prober(
        responder=Responder(store=store, clock=_now, policy=POLICY, sleep=lambda _: None),
        clock=_now,
        targets=lambda: (RID,),
        schedule=ProbeSchedule(
            window=timedelta(seconds=1.5),
            arm_interval=0.2,
            db_interval=0.02,
            db_fast_interval=0.02,
            debounce=Debounce(outage=timedelta(seconds=0.05), checks=3),
        ),
        **ports,
    )


def _incident(store: MemoryStore):
    state, _ = store.read_state(SERVER)
    assert state is not None
    (incident,) = derive(state, now=_now() + timedelta(hours=1), policy=POLICY)
    return incident


def test_a_write_restored_refused_once_is_recorded_again_and_the_downtime_kept():
    store = RefusesOnce(SignalKind.WRITE_RESTORED)
    _prober(store, db_probe=OutageProbe(good=5, bad=8)).run_once()
    assert store.refused == 1
    incident = _incident(store)
    assert incident.primary_restored_at is not None
    assert incident.write_downtime_seconds is not None and incident.write_downtime_seconds > 0
    assert incident.status is IncidentStatus.RESOLVED


def test_a_healthy_ha_state_refused_once_is_derived_again_by_the_next_check():
    store = RefusesOnce(SignalKind.HA_STATE_CHANGED, ha_state="Healthy")  # recorded after the zone move
    _prober(store, inspector=FailingOverInspector(moved_at=3)).run_once()
    assert store.refused == 1
    incident = _incident(store)
    assert incident.ha_state == "Healthy" and incident.primary_zone_after == "2"
    assert incident.status is IncidentStatus.RESOLVED
