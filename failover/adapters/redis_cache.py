"""Redis adapter: the topology cache applications read (design section 5, invariant 6).

Layer: adapter (edge). Implements `failover.ports.TopologyCache` on a redis-py client given to it
(`redis.Redis` for a standalone cache, `redis.cluster.RedisCluster` for a clustered one), and
builds that client from a URL. It translates every Redis error, cluster errors included, into the
project's own (`CacheUnavailableError`, retryable; `CacheConfigError`, permanent) with messages
that never hold the URL, a password, a token, a node address or the server's error text (Redis
echoes command arguments). It must not be imported by the core or by `function_app.py` at import
time: only this module imports `redis`.

Per server, with the default prefix `pgha:` (see docs/redis-contract.md); the server name sits in
hash-tag braces, so every key of one server is in one hash slot of a cluster:

- `pgha:{server}:topology` hash: primary_zone, standby_zone, ha_state, fqdn, read_replicas
  (comma-separated), replicas (JSON list), endpoints (JSON object), incident_id, version,
  updated_at. Written only by a strictly newer `version`.
- `pgha:{server}:epoch` string: an integer that only grows; +1 on every primary change.
- `pgha:{server}:events` channel: a JSON message after every accepted write.

All three change in one Lua script (one slot), so readers never see a topology without its epoch
and event. Invalidation scans every primary node within a per-run budget and never uses KEYS.

Size: over 400 lines because it is the one module that speaks to Redis, standalone and clustered
(client choice, Lua compare-and-set, bounded invalidation, reconciliation reads, error mapping).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

import redis
from redis import exceptions as redis_errors
from redis.cluster import RedisCluster
from redis.crc import key_slot

from failover.errors import CacheUnavailableError, ConfigError, PermanentError
from failover.model import Topology
from failover.ports import InvalidationResult, PublishResult
from failover.timeutil import iso

if TYPE_CHECKING:
    from redis.commands.core import Script

log = logging.getLogger(__name__)

Client: TypeAlias = "redis.Redis | RedisCluster"
CLUSTER_MODES = ("auto", "true", "false")
ENTRA_RESOURCE = "https://redis.azure.com/"
_EPOCH_MARK = "\x00epoch\x00"
_REDIS_ERRORS = (redis_errors.RedisError, redis_errors.RedisClusterException)

# KEYS[1] topology hash, KEYS[2] epoch key (one hash slot: same {server} tag).
# ARGV[1] version, ARGV[2] epoch, ARGV[3] channel, ARGV[4]/ARGV[5] the event JSON before/after its
# epoch value, ARGV[6..] field, value pairs for the hash (version and updated_at included).
# Returns {status, epoch}: status 1 written, 0 same version already stored, -1 older (refused).
# A same-version replay restores an epoch key the cache lost (eviction) but never raises one.
# Numbers are compared with tonumber (exact up to 2^53); the stored strings are returned unchanged.
_PUBLISH_LUA = """
local new_version = tonumber(ARGV[1])
local new_epoch = tonumber(ARGV[2])
local stored_epoch = redis.call('GET', KEYS[2])
local current = redis.call('HGET', KEYS[1], 'version')
if current then
  local current_version = tonumber(current)
  if current_version ~= nil and current_version > new_version then
    return {-1, stored_epoch}
  end
  if current_version ~= nil and current_version == new_version then
    if stored_epoch == false then
      redis.call('SET', KEYS[2], ARGV[2])
      stored_epoch = ARGV[2]
    end
    return {0, stored_epoch}
  end
end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(fields))
local epoch = stored_epoch
if stored_epoch == false or tonumber(stored_epoch) == nil or new_epoch > tonumber(stored_epoch) then
  redis.call('SET', KEYS[2], ARGV[2])
  epoch = ARGV[2]
end
redis.call('PUBLISH', ARGV[3], ARGV[4] .. epoch .. ARGV[5])
return {1, epoch}
"""

_CONFIG_CODES = frozenset({"WRONGTYPE", "NOPERM", "NOAUTH", "WRONGPASS", "CROSSSLOT", "NOSCRIPT"})
# Cluster redirections and outages redis-py could not ride out: retrying later will work.
_CLUSTER_TRANSIENT: dict[type[BaseException], str] = {
    redis_errors.ClusterDownError: "CLUSTERDOWN",
    redis_errors.TryAgainError: "TRYAGAIN",
    redis_errors.MovedError: "MOVED",
    redis_errors.AskError: "ASK",
    redis_errors.SlotNotCoveredError: "slot not covered",
    redis_errors.ClusterError: "cluster error",
    redis_errors.RedisClusterException: "cluster unreachable",
}


# Errors after which a publish sent straight to a cluster node is retried through RedisCluster.
_CLUSTER_REROUTE = (
    redis_errors.AskError,  # MovedError included
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.SlotNotCoveredError,
)


class CacheConfigError(PermanentError):
    """Redis refused us for a reason retrying will not fix: bad credentials, ACL, wrong key type."""


def _error_code(exc: BaseException) -> str:
    """The leading upper-case word of a Redis error reply (BUSY, READONLY, ...), never its text."""
    text = str(exc.args[0]) if exc.args else ""
    word = text.split(" ", 1)[0]
    return word if word.isalpha() and word.isupper() and len(word) <= 20 else ""


def translate(exc: BaseException, action: str) -> Exception:
    """Map a redis-py error onto the project's errors (message without secrets or server text)."""
    kind = type(exc).__name__
    if isinstance(exc, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
        return CacheConfigError(f"redis refused the credentials during {action} ({kind})")
    if isinstance(exc, redis_errors.NoPermissionError):
        return CacheConfigError(f"redis ACL denies a command used by {action} ({kind})")
    if isinstance(exc, redis_errors.ClusterCrossSlotError):
        return CacheConfigError(f"redis refused {action}: CROSSSLOT (keys in different hash slots)")
    for family, label in _CLUSTER_TRANSIENT.items():
        if isinstance(exc, family):
            return CacheUnavailableError(f"redis cluster could not serve {action}: {label} ({kind})")
    if isinstance(exc, redis_errors.ResponseError):
        code = _error_code(exc)
        if code in _CONFIG_CODES or (code == "ERR" and "script" in str(exc).lower()[:40]):
            return CacheConfigError(f"redis refused {action}: {code or kind}")
        return CacheUnavailableError(f"redis could not serve {action}: {code or kind}")
    if isinstance(exc, redis_errors.TimeoutError):
        return CacheUnavailableError(f"redis timed out during {action}")
    if isinstance(exc, redis_errors.ConnectionError):
        return CacheUnavailableError(f"redis unreachable during {action} ({kind})")
    return CacheUnavailableError(f"redis failed during {action} ({kind})")


class RedisTopologyCache:
    """`TopologyCache` on a redis-py client, standalone or cluster (sync). Safe to share between threads.

    `client` is a client, or a function building one on first use (`wiring` passes
    `build_redis_client` this way: detecting a cluster and connecting to it need I/O, and a Redis
    that is down when the worker starts must not stop the app; the next call tries again).
    Invalidation is bounded per call: `scan_batch` is the SCAN COUNT and the UNLINK batch size,
    `invalidate_seconds` and `invalidate_max_keys` cap one run (`monotonic` measures it).
    """

    def __init__(
        self,
        client: Client | Callable[[], Client],
        *,
        prefix: str = "pgha:",
        scan_batch: int = 500,
        invalidate_seconds: float = 5.0,
        invalidate_max_keys: int = 100_000,
        check_batch: int = 500,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if min(scan_batch, invalidate_max_keys, check_batch) < 1 or invalidate_seconds <= 0:
            raise ValueError(
                "scan_batch, check_batch, invalidate_seconds and invalidate_max_keys must be positive"
            )
        self._prefix = prefix
        self._scan_batch = scan_batch
        self._invalidate_seconds = invalidate_seconds
        self._invalidate_max_keys = invalidate_max_keys
        self._check_batch = check_batch
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._factory: Callable[[], Client] | None = None
        self._client: Client | None = None
        self._publish_script: Script | None = None
        if isinstance(client, redis.Redis | RedisCluster):
            self._attach(client)
        else:
            self._factory = client

    def __repr__(self) -> str:
        return f"RedisTopologyCache(prefix={self._prefix!r})"

    def _attach(self, client: Client) -> None:
        self._publish_script = client.register_script(_PUBLISH_LUA)  # no I/O: hashed locally
        self._client = client

    def client(self, action: str) -> Client:
        """The client, built on first use; a build failure is the project's error and retried next call."""
        if self._client is not None:
            return self._client
        with self._lock:
            if self._client is None:
                assert self._factory is not None
                try:
                    self._attach(self._factory())
                except _REDIS_ERRORS as exc:
                    error = translate(exc, action)
                    log.warning("redis client for %s could not be built: %s", action, error)
                    raise error from None
            assert self._client is not None
            return self._client

    @property
    def clustered(self) -> bool:
        return isinstance(self._client, RedisCluster)

    def topology_key(self, server: str) -> str:
        return f"{self._prefix}{{{server.lower()}}}:topology"

    def epoch_key(self, server: str) -> str:
        return f"{self._prefix}{{{server.lower()}}}:epoch"

    def channel(self, server: str) -> str:
        return f"{self._prefix}{{{server.lower()}}}:events"

    def publish(self, topology: Topology, *, epoch: int, patterns: tuple[str, ...] = ()) -> PublishResult:
        """Write the topology if its version is newer, raise the epoch, announce it; then invalidate.

        A same-version replay (an effect retried after a crash between the write and the
        invalidation) is not written again (`written` False) but does invalidate the patterns
        again, so an invalidation is never lost; an older version touches nothing.
        """
        server = topology.server.lower()
        fields = _hash_fields(topology)
        head, tail = _event_json(topology).split(json.dumps(_EPOCH_MARK), 1)
        args: list[str | int] = [topology.version, epoch, self.channel(server), head, tail]
        for name, value in fields.items():
            args.extend((name, value))
        try:
            raw = self._run_publish([self.topology_key(server), self.epoch_key(server)], args)
        except _REDIS_ERRORS as exc:
            error = translate(exc, "topology publish")
        else:
            status, stored_epoch = int(raw[0]), _as_int(raw[1])
            invalidated = InvalidationResult(0, True)
            if status >= 0 and patterns:
                invalidated = self.invalidate(patterns, server=server)
            if status < 0:
                log.info(
                    "redis topology for %s not written: version %s is not newer", server, topology.version
                )
            return PublishResult(
                written=status > 0,
                epoch=stored_epoch,
                invalidated=invalidated.unlinked,
                invalidation_complete=invalidated.complete,
            )
        log.warning("redis topology publish for %s failed: %s", server, error)
        raise error

    def _run_publish(self, keys: list[str], args: list[str | int]) -> Any:
        """Run the publish script. On a cluster, straight on the connection of the primary that owns
        the server's slot in redis-py's slot map (a quarter of the per-call cost of the routed
        path); a redirection or a lost node falls back to `RedisCluster`, which follows MOVED/ASK,
        refreshes its slot map and retries, so the next call goes to the right node again."""
        client = self.client("topology publish")
        assert self._publish_script is not None
        if isinstance(client, RedisCluster):
            try:
                node = client.nodes_manager.get_node_from_slot(key_slot(keys[0].encode("utf-8")))
                return self._publish_script(keys=keys, args=args, client=client.get_redis_connection(node))
            except _CLUSTER_REROUTE:
                log.info("redis cluster: slot map out of date for a topology publish; rerouting")
        return self._publish_script(keys=keys, args=args, client=client)

    def invalidate(self, patterns: tuple[str, ...], *, server: str) -> InvalidationResult:
        """UNLINK keys matching each pattern (`{server}` is replaced) on every primary node, bounded.

        SCAN with COUNT `scan_batch` node by node (a cluster's primaries, or the one standalone
        node), UNLINK in batches (per hash slot on a cluster); stops when `invalidate_seconds`
        have passed or `invalidate_max_keys` keys were unlinked, and then says it is incomplete.
        Never touches the cache's own topology and epoch keys, whatever the pattern.
        """
        removed = 0
        complete = True
        deadline = self._monotonic() + self._invalidate_seconds
        try:
            nodes = self._primaries("cache invalidation")
            for pattern in patterns:
                match = pattern.replace("{server}", server.lower())
                for node in nodes:
                    unlinked, finished = self._sweep(
                        node, match, deadline, self._invalidate_max_keys - removed
                    )
                    removed += unlinked
                    complete = complete and finished
        except _REDIS_ERRORS as exc:
            error = translate(exc, "cache invalidation")
        else:
            if removed:
                log.info("redis invalidated %d keys for %s", removed, server)
            if not complete:
                log.warning(
                    "redis invalidation for %s stopped at its budget (%d keys, %.1f s): incomplete",
                    server,
                    removed,
                    self._invalidate_seconds,
                )
            return InvalidationResult(removed, complete)
        log.warning("redis invalidation for %s failed: %s", server, error)
        raise error

    def _primaries(self, action: str) -> list[redis.Redis]:
        client = self.client(action)
        if isinstance(client, RedisCluster):
            primaries = client.nodes_manager.get_nodes_by_server_type("primary")
            return [client.get_redis_connection(node) for node in primaries]
        return [client]

    def _sweep(self, node: redis.Redis, match: str, deadline: float, allowance: int) -> tuple[int, bool]:
        """UNLINK up to `allowance` keys matching `match` on one node before `deadline`.

        Returns (unlinked, finished): finished when the SCAN went all the way round.
        """
        removed = 0
        batch: list[str] = []
        cursor: int | None = None
        truncated = False
        while (
            cursor != 0
            and not truncated
            and self._monotonic() < deadline
            and removed + len(batch) < allowance
        ):
            cursor, keys = node.scan(cursor or 0, match=match, count=self._scan_batch)
            names = [name for name in map(_key_text, keys) if not self._is_own_key(name)]
            room = allowance - removed - len(batch)
            truncated = len(names) > room
            batch.extend(names[:room])
            while len(batch) >= self._scan_batch:
                removed += self._unlink(node, batch[: self._scan_batch])
                batch = batch[self._scan_batch :]
        if batch:
            removed += self._unlink(node, batch)
        return removed, cursor == 0 and not truncated

    def _unlink(self, node: redis.Redis, batch: list[str]) -> int:
        if not isinstance(self._client, RedisCluster):
            return int(node.unlink(*batch))
        by_slot: dict[int, list[str]] = defaultdict(list)
        for key in batch:
            by_slot[key_slot(key.encode("utf-8", "surrogateescape"))].append(key)
        pipe = node.pipeline(transaction=False)
        for keys in by_slot.values():
            pipe.unlink(*keys)
        return sum(int(n) for n in pipe.execute())

    def _is_own_key(self, name: str) -> bool:
        return name.startswith(self._prefix) and (name.endswith(":topology") or name.endswith(":epoch"))

    def missing_or_older(self, versions: Mapping[str, int]) -> frozenset[str]:
        """Servers whose stored topology is missing or older than `versions[server]`, or whose epoch
        is missing. One pipelined round trip per `check_batch` servers (per node on a cluster)."""
        servers = [s.lower() for s in versions]
        wanted = {s.lower(): int(v) for s, v in versions.items()}
        stale: set[str] = set()
        try:
            client = self.client("topology check")
            for start in range(0, len(servers), self._check_batch):
                chunk = servers[start : start + self._check_batch]
                pipe = client.pipeline(transaction=False)
                for server in chunk:
                    pipe.hget(self.topology_key(server), "version")
                    pipe.exists(self.epoch_key(server))
                answers = pipe.execute()
                for i, server in enumerate(chunk):
                    version, has_epoch = _as_int(answers[2 * i]), int(answers[2 * i + 1])
                    if version is None or version < wanted[server] or not has_epoch:
                        stale.add(server)
        except _REDIS_ERRORS as exc:
            error = translate(exc, "topology check")
        else:
            return frozenset(stale)
        log.warning("redis topology check failed: %s", error)
        raise error

    def read(self, server: str) -> Mapping[str, str]:
        """The topology hash as str -> str (empty when nothing was published)."""
        try:
            raw: Mapping[Any, Any] = self.client("topology read").hgetall(self.topology_key(server))
        except _REDIS_ERRORS as exc:
            error = translate(exc, "topology read")
        else:
            return {_text(k): _text(v) for k, v in raw.items()}
        raise error

    def read_epoch(self, server: str) -> int | None:
        try:
            raw = self.client("epoch read").get(self.epoch_key(server))
        except _REDIS_ERRORS as exc:
            error = translate(exc, "epoch read")
        else:
            return _as_int(raw)
        raise error

    def ping(self) -> None:
        try:
            self.client("ping").ping()
        except _REDIS_ERRORS as exc:
            error = translate(exc, "ping")
        else:
            return
        raise error


def _key_text(key: object) -> str:
    return key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else str(key)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _as_int(value: object) -> int | None:
    if value is None or value is False:
        return None
    try:
        return int(_text(value))
    except ValueError:
        return None


def _hash_fields(topology: Topology) -> dict[str, str]:
    return {
        "primary_zone": topology.primary_zone or "",
        "standby_zone": topology.standby_zone or "",
        "ha_state": topology.ha_state or "",
        "fqdn": topology.fqdn or "",
        "read_replicas": ",".join(topology.read_replicas),
        "replicas": json.dumps(list(topology.replicas), separators=(",", ":"), sort_keys=True, default=str),
        "endpoints": json.dumps(dict(topology.endpoints), separators=(",", ":"), sort_keys=True),
        "incident_id": topology.incident_id or "",
        "version": str(int(topology.version)),
        "updated_at": iso(topology.updated_at) or "",
    }


def _event_json(topology: Topology) -> str:
    return json.dumps(
        {
            "server": topology.server.lower(),
            "version": int(topology.version),
            "epoch": _EPOCH_MARK,
            "primary_zone": topology.primary_zone,
            "standby_zone": topology.standby_zone,
            "ha_state": topology.ha_state,
            "incident_id": topology.incident_id,
        },
        separators=(",", ":"),
    )


def _checked_url(url: str, setting: str) -> tuple[str, bool]:
    """(scheme, whether it carries a password) of a redis URL; `ConfigError` never shows the value."""
    try:
        parts = urlsplit(url)
        scheme, has_password, hostname = parts.scheme, parts.password is not None, parts.hostname
    except ValueError:
        raise ConfigError(f"{setting}: not a valid URL (value not shown)") from None
    if scheme not in {"redis", "rediss"} or not hostname:
        raise ConfigError(f"{setting}: expected redis://host:port or rediss://host:port (value not shown)")
    return scheme, has_password


def redis_client_factory(
    url: str,
    *,
    entra_identity: str | None,
    cluster: str = "auto",
    socket_timeout: float = 2.0,
    connect_timeout: float = 2.0,
    retries: int = 2,
    health_check_interval: int = 30,
    setting: str = "REDIS_URL",
) -> Callable[[], Client]:
    """Check the settings now (no I/O; `ConfigError` naming `setting`, never the value) and return
    a function that builds the client: `redis.Redis`, or `RedisCluster` when `cluster` is `true`,
    or `auto` and the node says `cluster_enabled:1` (`INFO cluster`, one round trip).

    `redis://host:port/db` locally; `rediss://` (TLS) for Azure Cache for Redis (port 6380) and
    Azure Managed Redis (port 10000). With `entra_identity` (`system`, or a user-assigned managed
    identity's client id) the client authenticates with Microsoft Entra tokens from the managed
    identity, renewed in the background by redis-entraid; TLS is then required and the URL must not
    carry a password. Connection and timeout errors are retried `retries` times with exponential
    backoff (0.2 s, 0.4 s, ... capped at 1 s), so a dead Redis fails within about
    `(retries + 1) * max(connect_timeout, socket_timeout) + 0.6` seconds (refused: about 0.6 s).
    A cluster client follows MOVED/ASK redirections and refreshes its slot map by itself.
    """
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    mode = cluster.strip().lower()
    if mode not in CLUSTER_MODES:
        raise ConfigError("REDIS_CLUSTER: must be auto, true or false")
    scheme, has_password = _checked_url(url, setting)
    kwargs: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.1), max(retries, 0)),
        "health_check_interval": health_check_interval,
        "client_name": "pg-failover-responder",
    }
    if entra_identity:
        if scheme != "rediss":
            raise ConfigError(f"{setting}: Microsoft Entra authentication needs TLS (rediss://)")
        if has_password:
            raise ConfigError(f"{setting}: remove the password from the URL when using Microsoft Entra ID")
        kwargs["credential_provider"] = _entra_credential_provider(entra_identity)
    try:
        standalone = redis.Redis.from_url(url, **kwargs)
    except (ValueError, TypeError):
        raise ConfigError(f"{setting}: the URL has an invalid option (value not shown)") from None

    def build() -> Client:
        if mode == "false" or (mode == "auto" and not _cluster_enabled(standalone)):
            return standalone
        standalone.close()
        client = RedisCluster.from_url(url, **kwargs)
        log.info("redis: cluster client (slots and redirections handled by redis-py)")
        return client

    return build


def build_redis_client(
    url: str, *, entra_identity: str | None, cluster: str = "false", **options: Any
) -> Client:
    """The client `redis_client_factory` builds, built now (no I/O unless `cluster` is not `false`)."""
    return redis_client_factory(url, entra_identity=entra_identity, cluster=cluster, **options)()


def _cluster_enabled(client: redis.Redis) -> bool:
    """`INFO cluster` says whether the node runs in cluster mode (Azure Managed Redis OSS policy,
    clustered Azure Cache for Redis); a proxy (Enterprise policy) answers 0 and works standalone."""
    info: Mapping[str, Any] = client.info("cluster")
    return str(info.get("cluster_enabled", 0)) == "1"


def _entra_credential_provider(identity: str) -> Any:
    """redis-entraid's managed-identity credential provider (imported only when used)."""
    from redis_entraid.cred_provider import create_from_managed_identity
    from redis_entraid.identity_provider import ManagedIdentityIdType, ManagedIdentityType

    if identity.strip().lower() == "system":
        return create_from_managed_identity(
            identity_type=ManagedIdentityType.SYSTEM_ASSIGNED, resource=ENTRA_RESOURCE
        )
    return create_from_managed_identity(
        identity_type=ManagedIdentityType.USER_ASSIGNED,
        resource=ENTRA_RESOURCE,
        id_type=ManagedIdentityIdType.CLIENT_ID,
        id_value=identity.strip(),
    )
