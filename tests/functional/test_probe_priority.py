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
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

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
        self.recorded = threading.Event()

    def add(self, event: str) -> None:
        with self.lock:
            self.events.append(event)
        if event == "recorded":
            self.recorded.set()


def _healthy(resource_id: str) -> ServerView:
    server = resource_id.rsplit("/", 1)[1]
    return ServerView(
        resource_id, server, "eastus", "Ready", "ZoneRedundant", "Healthy", "1", "2", None, "Primary"
    )


class SlowInspector:
    def __init__(self, log: Log) -> None:
        self.log = log

    def get_server(self, resource_id: str) -> ServerView:
        self.log.add("arm")
        time.sleep(0.2)
        return _healthy(resource_id)


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


def _responder(kind: type[LoggingResponder] = LoggingResponder, store: MemoryStore | None = None) -> Any:
    responder = kind(store=store or MemoryStore(), clock=_now, policy=Policy(), sleep=lambda _: None)
    responder.log = Log()
    return responder


def _busy_fleet(responder: Responder, inspector: Any, **schedule: Any) -> Prober:
    """The Prober over SERVERS with two recording workers, FAILING's writes stopping 1.2 s in."""
    assert isinstance(responder, LoggingResponder) and responder.log is not None
    settings: dict[str, Any] = {
        "window": timedelta(seconds=2.5),
        "arm_interval": 0.5,
        "db_interval": 0.05,
        "db_fast_interval": 0.05,
        "max_workers": 4,
        "record_workers": RECORD_WORKERS,
        "record_grace": 5.0,
        "debounce": Debounce(outage=timedelta(seconds=0.1), checks=2),
        **schedule,
    }
    return Prober(
        responder=responder,
        clock=_now,
        targets=lambda: tuple(_rid(s) for s in SERVERS),
        inspector=inspector,
        db_probe=OneServerDown(responder.log),
        schedule=ProbeSchedule(**settings),
    )


def test_a_failovers_signal_is_recorded_before_more_overdue_management_api_checks_start():
    responder = _responder()
    log = responder.log
    inspector: Any = SlowInspector(log)
    prober = _busy_fleet(responder, inspector)
    prober.run_once()

    events = log.events
    assert "recorded" in events, "the failover was never recorded"
    failed = events.index("db-failed")
    # From the first failed write to the recorded signal (the debounce's 0.1 s included), at most
    # the checks already running when it was handed over may start: none waits in a pool's queue.
    started_between = events[failed : events.index("recorded")].count("arm")
    assert started_between <= 2 * RECORD_WORKERS


class StuckInspector:
    """A management API that answers nothing until the failover is recorded (or 10 s pass)."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.gave_up = 0  # calls that waited the 10 s: the failover was not recorded meanwhile

    def get_server(self, resource_id: str) -> ServerView:
        if not self.log.recorded.wait(timeout=10):
            self.gave_up += 1
        return _healthy(resource_id)


def test_a_failovers_signal_never_waits_on_management_api_checks_that_hang():
    """Every recording worker may not sit in a management API call at once: one is kept for what the
    database sampler hands over. Measured in the fleet benchmark: with the listing slow, all 8
    workers waited on it and a detected failover stayed unrecorded for 30 s."""
    responder = _responder()
    log = responder.log
    inspector: Any = StuckInspector(log)
    prober = _busy_fleet(responder, inspector)
    prober.run_once()
    assert log.recorded.is_set(), "the failover was never recorded"
    assert inspector.gave_up == 0, "management API checks that hung held the failover's recording"


def _arm_only(
    store: MemoryStore, inspector: Any, server: str, *, window: float, arm_interval: float
) -> Prober:
    """A Prober of one server's management API only (no database probe) over `store`."""
    return Prober(
        responder=Responder(store=store, clock=_now, policy=Policy()),
        clock=_now,
        targets=lambda: (_rid(server),),
        inspector=inspector,
        db_probe=None,
        schedule=ProbeSchedule(window=timedelta(seconds=window), arm_interval=arm_interval),
    )


def test_a_quiet_management_api_check_reads_nothing_once_its_run_has_read_the_view_stored():
    """Issue 15 (cost per 100 servers and CPU per sample): a check that finds nothing new read the
    server's state twice and wrote the same view back: 3 requests every 5 s per server; then one
    read. Now a run reads the state at its first check only, while the listing shows the view that
    read found stored; a changed view is read and recorded as before, and so is a view that came
    back to what an earlier run saw (another instance may have stored the change in between)."""
    store = MemoryStore()
    inspector = ZoneInspector()
    prober = _arm_only(store, inspector, "pg-quiet-01", window=1.0, arm_interval=0.2)
    prober.run_once()  # the first check keeps the view
    before, checks = store.round_trips, inspector.calls["pg-quiet-01"]
    prober.run_once()
    assert inspector.calls["pg-quiet-01"] - checks >= 3 and store.round_trips - before == 1

    other = Prober(  # another instance takes the shard and sees the server fail over
        responder=Responder(store=store, clock=_now, policy=Policy()),
        clock=_now,
        targets=lambda: (_rid("pg-quiet-01"),),
        inspector=inspector,
        db_probe=None,
        schedule=prober.schedule,
    )
    inspector.primary_zone, inspector.standby_zone = "2", "1"
    other.run_once()
    inspector.primary_zone, inspector.standby_zone = "1", "2"  # and back: the view this instance knew
    prober.run_once()
    state, _ = store.read_state("pg-quiet-01")
    assert state is not None and state.topology is not None and state.topology.primary_zone == "1"
    incidents = store.incidents_of_server(
        "pg-quiet-01", since=None, until=None, status=None, limit=5, after=None
    )
    assert len(incidents.incidents) == 2


class ZoneInspector(CountingInspector):
    """Healthy, with the zones a test sets."""

    primary_zone, standby_zone = "1", "2"

    def get_server(self, resource_id: str) -> ServerView:
        view = super().get_server(resource_id)
        return replace(view, primary_zone=self.primary_zone, standby_zone=self.standby_zone)


def test_a_quiet_run_costs_two_table_requests_per_server_whatever_its_checks():
    quiet_runs_cost_two_requests_per_server(MemoryStore())


def test_a_row_another_writer_changed_during_the_run_keeps_both_writes():
    a_row_changed_during_a_run_keeps_both_writes(MemoryStore())


def quiet_runs_cost_two_requests_per_server(store: Any) -> None:
    """The README's cost per 100 servers: each server of a quiet shard run costs 1 read shared by its
    first database sample and its first management API check (before: one each), and the write
    keeping the database bookkeeping at the end, on that read's ETag (before: a read and a write),
    whatever the number of checks. `store`: the memory store here, Table storage on Azurite in
    tests/integration/test_probe_table_cost.py."""
    from tests.functional.test_probe_pool import FakeDatabase

    servers = ("pg-cost-01", "pg-cost-02", "pg-cost-03")
    inspector = CountingInspector()
    prober = _costed(store, servers, inspector, FakeDatabase())
    prober.run_once()  # the first run keeps each view
    for _ in range(2):
        before, checks = store.round_trips, sum(inspector.calls.values())
        prober.run_once()
        assert sum(inspector.calls.values()) - checks >= 5 * len(servers)
        assert store.round_trips - before == 2 * len(servers)


def a_row_changed_during_a_run_keeps_both_writes(store: Any) -> None:
    """The end of a run writes on the ETag of its first read: when another writer changed the row
    meanwhile (an alert, another instance), that write is refused and made again on a fresh read,
    so both changes are kept (one refused write and one read more than a quiet run)."""
    from tests.functional.test_probe_pool import FakeDatabase

    server = "pg-cost-04"

    class Interloper(FakeDatabase):
        armed = False

        def check(self, name: str) -> DbCheck:
            if self.armed:  # after the run's first read of the row: its first sample read it
                self.armed = False
                state, etag = store.read_state(name)
                assert state is not None
                store.commit(replace(state, signals_recorded=state.signals_recorded + 41), etag)
            return super().check(name)

    database = Interloper()
    prober = _costed(store, (server,), CountingInspector(), database)
    prober.run_once()
    before, _ = store.read_state(server)
    assert before is not None and before.db.last_ok_write_at is not None
    database.armed, trips = True, store.round_trips
    prober.run_once()
    # The run's first read; the interloper's read and write; a refused write, a read, a write.
    assert store.round_trips - trips == 1 + 2 + 3
    after, _ = store.read_state(server)
    assert after is not None and after.db.last_ok_write_at is not None
    assert after.signals_recorded == before.signals_recorded + 41
    assert after.db.last_ok_write_at > before.db.last_ok_write_at


def _costed(store: Any, servers: tuple[str, ...], inspector: Any, database: Any) -> Prober:
    return Prober(
        responder=Responder(store=store, clock=_now, policy=Policy()),
        clock=_now,
        targets=lambda: tuple(_rid(s) for s in servers),
        inspector=inspector,
        db_probe=database,
        schedule=ProbeSchedule(window=timedelta(seconds=1.0), arm_interval=0.1, db_interval=0.05),
    )


# (which of two instances runs, the primary zone each of its checks sees, in order)
_RUNS = st.lists(
    st.tuples(st.sampled_from((0, 1)), st.lists(st.sampled_from("12"), min_size=1, max_size=4)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=_RUNS)
@example(runs=[(0, ["1"]), (1, ["2"]), (0, ["1"])])  # a change and back, seen by the other instance
def test_two_instances_taking_turns_leave_the_last_view_seen_stored(runs: list[tuple[int, list[str]]]):
    """Invariant: whatever order two instances watch a server in, and however its primary zone moves
    and comes back, after each run the stored topology is the view that run's last check saw: a
    remembered view never hides a change another instance stored meanwhile."""
    store = MemoryStore()
    inspector = ScriptedInspector()
    probers = [_arm_only(store, inspector, "pg-turns-01", window=0.12, arm_interval=0.03) for _ in range(2)]
    for instance, zones in runs:
        inspector.script(zones)
        probers[instance].run_once()
        state, _ = store.read_state("pg-turns-01")
        assert state is not None and state.topology is not None
        assert state.topology.primary_zone == inspector.last_seen


class ScriptedInspector(CountingInspector):
    """Each check sees the next primary zone of its script; the last one holds."""

    def __init__(self) -> None:
        super().__init__()
        self._zones: list[str] = ["1"]
        self.last_seen = "1"

    def script(self, zones: list[str]) -> None:
        with self.lock:
            self._zones = list(zones)

    def get_server(self, resource_id: str) -> ServerView:
        with self.lock:
            zone = self._zones.pop(0) if len(self._zones) > 1 else self._zones[0]
            self.last_seen = zone
        view = super().get_server(resource_id)
        return replace(view, primary_zone=zone, standby_zone="2" if zone == "1" else "1")


class BrokenOnce(LoggingResponder):
    """Raises what no adapter translates (a bug, an SDK error nobody mapped) on its first recording."""

    broken = False

    def record_all(self, signals: Any) -> Any:
        if not self.broken and any(s.server == FAILING for s in signals):
            self.broken = True
            assert self.log is not None
            self.log.add("raised")
            raise RuntimeError("not a FailoverError")
        return super().record_all(signals)


class CountingSlowInspector(SlowInspector):
    def get_server(self, resource_id: str) -> ServerView:
        time.sleep(0.02)
        self.log.add("arm")
        return _healthy(resource_id)


def test_an_unexpected_error_while_recording_leaves_the_worker_and_the_server_to_the_run(caplog):
    """A pool swallows what its task raises. Before: the task's worker stayed counted as busy and its
    server as being worked on for the rest of the run, so the signal was never retried and, with one
    recording worker kept for signals, no management API check ran again."""
    responder = _responder(BrokenOnce)
    log = responder.log
    inspector: Any = CountingSlowInspector(log)
    prober = _busy_fleet(responder, inspector, window=timedelta(seconds=3), record_grace=2.0)
    prober.run_once()
    events = log.events
    assert "raised" in events and "recorded" in events[events.index("raised") :]
    assert events[events.index("raised") :].count("arm") > len(SERVERS)  # checks went on
    assert "its work failed unexpectedly" in caplog.text


class ReadFailsOnce(MemoryStore):
    """The first read of the failing server's state raises what no adapter translates."""

    def __init__(self) -> None:
        super().__init__()
        self.raised = False

    def read_state(self, server: str) -> Any:
        if server == FAILING and not self.raised:
            self.raised = True
            raise RuntimeError("not a FailoverError")
        return super().read_state(server)


def test_an_unexpected_error_in_a_sample_leaves_the_server_sampled_for_the_rest_of_the_run(caplog):
    store = ReadFailsOnce()
    responder = _responder(store=store)
    log = responder.log
    prober = _busy_fleet(responder, None)
    report = prober.run_once()
    assert store.raised and "recorded" in log.events
    assert report.servers[FAILING].db_samples > 10
    assert "a database sample failed unexpectedly" in caplog.text
