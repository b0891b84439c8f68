"""Issue 15: one probe run watches a large fleet with bounded pools, never a thread per server.

Fakes stand for the database and the management API (they answer at once), the store is the
in-memory one with Table semantics; the sampling figures at scale are benchmarks (bench/fleet.py).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from failover.adapters.memory_store import MemoryStore
from failover.errors import StorageUnavailableError
from failover.ports import DbCheck
from failover.probing import Prober, ProbeReport, ProbeSchedule
from failover.service import Responder
from failover.sources.db_faults import DbFault
from tests.probe_fakes import CountingInspector

SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000015/resourcegroups/rg-fleet"


def _ids(count: int) -> tuple[str, ...]:
    return tuple(
        f"{SUBSCRIPTION}/providers/microsoft.dbforpostgresql/flexibleservers/pg-fleet-{n:03d}"
        for n in range(count)
    )


def _now() -> datetime:
    return datetime.now(timezone.utc)


class FakeDatabase:
    """Answers at once; `read_only` servers answer as a standby; counts the threads it runs on."""

    def __init__(self, read_only: frozenset[str] = frozenset()) -> None:
        self.read_only = set(read_only)
        self.lock = threading.Lock()
        self.checks: dict[str, int] = {}
        self.threads: set[str] = set()
        self.concurrent = 0
        self.peak = 0

    def check(self, server: str) -> DbCheck:
        with self.lock:
            self.checks[server] = self.checks.get(server, 0) + 1
            self.threads.add(threading.current_thread().name)
            self.concurrent += 1
            self.peak = max(self.peak, self.concurrent)
        try:
            now = _now()
            if server in self.read_only:
                return DbCheck(server, now, now, True, False, True, fault=DbFault.READ_ONLY.value)
            return DbCheck(server, now, now, True, True, False)
        finally:
            with self.lock:
                self.concurrent -= 1


def _prober(store: MemoryStore, ids: tuple[str, ...], db: FakeDatabase, **kwargs) -> Prober:
    schedule = ProbeSchedule(
        window=timedelta(seconds=1.2),
        arm_interval=0.4,
        db_interval=0.1,
        db_fast_interval=0.1,
        max_workers=6,
        record_workers=3,
        record_grace=0.5,
    )
    return Prober(
        responder=Responder(store=store, clock=_now),
        clock=_now,
        targets=lambda: ids,
        db_probe=db,
        schedule=schedule,
        **kwargs,
    )


def test_150_servers_are_all_watched_by_two_bounded_pools():
    ids = _ids(150)
    db, inspector = FakeDatabase(), CountingInspector()
    report = _prober(MemoryStore(), ids, db, inspector=inspector).run_once()

    assert len(report.servers) == 150
    # Every server is sampled again and again within one run, not once per run.
    assert min(db.checks.values()) >= 3, sorted(db.checks.values())[:5]
    assert min(inspector.calls.values()) >= 2
    assert all(h.db == "ok" and h.arm == "ok" for h in report.servers.values())
    # The database was sampled on at most max_workers threads of the sampling pool.
    assert all(name.startswith("probe-db") for name in db.threads)
    assert len(db.threads) <= 6 and db.peak <= 6
    assert report.unchecked == 0 and report.unrecorded == 0


def test_a_shard_watches_only_its_own_targets():
    ids = _ids(20)
    db = FakeDatabase()
    report = _prober(MemoryStore(), ids, db).run_once(targets=ids[:5], window=timedelta(seconds=0.3))

    assert sorted(report.servers) == [f"pg-fleet-{n:03d}" for n in range(5)]
    assert sorted(db.checks) == sorted(report.servers)


class BlockingStore(MemoryStore):
    """Recording waits until `release` is set; the probe's own reads never wait."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def read_for_signal(self, server, signal_hash):
        assert self.release.wait(30), "the test never released recording"
        return super().read_for_signal(server, signal_hash)


def test_sampling_goes_on_while_recording_waits_and_records_in_order():
    ids = _ids(3)
    store = BlockingStore()
    db = FakeDatabase(read_only=frozenset({"pg-fleet-001"}))
    prober = _prober(store, ids, db)
    result: dict[str, ProbeReport] = {}
    run = threading.Thread(target=lambda: result.setdefault("report", prober.run_once()))
    run.start()
    try:
        while db.checks.get("pg-fleet-001", 0) < 4:  # recording of its signal is blocked meanwhile
            assert run.is_alive()
            threading.Event().wait(0.01)
        db.read_only.clear()  # writes come back while the first signal still waits
        while db.checks.get("pg-fleet-001", 0) < 8:
            threading.Event().wait(0.01)
    finally:
        store.release.set()
        run.join(30)
    report = result["report"]
    assert report.servers["pg-fleet-001"].signals == 2
    rows = sorted(store.entities("pg-fleet-001"), key=lambda row: row["RowKey"])
    kinds = [row["kind"] for row in rows if row["RowKey"].startswith("signal~")]
    assert kinds == ["write_unavailable", "write_restored"]


class RefusingStore(MemoryStore):
    def read_for_signal(self, server, signal_hash):
        raise StorageUnavailableError("storage is down")


def test_what_a_run_could_not_record_is_counted_for_the_next_run():
    ids = _ids(4)
    db = FakeDatabase(read_only=frozenset({"pg-fleet-002"}))
    report = _prober(RefusingStore(), ids, db).run_once(window=timedelta(seconds=0.3))

    assert report.servers["pg-fleet-002"].unrecorded == 1
    assert report.unrecorded == 1
    assert "1 signals" in report.summary()
