"""Settings: read once from the environment, validated, secrets masked.

Layer: pure core (reads a mapping given to it; `Settings.from_env()` with no argument reads
`os.environ`). Missing or invalid settings raise one `ConfigError` naming every bad key; optional
integrations that are not configured are `None` and reported as `not_configured` on /api/health.
Secrets (connection strings, webhook URLs, passwords) are `failover.secrets.Secret` values: their
repr and str are masked, so a Settings object can be logged without leaking anything, and making
one registers the value with `failover.secrets.redact` (invariant 7).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from failover.errors import ConfigError
from failover.incidents import Policy
from failover.secrets import Secret as Secret  # noqa: PLC0414 - re-exported: Settings fields are Secrets
from failover.sources.resources import SERVER_NAME
from failover.urls import https_or_loopback

T = TypeVar("T")

_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_RESOURCE_ID = re.compile(
    r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.dbforpostgresql/flexibleservers/"
    rf"{SERVER_NAME}$",
    re.IGNORECASE,
)
_ZONE = re.compile(r"^[1-3]$")
_SCOPE = re.compile(r"^/subscriptions/[^/]+(/resourcegroups/[^/]+)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Settings:
    storage_connection: Secret | None
    storage_table_endpoint: str | None = None  # identity-based connection (managed identity)
    storage_queue_endpoint: str | None = None  # the same account's queues (probe fan-out)
    table_name: str = "failoverincidents"
    redis_url: Secret | None = None
    redis_prefix: str = "pgha:"
    redis_entra_identity: str | None = None
    redis_invalidate_patterns: tuple[str, ...] = ()
    redis_cluster: str = "auto"  # auto (ask the node: INFO cluster) | true | false
    redis_invalidate_seconds: float = 5.0  # per publish: SCAN + UNLINK stop after this long
    redis_invalidate_max_keys: int = 100_000  # per publish: SCAN + UNLINK stop after this many keys
    teams_webhook_url: Secret | None = None
    teams_routes: Secret | None = None
    pagerduty_routing_key: Secret | None = None
    pagerduty_routes: Secret | None = None
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    maintenance_windows: str = ""
    monitored_servers: tuple[str, ...] = ()
    discovery_scopes: tuple[str, ...] = ()
    alert_scopes: tuple[str, ...] = ()  # ALERT_SCOPES: alerts about servers here are accepted
    discovery_interval: timedelta = timedelta(minutes=15)
    arm_endpoint: str | None = None
    pg_conninfo_template: str = "host={fqdn} port=5432 dbname=postgres sslmode=require"
    pg_conninfo_overrides: Secret | None = None
    pg_user: str | None = None
    pg_password: Secret | None = None
    pg_auth: str = "entra"  # entra | password
    pg_create_heartbeat_table: bool = False
    probe_id: str = "pg-failover-responder"
    probe_window: timedelta = timedelta(seconds=50)
    probe_db: bool = True  # PROBE_DB=off runs the management API probe alone
    probe_db_outage_seconds: float = 3.0  # a write outage shorter than this is a note, not a failover
    probe_db_interval: float = 0.5
    probe_db_fast_interval: float = 0.2
    probe_max_workers: int = 16
    probe_record_workers: int = 8
    probe_shard_size: int = 50  # a fleet larger than this is fanned out over a queue, one shard a message
    probe_arm_interval: float = 5.0
    probe_fault_notify: timedelta = timedelta(seconds=600)  # one card when the probe cannot check this long
    maintenance_poll: timedelta = timedelta(minutes=60)  # maintenanceEvents read at most this often
    maintenance_cards: bool = False  # one Teams card per new upcoming maintenance event
    public_base_url: str | None = None
    continuation_secret: Secret | None = None
    effect_max_attempts: int = 8
    effect_backoff_base: float = 5.0
    effect_backoff_max: float = 900.0
    policy: Policy = field(default_factory=Policy)
    verify_deadline: timedelta = timedelta(seconds=1800)  # VERIFY_DEADLINE_SECONDS
    app_zones: tuple[str, ...] = ()  # APP_ZONES: the availability zones the application tier runs in
    digest_min_servers: int = 3  # DIGEST_MIN_SERVERS
    digest_window: timedelta = timedelta(seconds=120)  # DIGEST_WINDOW_SECONDS
    drill_min_interval: timedelta = timedelta(minutes=20)  # DRILL_MIN_INTERVAL_MINUTES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        return _Reader(os.environ if env is None else env).settings()

    @property
    def probes_configured(self) -> bool:
        return bool(self.monitored_servers or self.discovery_scopes)


def drill_min_interval(reader: _Reader) -> timedelta:
    """DRILL_MIN_INTERVAL_MINUTES: the drill refuses a failover sooner than this after the last one."""
    return timedelta(minutes=reader.number("DRILL_MIN_INTERVAL_MINUTES", 20.0, float, 0, 1440))


def drill_interval_from_env(env: Mapping[str, str] | None = None) -> timedelta:
    """The drill's guard setting alone (the drill runs without the app's other settings)."""
    reader = _Reader(os.environ if env is None else env)
    interval = drill_min_interval(reader)
    if reader.problems:
        raise ConfigError("invalid settings: " + "; ".join(reader.problems))
    return interval


class _Reader:
    """Collects every problem before failing, so one message names every bad key."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.env.get(key, "")
        value = value.strip() if isinstance(value, str) else ""
        return value or default

    def secret(self, key: str) -> Secret | None:
        value = self.text(key)
        return Secret(value) if value else None

    def _names_a_user(self) -> bool:
        """PG_USER, or a `user=` inside the conninfo template or overrides."""
        conninfo = f"{self.text('PG_CONNINFO_TEMPLATE') or ''} {self.text('PG_CONNINFO_OVERRIDES') or ''}"
        return bool(self.text("PG_USER")) or re.search(r"(^|\s)user\s*=", conninfo) is not None

    def listed_any(self) -> bool:
        """Whether any server is watched (the probes run)."""
        return bool(self.text("MONITORED_SERVERS") or self.text("DISCOVERY_SCOPES"))

    def flag(self, key: str) -> bool:
        raw = (self.text(key, "false") or "").lower()
        if raw not in ("true", "false", "1", "0", "yes", "no"):
            self.problems.append(f"{key}: must be true or false")
        return raw in ("true", "1", "yes")

    def number(self, key: str, default: T, cast: Callable[[str], T], low: float, high: float) -> T:
        raw = self.text(key)
        if raw is None:
            return default
        try:
            value = cast(raw)
        except ValueError:
            self.problems.append(f"{key}: not a number")
            return default
        if not low <= float(value) <= high:  # type: ignore[arg-type]
            self.problems.append(f"{key}: must be between {low:g} and {high:g}")
            return default
        return value

    def listed(self, key: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
        items = tuple(i.strip().lower() for i in re.split(r"[,;\s]+", self.text(key) or "") if i.strip())
        bad = [i for i in items if not pattern.match(i)]
        if bad:
            self.problems.append(f"{key}: {len(bad)} item(s) are not {what}")
        return tuple(i.rstrip("/") for i in items if pattern.match(i))

    def settings(self) -> Settings:
        settings = Settings(
            **self._storage(),
            **self._redis(),
            **self._channels(),
            **self._scopes(),
            **self._postgres(),
            **self._probes(),
            **self._after_failover(),
            policy=self._policy(),
        )
        managed_identity = settings.storage_connection is None and settings.storage_table_endpoint is not None
        if managed_identity and settings.continuation_secret is None:
            self.problems.append(
                "CONTINUATION_SECRET: required when storage is reached with a managed identity"
            )
        if settings.pg_auth == "password" and settings.pg_password is None and settings.probes_configured:
            self.problems.append("PG_PASSWORD: missing while PG_AUTH=password")
        if not https_or_loopback(settings.pagerduty_events_url):
            self.problems.append("PAGERDUTY_EVENTS_URL: must be https (http only on loopback)")
        if self.problems:
            raise ConfigError("invalid settings: " + "; ".join(self.problems))
        return settings

    # Each group below reads the settings of one concern and returns the Settings fields it fills.

    def _storage(self) -> dict[str, Any]:
        storage = self.secret("AzureWebJobsStorage")
        endpoint = self.text("AzureWebJobsStorage__tableServiceUri")
        account = self.text("AzureWebJobsStorage__accountName")
        if endpoint is None and account is not None:
            endpoint = f"https://{account}.table.core.windows.net"
        queue_endpoint = self.text("AzureWebJobsStorage__queueServiceUri")
        if queue_endpoint is None and account is not None:
            queue_endpoint = f"https://{account}.queue.core.windows.net"
        if storage is None and endpoint is None:
            self.problems.append(
                "AzureWebJobsStorage: missing (a connection string, UseDevelopmentStorage=true for Azurite,"
                " or AzureWebJobsStorage__accountName for a managed identity)"
            )
        table = self.text("FAILOVER_TABLE", "failoverincidents") or ""
        if not _TABLE_NAME.match(table):
            self.problems.append("FAILOVER_TABLE: 3-63 letters and digits, starting with a letter")
        return {
            "storage_connection": storage,
            "storage_table_endpoint": endpoint,
            "storage_queue_endpoint": queue_endpoint,
            "table_name": table,
            "public_base_url": (self.text("PUBLIC_BASE_URL") or "").rstrip("/") or None,
            "continuation_secret": self.secret("CONTINUATION_SECRET"),
        }

    def _redis(self) -> dict[str, Any]:
        redis_cluster = (self.text("REDIS_CLUSTER", "auto") or "").lower()
        if redis_cluster not in ("auto", "true", "false"):
            self.problems.append("REDIS_CLUSTER: must be auto, true or false")
        patterns = (self.text("REDIS_INVALIDATE_PATTERNS") or "").split(";")
        return {
            "redis_url": self.secret("REDIS_URL"),
            "redis_prefix": self.text("REDIS_PREFIX", "pgha:") or "pgha:",
            "redis_entra_identity": self.text("REDIS_ENTRA_IDENTITY"),
            "redis_invalidate_patterns": tuple(p.strip() for p in patterns if p.strip()),
            "redis_cluster": redis_cluster,
            "redis_invalidate_seconds": self.number("REDIS_INVALIDATE_SECONDS", 5.0, float, 0.1, 300),
            "redis_invalidate_max_keys": self.number(
                "REDIS_INVALIDATE_MAX_KEYS", 100_000, int, 1, 10_000_000
            ),
        }

    def _channels(self) -> dict[str, Any]:
        return {
            "teams_webhook_url": self.secret("TEAMS_WEBHOOK_URL"),
            "teams_routes": self.secret("TEAMS_ROUTES"),
            "pagerduty_routing_key": self.secret("PAGERDUTY_ROUTING_KEY"),
            "pagerduty_routes": self.secret("PAGERDUTY_ROUTES"),
            "pagerduty_events_url": self.text("PAGERDUTY_EVENTS_URL", Settings.pagerduty_events_url) or "",
            "maintenance_windows": self.text("MAINTENANCE_WINDOWS", "") or "",
            "maintenance_cards": self.flag("MAINTENANCE_CARDS"),
            "effect_max_attempts": self.number("EFFECT_MAX_ATTEMPTS", 8, int, 1, 50),
            "effect_backoff_base": self.number("EFFECT_BACKOFF_BASE_SECONDS", 5.0, float, 0.01, 3600),
            "effect_backoff_max": self.number("EFFECT_BACKOFF_MAX_SECONDS", 900.0, float, 0.01, 86400),
        }

    def _scopes(self) -> dict[str, Any]:
        return {
            "monitored_servers": self.listed(
                "MONITORED_SERVERS", _RESOURCE_ID, "flexible server resource ids"
            ),
            "discovery_scopes": self.listed("DISCOVERY_SCOPES", _SCOPE, "subscription or resource group ids"),
            "alert_scopes": self.listed("ALERT_SCOPES", _SCOPE, "subscription or resource group ids"),
            "discovery_interval": timedelta(
                minutes=self.number("DISCOVERY_INTERVAL_MINUTES", 15.0, float, 1, 1440)
            ),
            "arm_endpoint": self.text("ARM_ENDPOINT"),
        }

    def _postgres(self) -> dict[str, Any]:
        pg_auth = (self.text("PG_AUTH", "entra") or "").lower()
        if pg_auth not in ("entra", "password"):
            self.problems.append("PG_AUTH: must be 'entra' or 'password'")
        return {
            "pg_conninfo_template": self.text("PG_CONNINFO_TEMPLATE", Settings.pg_conninfo_template) or "",
            "pg_conninfo_overrides": self.secret("PG_CONNINFO_OVERRIDES"),
            "pg_user": self.text("PG_USER"),
            "pg_password": self.secret("PG_PASSWORD"),
            "pg_auth": pg_auth,
            "pg_create_heartbeat_table": self.flag("PG_CREATE_HEARTBEAT_TABLE"),
        }

    def _probes(self) -> dict[str, Any]:
        probe_db_word = (self.text("PROBE_DB", "on") or "").lower()
        if probe_db_word not in ("on", "off"):
            self.problems.append("PROBE_DB: must be on or off")
        probe_db = probe_db_word != "off"
        if probe_db and self.listed_any() and not self._names_a_user():
            self.problems.append("PG_USER: required while the database probe is on (or set PROBE_DB=off)")
        return {
            "probe_db": probe_db,
            "probe_db_outage_seconds": self.number("PROBE_DB_OUTAGE_SECONDS", 3.0, float, 0.5, 600),
            "probe_id": self.text("PROBE_ID", "pg-failover-responder") or "pg-failover-responder",
            "probe_window": timedelta(seconds=self.number("PROBE_WINDOW_SECONDS", 50.0, float, 0, 3600)),
            "probe_db_interval": self.number("PROBE_DB_INTERVAL_SECONDS", 0.5, float, 0.05, 60),
            "probe_db_fast_interval": self.number("PROBE_DB_FAST_INTERVAL_SECONDS", 0.2, float, 0.05, 60),
            "probe_max_workers": self.number("PROBE_MAX_WORKERS", 16, int, 1, 256),
            "probe_record_workers": self.number("PROBE_RECORD_WORKERS", 8, int, 1, 256),
            "probe_shard_size": self.number("PROBE_SHARD_SIZE", 50, int, 1, 1000),
            "probe_arm_interval": self.number("PROBE_ARM_INTERVAL_SECONDS", 5.0, float, 0.1, 3600),
            "probe_fault_notify": timedelta(
                seconds=self.number("PROBE_FAULT_NOTIFY_SECONDS", 600.0, float, 0, 7 * 86400)
            ),
            "maintenance_poll": timedelta(
                minutes=self.number("MAINTENANCE_POLL_MINUTES", 60.0, float, 1, 1440)
            ),
        }

    def _after_failover(self) -> dict[str, Any]:
        return {
            "verify_deadline": timedelta(
                seconds=self.number("VERIFY_DEADLINE_SECONDS", 1800.0, float, 60, 86400)
            ),
            "app_zones": self.listed("APP_ZONES", _ZONE, "availability zones (1, 2 or 3)"),
            "digest_min_servers": self.number("DIGEST_MIN_SERVERS", 3, int, 2, 1000),
            "digest_window": timedelta(seconds=self.number("DIGEST_WINDOW_SECONDS", 120.0, float, 10, 3600)),
            "drill_min_interval": drill_min_interval(self),
        }

    def _policy(self) -> Policy:
        return Policy(
            quiet=timedelta(seconds=self.number("INCIDENT_QUIET_SECONDS", 300.0, float, 0, 86400)),
            stale=timedelta(seconds=self.number("INCIDENT_STALE_SECONDS", 7200.0, float, 60, 7 * 86400)),
            clock_skew=timedelta(seconds=self.number("CLOCK_SKEW_SECONDS", 300.0, float, 0, 86400)),
        )
