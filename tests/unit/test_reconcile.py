"""Reconciliation decisions and the use case on an in-memory cache (pure; no Redis)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

from failover.adapters.redis_cache import CacheConfigError
from failover.errors import CacheUnavailableError
from failover.model import Topology
from failover.ports import PublishResult
from failover.reconcile import Publication, plan, reconcile

T0 = datetime(2026, 11, 25, 7, 0, tzinfo=timezone.utc)


def pub(server: str, version: int, epoch: int = 1) -> Publication:
    topology = Topology(server, "1", "2", "Healthy", None, (), None, version, T0)
    return Publication(topology, epoch)


class MemoryCache:
    """A TopologyCache with Redis' compare-and-set on version; `fail_on` raises for those servers."""

    def __init__(self, fail_on: Mapping[str, Exception] | None = None) -> None:
        self.versions: dict[str, int] = {}
        self.epochs: dict[str, int] = {}
        self.published: list[str] = []
        self.fail_on = dict(fail_on or {})
        self.down = False

    def publish(self, topology: Topology, *, epoch: int, patterns: tuple[str, ...] = ()) -> PublishResult:
        server = topology.server.lower()
        if server in self.fail_on:
            raise self.fail_on[server]
        self.published.append(server)
        if self.versions.get(server, -1) >= topology.version:
            return PublishResult(False, self.epochs.get(server))
        self.versions[server] = topology.version
        self.epochs[server] = max(epoch, self.epochs.get(server, epoch))
        return PublishResult(True, self.epochs[server])

    def read(self, server: str) -> Mapping[str, str]:
        return {"version": str(self.versions[server])} if server in self.versions else {}

    def missing_or_older(self, versions: Mapping[str, int]) -> frozenset[str]:
        if self.down:
            raise CacheUnavailableError("redis unreachable during topology check (ConnectionError)")
        return frozenset(s for s, v in versions.items() if self.versions.get(s, -1) < v)

    def ping(self) -> None:
        return None


def test_plan_takes_only_stale_servers_newest_version_first_within_budget():
    known = [pub("pg-c", 3), pub("pg-a", 1), pub("pg-a", 2), pub("pg-b", 5), pub("pg-d", 1)]
    chosen = plan(known, {"pg-a", "pg-c", "pg-d"}, max_writes=2)
    assert [(p.server, p.topology.version) for p in chosen] == [("pg-a", 2), ("pg-c", 3)]
    assert plan(known, {"pg-a"}, max_writes=0) == ()
    assert plan(known, set(), max_writes=10) == ()


def test_an_emptied_cache_is_rewritten_over_runs_within_the_budget():
    cache = MemoryCache()
    fleet = [pub(f"pg-{i:03d}", 10 + i, epoch=3) for i in range(250)]
    reports = [reconcile(cache, lambda: fleet, max_writes=100) for _ in range(4)]
    assert [(r.stale, r.written, r.deferred) for r in reports] == [
        (250, 100, 150),
        (150, 100, 50),
        (50, 50, 0),
        (0, 0, 0),
    ]
    assert cache.versions == {p.server: p.topology.version for p in fleet}
    assert set(cache.epochs.values()) == {3}


def test_a_newer_topology_in_the_cache_is_left_alone():
    cache = MemoryCache()
    cache.versions["pg-a"] = 9
    report = reconcile(cache, lambda: [pub("pg-a", 8), pub("pg-b", 1)])
    assert (report.checked, report.stale, report.written) == (2, 1, 1)
    assert cache.published == ["pg-b"]
    assert cache.versions["pg-a"] == 9


def test_a_cache_that_is_down_ends_the_run_without_raising():
    cache = MemoryCache()
    cache.down = True
    report = reconcile(cache, lambda: [pub("pg-a", 1)])
    assert report.written == 0
    assert report.error is not None and "unreachable" in report.error


def test_redis_going_down_mid_run_stops_it_and_a_permanent_refusal_is_counted():
    refused = CacheConfigError("redis refused topology publish: WRONGTYPE")
    down = CacheUnavailableError("redis unreachable during topology publish (ConnectionError)")
    cache = MemoryCache(fail_on={"pg-b": refused, "pg-d": down})
    report = reconcile(cache, lambda: [pub(s, 1) for s in ("pg-a", "pg-b", "pg-c", "pg-d", "pg-e")])
    assert cache.published == ["pg-a", "pg-c"]
    assert (report.stale, report.written, report.failed, report.deferred) == (5, 2, 1, 2)
    assert report.error is not None


def test_the_time_budget_stops_new_publishes():
    cache = MemoryCache()
    ticks = iter(range(100))
    report = reconcile(
        cache,
        lambda: [pub(f"pg-{i}", 1) for i in range(10)],
        max_seconds=3,
        monotonic=lambda: float(next(ticks)),
    )
    assert report.written == 2  # readings: start 0, then 1 and 2 allow a publish, 3 stops the run
    assert report.deferred == 8
