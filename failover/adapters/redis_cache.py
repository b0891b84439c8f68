"""Redis adapter: the topology cache applications read (design section 5, invariant 6).

Layer: adapter (edge). Implements `failover.ports.TopologyCache` on a `redis.Redis` client given
to it, and builds that client from a URL. It translates every Redis error into the project's own
(`CacheUnavailableError`, retryable; `CacheConfigError`, permanent) with messages that never hold
the URL, a password, a token or the server's error text (Redis echoes command arguments). It must
not be imported by the core or by `function_app.py` at import time: only this module imports `redis`.

Per server, with the default prefix `pgha:` (see docs/redis-contract.md):

- `pgha:{server}:topology` hash: primary_zone, standby_zone, ha_state, fqdn, read_replicas
  (comma-separated), incident_id, version, updated_at. Written only by a strictly newer `version`.
- `pgha:{server}:epoch` string: an integer that only grows; +1 on every primary change.
- `pgha:{server}:events` channel: a JSON message after every accepted write.

All three change in one Lua script, so readers never see a topology without its epoch and event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis
from redis import exceptions as redis_errors

from failover.errors import CacheUnavailableError, ConfigError, PermanentError
from failover.model import Topology
from failover.ports import PublishResult
from failover.timeutil import iso

if TYPE_CHECKING:
    from redis.commands.core import Script

log = logging.getLogger(__name__)

ENTRA_RESOURCE = "https://redis.azure.com/"
_EPOCH_MARK = "\x00epoch\x00"

# KEYS[1] topology hash, KEYS[2] epoch key.
# ARGV[1] version, ARGV[2] epoch, ARGV[3] channel, ARGV[4]/ARGV[5] the event JSON before/after its
# epoch value, ARGV[6..] field, value pairs for the hash (version and updated_at included).
# Returns {status, epoch}: status 1 written, 0 same version already stored, -1 older (refused).
# Numbers are compared with tonumber (exact up to 2^53); the stored strings are returned unchanged.
_PUBLISH_LUA = """
local new_version = tonumber(ARGV[1])
local new_epoch = tonumber(ARGV[2])
local stored_epoch = redis.call('GET', KEYS[2])
local current = redis.call('HGET', KEYS[1], 'version')
if current then
  local current_version = tonumber(current)
  if current_version ~= nil and current_version >= new_version then
    local status = -1
    if current_version == new_version then status = 0 end
    return {status, stored_epoch}
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


class CacheConfigError(PermanentError):
    """Redis refused us for a reason retrying will not fix: bad credentials, ACL, wrong key type."""


def _error_code(exc: BaseException) -> str:
    """The leading upper-case word of a Redis error reply (BUSY, READONLY, ...), never its text."""
    text = str(exc.args[0]) if exc.args else ""
    word = text.split(" ", 1)[0]
    return word if word.isalpha() and word.isupper() and len(word) <= 20 else ""


def translate(exc: redis_errors.RedisError, action: str) -> Exception:
    """Map a redis-py error onto the project's errors (message without secrets or server text)."""
    kind = type(exc).__name__
    if isinstance(exc, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
        return CacheConfigError(f"redis refused the credentials during {action} ({kind})")
    if isinstance(exc, redis_errors.NoPermissionError):
        return CacheConfigError(f"redis ACL denies a command used by {action} ({kind})")
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
    """`TopologyCache` on a redis-py client (sync). Safe to share between threads."""

    def __init__(self, client: redis.Redis, *, prefix: str = "pgha:", scan_batch: int = 500) -> None:
        if scan_batch < 1:
            raise ValueError("scan_batch must be positive")
        self._client = client
        self._prefix = prefix
        self._scan_batch = scan_batch
        self._publish_script: Script = client.register_script(_PUBLISH_LUA)  # no I/O: hashed locally

    def __repr__(self) -> str:
        return f"RedisTopologyCache(prefix={self._prefix!r})"

    def topology_key(self, server: str) -> str:
        return f"{self._prefix}{server.lower()}:topology"

    def epoch_key(self, server: str) -> str:
        return f"{self._prefix}{server.lower()}:epoch"

    def channel(self, server: str) -> str:
        return f"{self._prefix}{server.lower()}:events"

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
            raw = self._publish_script(keys=[self.topology_key(server), self.epoch_key(server)], args=args)
        except redis_errors.RedisError as exc:
            error = translate(exc, "topology publish")
        else:
            status, stored_epoch = int(raw[0]), _as_int(raw[1])
            invalidated = 0
            if status >= 0 and patterns:
                invalidated = self.invalidate(patterns, server=server)
            if status < 0:
                log.info(
                    "redis topology for %s not written: version %s is not newer", server, topology.version
                )
            return PublishResult(written=status > 0, epoch=stored_epoch, invalidated=invalidated)
        log.warning("redis topology publish for %s failed: %s", server, error)
        raise error

    def invalidate(self, patterns: tuple[str, ...], *, server: str) -> int:
        """UNLINK keys matching each pattern (`{server}` is replaced), scanning in batches.

        Never touches the cache's own topology and epoch keys, whatever the pattern.
        """
        removed = 0
        try:
            for pattern in patterns:
                match = pattern.replace("{server}", server.lower())
                for batch in self._scan(match):
                    removed += int(self._client.unlink(*batch))
        except redis_errors.RedisError as exc:
            error = translate(exc, "cache invalidation")
        else:
            if removed:
                log.info("redis invalidated %d keys for %s", removed, server)
            return removed
        log.warning("redis invalidation for %s failed: %s", server, error)
        raise error

    def _scan(self, match: str) -> Iterator[list[str]]:
        batch: list[str] = []
        for key in self._client.scan_iter(match=match, count=self._scan_batch):
            name = key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else str(key)
            if self._is_own_key(name):
                continue
            batch.append(name)
            if len(batch) >= self._scan_batch:
                yield batch
                batch = []
        if batch:
            yield batch

    def _is_own_key(self, name: str) -> bool:
        return name.startswith(self._prefix) and (name.endswith(":topology") or name.endswith(":epoch"))

    def read(self, server: str) -> Mapping[str, str]:
        """The topology hash as str -> str (empty when nothing was published)."""
        try:
            raw: Mapping[Any, Any] = self._client.hgetall(self.topology_key(server))
        except redis_errors.RedisError as exc:
            error = translate(exc, "topology read")
        else:
            return {_text(k): _text(v) for k, v in raw.items()}
        raise error

    def read_epoch(self, server: str) -> int | None:
        try:
            raw = self._client.get(self.epoch_key(server))
        except redis_errors.RedisError as exc:
            error = translate(exc, "epoch read")
        else:
            return _as_int(raw)
        raise error

    def ping(self) -> None:
        try:
            self._client.ping()
        except redis_errors.RedisError as exc:
            error = translate(exc, "ping")
        else:
            return
        raise error


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


def build_redis_client(
    url: str,
    *,
    entra_identity: str | None,
    socket_timeout: float = 2.0,
    connect_timeout: float = 2.0,
    retries: int = 2,
    health_check_interval: int = 30,
    setting: str = "REDIS_URL",
) -> redis.Redis:
    """A redis-py client for `url` (no I/O: connections open on first use).

    `redis://host:port/db` locally; `rediss://` (TLS) for Azure Cache for Redis (port 6380) and
    Azure Managed Redis (port 10000). With `entra_identity` (`system`, or a user-assigned managed
    identity's client id) the client authenticates with Microsoft Entra tokens from the managed
    identity, renewed in the background by redis-entraid; TLS is then required and the URL must not
    carry a password. Connection and timeout errors are retried `retries` times with exponential
    backoff (0.2 s, 0.4 s, ... capped at 1 s), so a dead Redis fails within about
    `(retries + 1) * max(connect_timeout, socket_timeout) + 0.6` seconds (refused: about 0.6 s).
    """
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    try:
        parts = urlsplit(url)
        scheme, has_password, hostname = parts.scheme, parts.password is not None, parts.hostname
    except ValueError:
        raise ConfigError(f"{setting}: not a valid URL (value not shown)") from None
    if scheme not in {"redis", "rediss"} or not hostname:
        raise ConfigError(f"{setting}: expected redis://host:port or rediss://host:port (value not shown)")
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
        return redis.Redis.from_url(url, **kwargs)
    except (ValueError, TypeError):
        raise ConfigError(f"{setting}: the URL has an invalid option (value not shown)") from None


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
