"""Issue 12: one epoch per primary change, and the topology written when the primary changes.

Measured on the earlier main: the "primary restored" write carried the old zone, and the zone the
management API saw the primary land in reached Redis only at resolution (or the next sweep's
reconciliation). A failover and a quick failback seen only by the management API's samples made one
incident and one epoch. Here signals are recorded for real (Azurite-backed store) and Redis is a real
standalone redis-server, then a real 3-primary cluster; no sweep runs between the signals.
"""

from __future__ import annotations

from datetime import timedelta

from failover.model import SignalKind, Source
from tests.builders import T0, signal
from tests.integration.redis_fixtures import redis_backend_fixture, redis_cluster_fixture  # noqa: F401
from tests.integration.test_redis_contract import responder_on

SERVER = "pg-move-01"


def _zone_move(seconds: float, before: str, after: str):
    return signal(
        SignalKind.FAILOVER_COMPLETED,
        seconds,
        server=SERVER,
        source=Source.ARM_PROBE,
        signal_id=f"arm:{seconds}",
        details={"zone_before": before, "view": {"primary_zone": after, "standby_zone": before}},
    )


def test_the_zone_the_primary_landed_in_reaches_redis_at_once_with_one_epoch(store, redis_backend, clock):
    responder, cache = responder_on(store, redis_backend, clock)
    clock.now = T0 + timedelta(seconds=25)
    responder.record(signal(SignalKind.WRITE_UNAVAILABLE, 1, server=SERVER, source=Source.DB_PROBE))
    responder.record(
        signal(
            SignalKind.WRITE_RESTORED,
            20,
            server=SERVER,
            source=Source.DB_PROBE,
            details={"downtime_seconds": 18},
        )
    )
    restored = cache.read(SERVER)
    assert cache.read_epoch(SERVER) == 1 and restored.get("primary_zone") != "2"  # not known yet

    clock.now = T0 + timedelta(seconds=45)
    responder.record(_zone_move(40, "1", "2"))  # same failover, seen later by the management API

    moved = cache.read(SERVER)
    assert moved["primary_zone"] == "2" and moved["standby_zone"] == "1"
    assert int(moved["version"]) > int(restored["version"])
    assert cache.read_epoch(SERVER) == 1  # the same primary change: no second bump


def test_a_failover_and_a_quick_failback_seen_by_the_management_api_bump_twice(store, redis_backend, clock):
    responder, cache = responder_on(store, redis_backend, clock)
    clock.now = T0 + timedelta(seconds=35)
    responder.record(_zone_move(30, "1", "2"))
    assert (cache.read(SERVER)["primary_zone"], cache.read_epoch(SERVER)) == ("2", 1)

    clock.now = T0 + timedelta(seconds=125)
    responder.record(_zone_move(120, "2", "1"))

    assert (cache.read(SERVER)["primary_zone"], cache.read_epoch(SERVER)) == ("1", 2)
