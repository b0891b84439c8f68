"""RedisTopologyCache against a real, throwaway redis-server (never the system one on 6379)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone

import pytest
import redis
from redis.connection import SSLConnection

from failover.adapters.redis_cache import (
    CacheConfigError,
    RedisTopologyCache,
    build_redis_client,
    redis_client_factory,
)
from failover.errors import CacheUnavailableError, ConfigError, PermanentError
from failover.model import Topology
from local.services import LocalRedisCluster
from tests.integration.redis_fixtures import (  # noqa: F401  (fixture)
    RedisServer,
    next_message,
    redis_server_fixture,
)

pytestmark = pytest.mark.integration

SERVER = "pg-prod-01"
T0 = datetime(2026, 11, 25, 7, 16, 2, tzinfo=timezone.utc)


REPLICAS = ("pg-prod-01-r1.postgres.database.azure.com", "pg-prod-01-r2.postgres.database.azure.com")


def topo(version: int, primary: str = "1", standby: str = "2", ha_state: str = "Healthy") -> Topology:
    return Topology(
        server=SERVER,
        primary_zone=primary,
        standby_zone=standby,
        ha_state=ha_state,
        fqdn=f"{SERVER}.postgres.database.azure.com",
        read_replicas=REPLICAS,
        incident_id=f"{SERVER}~20261125T071602Z",
        version=version,
        updated_at=T0,
    )


def standalone(client: object) -> redis.Redis:
    assert isinstance(client, redis.Redis)  # cluster="false" (the default of build_redis_client)
    return client


def client_for(
    server: RedisServer, *, socket_timeout: float = 1.0, connect_timeout: float = 1.0, retries: int = 2
) -> redis.Redis:
    return standalone(
        build_redis_client(
            server.url,
            entra_identity=None,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            retries=retries,
        )
    )


def test_publish_writes_the_hash_sets_the_epoch_and_announces_it(redis_server):
    cache = RedisTopologyCache(client_for(redis_server))
    watcher = redis_server.client()
    pubsub = watcher.pubsub()
    pubsub.subscribe(f"pgha:{{{SERVER}}}:events")
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"  # subscribed before publishing

    result = cache.publish(topo(7, primary="2", standby="1"), epoch=1)

    assert result.written is True
    assert result.epoch == 1
    assert result.invalidated == 0
    stored = cache.read(SERVER)
    assert stored == {
        "primary_zone": "2",
        "standby_zone": "1",
        "ha_state": "Healthy",
        "fqdn": "pg-prod-01.postgres.database.azure.com",
        "read_replicas": ",".join(REPLICAS),
        "replicas": "[]",
        "endpoints": "{}",
        "incident_id": "pg-prod-01~20261125T071602Z",
        "version": "7",
        "updated_at": "2026-11-25T07:16:02Z",
    }
    assert watcher.get(f"pgha:{{{SERVER}}}:epoch") == "1"
    message = next_message(pubsub)
    assert message is not None, "no message on the events channel within 3 s"
    assert json.loads(message["data"]) == {
        "server": SERVER,
        "version": 7,
        "epoch": 1,
        "primary_zone": "2",
        "standby_zone": "1",
        "ha_state": "Healthy",
        "incident_id": "pg-prod-01~20261125T071602Z",
    }
    pubsub.close()


def test_older_or_equal_version_is_refused_and_announces_nothing(redis_server):
    cache = RedisTopologyCache(client_for(redis_server))
    assert cache.publish(topo(10, primary="2"), epoch=3).written
    watcher = redis_server.client()
    pubsub = watcher.pubsub()
    pubsub.subscribe(f"pgha:{{{SERVER}}}:events")
    pubsub.get_message(timeout=2)

    older = cache.publish(topo(9, primary="3", ha_state="FailingOver"), epoch=4)
    replay = cache.publish(topo(10, primary="3"), epoch=4)

    assert (older.written, older.epoch) == (False, 3)
    assert (replay.written, replay.epoch) == (False, 3)
    assert cache.read(SERVER)["primary_zone"] == "2"
    assert cache.read(SERVER)["version"] == "10"
    assert watcher.get(f"pgha:{{{SERVER}}}:epoch") == "3"
    assert next_message(pubsub, timeout=0.5) is None
    pubsub.close()


def test_epoch_rises_once_per_primary_change_and_never_decreases(redis_server):
    cache = RedisTopologyCache(client_for(redis_server))
    watcher = redis_server.client()
    pubsub = watcher.pubsub()
    pubsub.subscribe(f"pgha:{{{SERVER}}}:events")
    pubsub.get_message(timeout=2)

    # The core passes epoch + 1 on a primary change and the same epoch otherwise.
    steps = [(1, "1", 1), (2, "2", 2), (3, "2", 2), (4, "1", 3), (5, "1", 2), (6, "1", 3)]
    epochs: list[int] = []
    for version, primary, epoch in steps:
        result = cache.publish(topo(version, primary=primary), epoch=epoch)
        assert result.written
        assert result.epoch is not None
        epochs.append(result.epoch)
        message = next_message(pubsub)
        assert message is not None
        assert json.loads(message["data"])["epoch"] == result.epoch

    assert epochs == [1, 2, 2, 3, 3, 3]  # a lower epoch (5 -> 2) never takes the stored one back
    assert epochs == sorted(epochs)
    assert watcher.get(f"pgha:{{{SERVER}}}:epoch") == "3"
    assert cache.read_epoch(SERVER) == 3
    pubsub.close()


def test_pattern_invalidation_scans_and_unlinks_only_matching_keys(redis_server):
    admin = redis_server.client()
    pipe = admin.pipeline(transaction=False)
    for i in range(1000):
        pipe.set(f"app:{SERVER}:orders:{i}", "x")
        pipe.set(f"app:pg-prod-02:orders:{i}", "x")
    pipe.execute()
    cache = RedisTopologyCache(client_for(redis_server), scan_batch=100)
    cache.publish(topo(1), epoch=1)
    admin.set("pgha:{pg-prod-02}:topology", "other server's, untouched")
    admin.config_resetstat()

    result = cache.publish(topo(2, primary="2"), epoch=2, patterns=("app:{server}:*", "pgha:*"))

    assert result.written
    assert result.invalidated == 1000
    assert admin.dbsize() == 1000 + 3  # the other server's keys, its topology, ours and our epoch
    assert admin.exists(f"app:{SERVER}:orders:5") == 0
    assert admin.exists("app:pg-prod-02:orders:5") == 1
    assert cache.read(SERVER)["version"] == "2"  # "pgha:*" never removes the cache's own keys
    assert admin.get(f"pgha:{{{SERVER}}}:epoch") == "2"
    stats = admin.info("commandstats")
    assert "cmdstat_keys" not in stats
    assert stats["cmdstat_scan"]["calls"] >= 2000 // 100
    assert stats["cmdstat_unlink"]["calls"] == 1000 // 100  # batches of scan_batch keys


def test_same_version_replay_invalidates_again_but_older_does_not(redis_server):
    admin = redis_server.client()
    cache = RedisTopologyCache(client_for(redis_server))
    cache.publish(topo(5), epoch=1)
    admin.set(f"app:{SERVER}:k", "cached after the first publish")

    replay = cache.publish(topo(5), epoch=1, patterns=("app:{server}:*",))
    assert (replay.written, replay.invalidated) == (False, 1)

    admin.set(f"app:{SERVER}:k", "x")
    older = cache.publish(topo(4), epoch=1, patterns=("app:{server}:*",))
    assert (older.written, older.invalidated) == (False, 0)
    assert admin.exists(f"app:{SERVER}:k") == 1


def test_redis_down_is_unavailable_quickly_and_the_same_client_recovers(redis_server):
    client = client_for(redis_server, socket_timeout=1.0, connect_timeout=1.0)
    cache = RedisTopologyCache(client)
    assert cache.publish(topo(1), epoch=1).written

    redis_server.stop()
    started = time.monotonic()
    with pytest.raises(CacheUnavailableError) as caught:
        cache.publish(topo(2, primary="2"), epoch=2)
    assert time.monotonic() - started < 5
    with pytest.raises(CacheUnavailableError):
        cache.ping()
    with pytest.raises(CacheUnavailableError):
        cache.read(SERVER)
    assert caught.value.__cause__ is None
    assert "127.0.0.1" not in str(caught.value)

    redis_server.start()  # same port, empty (no persistence): the script is reloaded on NOSCRIPT
    cache.ping()
    result = cache.publish(topo(2, primary="2"), epoch=2)
    assert (result.written, result.epoch) == (True, 2)
    assert cache.read(SERVER)["primary_zone"] == "2"


def test_a_frozen_redis_times_out_within_the_socket_timeout(redis_server):
    cache = RedisTopologyCache(client_for(redis_server, socket_timeout=0.5, connect_timeout=0.5, retries=1))
    cache.ping()
    redis_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(CacheUnavailableError, match=r"timed out|unreachable"):
            cache.publish(topo(1), epoch=1)
        assert time.monotonic() - started < 3
    finally:
        redis_server.resume()


def test_a_busy_redis_is_unavailable_not_permanent():
    with RedisServer(extra=("--busy-reply-threshold", "100")) as server:
        cache = RedisTopologyCache(client_for(server, retries=0))
        blocker = server.client(socket_timeout=10)

        def block() -> None:
            with pytest.raises(redis.RedisError):  # killed by SCRIPT KILL below
                blocker.eval("while true do end", 0)

        runner = threading.Thread(target=block, daemon=True)
        runner.start()
        time.sleep(0.3)
        try:
            with pytest.raises(CacheUnavailableError, match="BUSY"):
                cache.publish(topo(1), epoch=1)
        finally:
            server.client().script_kill()
            runner.join(timeout=5)
        assert cache.publish(topo(1), epoch=1).written


def test_wrong_password_is_a_permanent_config_error_without_the_password():
    with RedisServer(password="s3cret-pa55word") as server:
        url = f"redis://:wrong-pa55word@127.0.0.1:{server.port}/0"
        cache = RedisTopologyCache(build_redis_client(url, entra_identity=None))
        with pytest.raises(CacheConfigError) as caught:
            cache.ping()
        assert isinstance(caught.value, PermanentError)
        assert "pa55word" not in str(caught.value)
        assert url not in repr(caught.value)
        RedisTopologyCache(build_redis_client(server.url, entra_identity=None)).ping()


def test_read_of_an_unknown_server_is_empty(redis_server):
    assert RedisTopologyCache(client_for(redis_server)).read("pg-none") == {}


def test_rediss_url_builds_a_tls_connection_without_network():
    client = standalone(
        build_redis_client("rediss://:pw@cache.westeurope.redis.azure.net:10000/0", entra_identity=None)
    )
    pool = client.connection_pool
    assert pool.connection_class is SSLConnection
    kwargs = pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"]) == ("cache.westeurope.redis.azure.net", 10000)
    assert kwargs["socket_timeout"] == 2.0
    assert kwargs["socket_connect_timeout"] == 2.0
    assert kwargs["health_check_interval"] == 30
    assert kwargs["retry"].get_retries() == 2
    assert kwargs["decode_responses"] is True
    plain = standalone(build_redis_client("redis://127.0.0.1:6399/0", entra_identity=None))
    assert plain.connection_pool.connection_class is not SSLConnection


@pytest.mark.parametrize("identity", ["system", "00000000-0000-0000-0000-000000000001"])
def test_entra_identity_uses_a_managed_identity_credential_provider(identity):
    client = standalone(
        build_redis_client("rediss://cache.westeurope.redis.azure.net:10000", entra_identity=identity)
    )
    provider = client.connection_pool.connection_kwargs["credential_provider"]
    assert type(provider).__name__ == "EntraIdCredentialsProvider"
    assert client.connection_pool.connection_class is SSLConnection


@pytest.mark.parametrize(
    "url, identity",
    [
        ("redis://cache.example:6379", "system"),  # Entra needs TLS
        ("rediss://:pw-secret@cache.example:6380", "system"),  # password and Entra together
        ("http://:pw-secret@cache.example:6380", None),
        ("redis://:pw-secret@cache.example:notaport", None),
        ("rediss://:pw-secret@cache.example:6380/0?socket_timeout=abc", None),
    ],
)
def test_bad_redis_settings_are_config_errors_that_hide_the_url(url, identity):
    with pytest.raises(ConfigError) as caught:
        build_redis_client(url, entra_identity=identity)
    assert "REDIS_URL" in str(caught.value)
    assert "pw-secret" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_a_redis_down_when_the_worker_starts_fails_calls_not_the_app_and_is_retried(redis_server):
    """`auto` needs the node to answer: the client is built on first use and again after a failure."""
    redis_server.stop()
    cache = RedisTopologyCache(redis_client_factory(redis_server.url, entra_identity=None, cluster="auto"))
    with pytest.raises(CacheUnavailableError) as caught:
        cache.publish(topo(1), epoch=1)
    assert "127.0.0.1" not in str(caught.value)
    redis_server.start()
    assert cache.publish(topo(1), epoch=1).written
    assert cache.clustered is False


def test_a_cluster_with_a_dead_primary_is_unavailable_without_addresses():
    cluster = LocalRedisCluster(3).start()
    try:
        cache = RedisTopologyCache(
            redis_client_factory(cluster.url, entra_identity=None, cluster="true", retries=0)
        )
        servers = [f"pg-node-{i}" for i in range(12)]
        for server in servers:
            cache.publish(replace(topo(1), server=server), epoch=1)
        cluster.stop_node(2)  # the third primary: its slots are no longer served
        errors = []
        for server in servers:
            try:
                cache.publish(replace(topo(2), server=server), epoch=1)
            except CacheUnavailableError as exc:
                errors.append(str(exc))
        assert errors, "no publish reached the dead primary's slots"
        assert all("127.0.0.1" not in e and str(cluster.ports[2]) not in e for e in errors)
    finally:
        cluster.stop()


@pytest.mark.parametrize("value", ["auto", "true", "false", "TRUE"])
def test_redis_cluster_setting_is_validated(value):
    redis_client_factory("redis://127.0.0.1:6399/0", entra_identity=None, cluster=value)


def test_a_bad_redis_cluster_setting_is_a_config_error():
    with pytest.raises(ConfigError, match="REDIS_CLUSTER"):
        redis_client_factory("redis://127.0.0.1:6399/0", entra_identity=None, cluster="yes")
