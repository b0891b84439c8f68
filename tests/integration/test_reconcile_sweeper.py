"""Issue 12: a Redis that comes back empty is repaired by the next sweeper run, standalone and clustered.

On the earlier main a topology was written only at the next incident transition: after Redis restarted
without persistence, most servers stayed missing. Here incidents are recorded for real (Azurite-backed
store), Redis is flushed, and one `Responder.sweep()` writes every server's topology and epoch again.
A management API view change that applications care about (a replica breaking) is a new topology
version, republished the same way, with no incident.
"""

from __future__ import annotations

from datetime import timedelta

from failover.model import Cause, SignalKind, Source
from tests.builders import T0, signal
from tests.integration.redis_fixtures import redis_backend_fixture, redis_cluster_fixture  # noqa: F401
from tests.integration.test_redis_contract import responder_on

SERVERS = [f"pg-rec-{n:02d}" for n in range(30)]


def test_every_topology_is_back_after_redis_comes_back_empty(store, redis_backend, clock):
    responder, cache = responder_on(store, redis_backend, clock)
    clock.now = T0 + timedelta(seconds=30)
    for server in SERVERS:
        responder.record(
            signal(SignalKind.FAILOVER_STARTED, 0, server=server, cause=Cause.FORCED, confidence=3)
        )
        responder.record(
            signal(
                SignalKind.WRITE_RESTORED,
                20,
                server=server,
                source=Source.DB_PROBE,
                details={"downtime_seconds": 9},
            )
        )
    assert all(cache.read(s).get("version") for s in SERVERS)
    redis_backend.flush()
    assert not any(cache.read(s) for s in SERVERS)

    report = responder.sweep()

    assert report.reconciled == len(SERVERS)
    for server in SERVERS:
        stored = cache.read(server)
        assert stored["incident_id"].startswith(f"{server}~") and int(stored["version"]) >= 2
    assert responder.sweep().reconciled == 0  # nothing stale: nothing written


def test_a_replica_that_breaks_is_a_new_topology_version_republished_without_an_incident(
    store,
    redis_backend,
    clock,
):
    responder, cache = responder_on(store, redis_backend, clock)
    server = "pg-rep-01"
    replica = {"name": "pg-rep-01-r1", "host": "r1.example", "zone": "2", "replicationState": "Active"}
    view = {"primary_zone": "1", "standby_zone": "2", "ha_state": "Healthy", "replica_details": [replica]}
    responder.save_probe_facts(server, view=view, observed_at=T0)
    responder.sweep()
    first = cache.read(server)
    broken = {**view, "replica_details": [{**replica, "replicationState": "Broken"}]}
    responder.save_probe_facts(server, view=broken, observed_at=T0 + timedelta(minutes=1))
    responder.sweep()
    second = cache.read(server)
    assert int(second["version"]) == int(first["version"]) + 1
    assert "Broken" in second["replicas"]
    state, _ = store.read_state(server)
    assert state is not None and state.records == ()
