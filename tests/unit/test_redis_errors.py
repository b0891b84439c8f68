"""Redis and Redis Cluster errors become the project's own, without addresses, URLs or passwords.

Pure: builds redis-py exception values the way redis-py raises them; no server is contacted.
"""

from __future__ import annotations

import pytest
from redis import exceptions as e

from failover.adapters.redis_cache import CacheConfigError, translate
from failover.errors import CacheUnavailableError

SECRET_TEXT = "redis://:hunter2-pass@10.1.2.3:6380 node 10.1.2.3:6380 key pgha:{pg-prod-01}:topology"


@pytest.mark.parametrize(
    "error, expected, label",
    [
        (e.ClusterCrossSlotError(SECRET_TEXT), CacheConfigError, "CROSSSLOT"),
        (e.ClusterDownError(SECRET_TEXT), CacheUnavailableError, "CLUSTERDOWN"),
        (e.MasterDownError(SECRET_TEXT), CacheUnavailableError, "CLUSTERDOWN"),
        (e.MovedError("3999 10.1.2.3:6380"), CacheUnavailableError, "MOVED"),
        (e.AskError("3999 10.1.2.3:6380"), CacheUnavailableError, "ASK"),
        (e.TryAgainError(SECRET_TEXT), CacheUnavailableError, "TRYAGAIN"),
        (e.SlotNotCoveredError(SECRET_TEXT), CacheUnavailableError, "slot not covered"),
        (e.ClusterError(SECRET_TEXT), CacheUnavailableError, "cluster error"),
        (e.RedisClusterException(SECRET_TEXT), CacheUnavailableError, "cluster unreachable"),
        (e.ConnectionError(SECRET_TEXT), CacheUnavailableError, "unreachable"),
        (e.TimeoutError(SECRET_TEXT), CacheUnavailableError, "timed out"),
        (e.AuthenticationError(SECRET_TEXT), CacheConfigError, "credentials"),
        (e.NoPermissionError(SECRET_TEXT), CacheConfigError, "ACL"),
        (e.ResponseError("WRONGTYPE " + SECRET_TEXT), CacheConfigError, "WRONGTYPE"),
        (e.ResponseError("BUSY " + SECRET_TEXT), CacheUnavailableError, "BUSY"),
    ],
)
def test_cluster_and_node_errors_map_to_the_projects_errors(error, expected, label):
    mapped = translate(error, "topology publish")
    assert type(mapped) is expected
    assert label in str(mapped)
    assert "topology publish" in str(mapped)
    for leak in ("hunter2", "10.1.2.3", "6380", "redis://", "pgha:"):
        assert leak not in str(mapped)
