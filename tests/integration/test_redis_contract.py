"""The Redis contract (docs/redis-contract.md) on a standalone redis-server AND a 3-primary Redis Cluster.

Every test here runs twice through the `redis_backend` fixture. The adapter's client is built the
way the app builds it (`redis_client_factory(..., cluster="auto")`: the node is asked whether it is
clustered), so the cluster runs use `redis.cluster.RedisCluster`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from redis.cluster import RedisCluster

from failover.adapters.redis_cache import RedisTopologyCache, redis_client_factory
from failover.incidents import Policy
from failover.model import Topology
from failover.reconcile import Publication, reconcile
from failover.service import Integrations, Responder
from tests.integration.redis_fixtures import (  # noqa: F401  (fixtures)
    RedisBackend,
    next_message,
    redis_backend_fixture,
    redis_cluster_fixture,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 25, 7, 16, 2, tzinfo=timezone.utc)
REPLICAS = (
    {
        "name": "pg-prod-01-r1",
        "host": "pg-prod-01-r1.postgres.database.azure.com",
        "zone": "3",
        "replicationState": "Active",
        "role": "AsyncReplica",
        "lagSeconds": 0.4,
    },
    {
        "name": "pg-prod-01-r2",
        "host": "pg-prod-01-r2.postgres.database.azure.com",
        "zone": None,
        "replicationState": "Catchup",
        "role": "AsyncReplica",
        "lagSeconds": None,
    },
)
ENDPOINTS = {
    "writer": "pg-prod-01-ve.writer.postgres.database.azure.com",
    "reader": "pg-prod-01-ve.reader.postgres.database.azure.com",
}


def topo(server: str, version: int, primary: str = "1", **extra: Any) -> Topology:
    return Topology(
        server=server,
        primary_zone=primary,
        standby_zone="2" if primary == "1" else "1",
        ha_state="Healthy",
        fqdn=f"{server}.postgres.database.azure.com",
        read_replicas=tuple(r["host"] for r in extra.get("replicas", ())),
        incident_id=f"{server}~20261125T071602Z",
        version=version,
        updated_at=T0,
        **extra,
    )


def cache_on(backend: RedisBackend, **options: Any) -> RedisTopologyCache:
    connect = redis_client_factory(backend.url, entra_identity=None, cluster="auto", retries=1)
    return RedisTopologyCache(connect, **options)


def responder_on(store: Any, backend: RedisBackend, clock: Any) -> tuple[Responder, RedisTopologyCache]:
    """A Responder recording into `store` whose Redis effects and writes go to `backend`."""
    cache = cache_on(backend)
    return Responder(store=store, clock=clock, policy=Policy(), integrations=Integrations(cache=cache)), cache


def test_auto_detection_picks_the_cluster_client_on_a_cluster(redis_backend):
    cache = cache_on(redis_backend)
    cache.ping()
    assert cache.clustered is redis_backend.clustered
    assert isinstance(cache.client("test"), RedisCluster) is redis_backend.clustered


def test_every_key_of_a_server_shares_one_hash_slot(redis_backend):
    cache = cache_on(redis_backend)
    assert cache.topology_key("PG-Prod-01") == "pgha:{pg-prod-01}:topology"
    assert cache.epoch_key("pg-prod-01") == "pgha:{pg-prod-01}:epoch"
    assert cache.channel("pg-prod-01") == "pgha:{pg-prod-01}:events"
    cluster = RedisCluster.from_url(redis_backend.url) if redis_backend.clustered else None
    if cluster is not None:
        slots = {
            cluster.keyslot(k) for k in (cache.topology_key("x"), cache.epoch_key("x"), cache.channel("x"))
        }
        assert slots == {cluster.keyslot("{x}")}
        cluster.close()


def test_every_topology_write_is_accepted_on_every_node(redis_backend):
    """Issue 12, first measured case: a cluster refused every write with CROSSSLOT."""
    cache = cache_on(redis_backend)
    servers = [f"pg-fleet-{i:02d}" for i in range(30)]  # spread over the three primaries' slots
    results = [cache.publish(topo(server, 1), epoch=1) for server in servers]
    assert [(r.written, r.epoch) for r in results] == [(True, 1)] * len(servers)
    assert all(cache.read(server)["version"] == "1" for server in servers)
    if redis_backend.clustered:
        admin = redis_backend.admin()
        assert isinstance(admin, RedisCluster)
        holders = {admin.get_node_from_key(cache.topology_key(s)).name for s in servers}
        assert len(holders) == 3  # the writes really landed on all three primaries


def test_publish_writes_hash_replicas_endpoints_and_epoch_and_a_subscriber_hears_it(redis_backend):
    cache = cache_on(redis_backend)
    pubsub = redis_backend.subscribe(cache.channel("pg-prod-01"))

    result = cache.publish(topo("pg-prod-01", 7, "2", replicas=REPLICAS, endpoints=ENDPOINTS), epoch=4)

    assert (result.written, result.epoch, result.invalidated) == (True, 4, 0)
    stored = cache.read("pg-prod-01")
    assert stored["primary_zone"] == "2"
    assert stored["read_replicas"] == ",".join(str(r["host"]) for r in REPLICAS)  # kept for old readers
    assert tuple(json.loads(stored["replicas"])) == REPLICAS
    assert json.loads(stored["endpoints"]) == ENDPOINTS
    assert (stored["version"], stored["updated_at"]) == ("7", "2026-11-25T07:16:02Z")
    assert redis_backend.admin().get("pgha:{pg-prod-01}:epoch") == "4"
    message = next_message(pubsub)
    assert message is not None, f"no message on the events channel ({redis_backend.kind})"
    assert json.loads(message["data"])["epoch"] == 4
    assert json.loads(message["data"])["version"] == 7
    pubsub.close()


def test_a_server_without_replicas_or_endpoints_stores_empty_json(redis_backend):
    cache = cache_on(redis_backend)
    cache.publish(topo("pg-solo", 1), epoch=0)
    stored = cache.read("pg-solo")
    assert (stored["replicas"], stored["endpoints"], stored["read_replicas"]) == ("[]", "{}", "")


def test_compare_and_set_never_goes_back_to_an_older_version(redis_backend):
    cache = cache_on(redis_backend)
    assert cache.publish(topo("pg-cas", 10, "2"), epoch=3).written
    pubsub = redis_backend.subscribe(cache.channel("pg-cas"))

    older = cache.publish(topo("pg-cas", 9, "3"), epoch=5)
    same = cache.publish(topo("pg-cas", 10, "3"), epoch=5)

    assert (older.written, older.epoch) == (False, 3)
    assert (same.written, same.epoch) == (False, 3)
    assert (cache.read("pg-cas")["version"], cache.read("pg-cas")["primary_zone"]) == ("10", "2")
    assert next_message(pubsub, timeout=0.5) is None
    pubsub.close()


def test_the_epoch_only_grows(redis_backend):
    cache = cache_on(redis_backend)
    epochs = [cache.publish(topo("pg-epoch", v), epoch=e).epoch for v, e in [(1, 1), (2, 3), (3, 2), (4, 3)]]
    assert epochs == [1, 3, 3, 3]
    assert cache.read_epoch("pg-epoch") == 3


def test_a_same_version_replay_restores_a_lost_epoch_but_never_raises_one(redis_backend):
    cache = cache_on(redis_backend)
    cache.publish(topo("pg-evicted", 5), epoch=2)
    redis_backend.admin().delete(cache.epoch_key("pg-evicted"))  # what an eviction does

    assert cache.missing_or_older({"pg-evicted": 5}) == {"pg-evicted"}
    assert cache.publish(topo("pg-evicted", 5), epoch=2).epoch == 2
    assert cache.publish(topo("pg-evicted", 5), epoch=9).epoch == 2
    assert cache.missing_or_older({"pg-evicted": 5}) == frozenset()


def _fill(backend: RedisBackend, count: int) -> None:
    """`count` application keys `app:{pg-app-N}:k`, spread over every primary of a cluster."""
    admin = backend.admin()
    pipe = admin.pipeline(transaction=False) if not backend.clustered else admin.pipeline()
    for i in range(count):
        pipe.set(f"app:{{pg-app-{i}}}:k", "x")
        pipe.set(f"other:{{pg-app-{i}}}:k", "x")
    pipe.execute()


def test_invalidation_reaches_keys_on_every_primary(redis_backend):
    """Issue 12: invalidation reached only one node of a cluster."""
    _fill(redis_backend, 900)
    per_node = [node.dbsize() for node in redis_backend.nodes()]
    assert all(n > 0 for n in per_node)
    cache = cache_on(redis_backend, scan_batch=100)
    for node in redis_backend.nodes():
        node.config_resetstat()

    result = cache.invalidate(("app:*",), server="pg-app-0")

    assert (result.unlinked, result.complete) == (900, True)
    assert sum(node.dbsize() for node in redis_backend.nodes()) == 900  # only the `other:` keys left
    for node in redis_backend.nodes():
        stats = node.info("commandstats")
        assert "cmdstat_keys" not in stats
        assert stats["cmdstat_scan"]["calls"] >= 1  # every primary was scanned


def test_invalidation_stops_at_its_key_budget_and_says_so(redis_backend):
    _fill(redis_backend, 600)
    cache = cache_on(redis_backend, scan_batch=50, invalidate_max_keys=250)

    first = cache.invalidate(("app:*",), server="pg-app-0")

    assert (first.unlinked, first.complete) == (250, False)
    remaining = sum(len(list(node.scan_iter(match="app:*", count=500))) for node in redis_backend.nodes())
    assert remaining == 350
    while not (run := cache.invalidate(("app:*",), server="pg-app-0")).complete:
        assert run.unlinked == 250
    assert sum(len(list(node.scan_iter(match="app:*"))) for node in redis_backend.nodes()) == 0


def test_invalidation_stops_at_its_time_budget_and_says_so(redis_backend):
    _fill(redis_backend, 300)
    ticks = iter(range(1000))  # a clock that moves one second per reading
    cache = cache_on(redis_backend, scan_batch=10, invalidate_seconds=3, monotonic=lambda: float(next(ticks)))

    result = cache.invalidate(("app:*",), server="pg-app-0")

    assert result.complete is False
    assert 0 < result.unlinked < 300


def test_publish_reports_an_incomplete_invalidation(redis_backend):
    _fill(redis_backend, 120)
    cache = cache_on(redis_backend, scan_batch=20, invalidate_max_keys=50)
    result = cache.publish(topo("pg-app-0", 1), epoch=1, patterns=("app:*", "pgha:*"))
    assert (result.written, result.invalidated, result.invalidation_complete) == (True, 50, False)
    assert cache.read("pg-app-0")["version"] == "1"  # "pgha:*" never removes the cache's own keys


def test_missing_or_older_finds_what_redis_lost(redis_backend):
    cache = cache_on(redis_backend, check_batch=7)
    for i in range(20):
        cache.publish(topo(f"pg-known-{i}", 3), epoch=1)
    redis_backend.admin().delete(cache.topology_key("pg-known-4"))
    versions = {f"pg-known-{i}": 3 for i in range(20)} | {"pg-known-7": 4, "pg-never": 1}

    assert cache.missing_or_older(versions) == {"pg-known-4", "pg-known-7", "pg-never"}
    assert cache.missing_or_older({}) == frozenset()


def test_reconcile_restores_every_topology_after_flushall(redis_backend):
    """Issue 12: a cache that restarts empty stayed empty until the next incident transition."""
    cache = cache_on(redis_backend)
    fleet = [
        Publication(topo(f"pg-zone-{i:02d}", 10 + i, "2", replicas=REPLICAS[:1]), epoch=2) for i in range(60)
    ]
    for item in fleet:
        cache.publish(item.topology, epoch=item.epoch)
    redis_backend.flush()
    assert cache.missing_or_older({p.server: p.topology.version for p in fleet}) == {p.server for p in fleet}

    first = reconcile(cache, lambda: fleet, max_writes=40)
    second = reconcile(cache, lambda: fleet, max_writes=40)
    third = reconcile(cache, lambda: fleet, max_writes=40)

    assert (first.stale, first.written, first.deferred) == (60, 40, 20)
    assert (second.stale, second.written, second.deferred) == (20, 20, 0)
    assert (third.checked, third.stale, third.written) == (60, 0, 0)
    for item in fleet:
        stored = cache.read(item.server)
        assert stored["version"] == str(item.topology.version)
        assert json.loads(stored["replicas"]) == [REPLICAS[0]]
        assert cache.read_epoch(item.server) == 2


def test_reconcile_never_replaces_a_newer_topology(redis_backend):
    cache = cache_on(redis_backend)
    cache.publish(topo("pg-newer", 8, "3"), epoch=4)
    report = reconcile(cache, lambda: [Publication(topo("pg-newer", 7, "1"), epoch=3)])
    assert (report.stale, report.written) == (0, 0)
    assert cache.read("pg-newer")["primary_zone"] == "3"
    assert cache.read_epoch("pg-newer") == 4


def test_a_stale_slot_map_is_followed_by_the_moved_reply_and_repaired(redis_cluster):
    """The cluster fast path (straight to the slot's primary) falls back to RedisCluster on MOVED."""
    backend = RedisBackend("cluster", redis_cluster.url)
    backend.flush()
    cache = cache_on(backend)
    cache.publish(topo("pg-moved", 1), epoch=1)
    client = cache.client("test")
    assert isinstance(client, RedisCluster)
    slot = client.keyslot(cache.topology_key("pg-moved"))
    owner = client.nodes_manager.slots_cache[slot][0]
    wrong = next(n for n in client.get_primaries() if n.name != owner.name)
    client.nodes_manager.slots_cache[slot] = [wrong]  # what a resharding leaves in a client's map

    result = cache.publish(topo("pg-moved", 2, "2"), epoch=2)

    assert (result.written, result.epoch) == (True, 2)
    assert client.nodes_manager.slots_cache[slot][0].name == owner.name  # repaired from the MOVED reply
    assert cache.read("pg-moved")["primary_zone"] == "2"
    backend.close()
