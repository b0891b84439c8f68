"""Settings: read once from the environment, validated, secrets masked.

Layer: pure core (reads a mapping given to it; `Settings.from_env()` with no argument reads
`os.environ`). Missing or invalid settings raise one `ConfigError` naming every bad key; optional
integrations that are not configured are `None` and reported as `not_configured` on /api/health.
Secrets (connection strings, webhook URLs, passwords) are `Secret` values: their repr and str are
masked, so a Settings object can be logged without leaking anything (invariant 7).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from failover.errors import ConfigError
from failover.incidents import Policy

T = TypeVar("T")

_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_RESOURCE_ID = re.compile(
    r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.dbforpostgresql/flexibleservers/"
    r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
    re.IGNORECASE,
)
_SCOPE = re.compile(r"^/subscriptions/[^/]+(/resourcegroups/[^/]+)?$", re.IGNORECASE)


class Secret:
    """A string that never shows itself in repr, str, logs or exception texts."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    storage_connection: Secret | None
    storage_table_endpoint: str | None = None  # identity-based connection (managed identity)
    table_name: str = "failoverincidents"
    redis_url: Secret | None = None
    redis_prefix: str = "pgha:"
    redis_entra_identity: str | None = None
    redis_invalidate_patterns: tuple[str, ...] = ()
    teams_webhook_url: Secret | None = None
    teams_routes: Secret | None = None
    maintenance_windows: str = ""
    monitored_servers: tuple[str, ...] = ()
    discovery_scopes: tuple[str, ...] = ()
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
    probe_db_interval: float = 0.5
    probe_db_fast_interval: float = 0.2
    probe_max_workers: int = 16
    probe_arm_interval: float = 5.0
    public_base_url: str | None = None
    continuation_secret: Secret | None = None
    effect_max_attempts: int = 8
    effect_backoff_base: float = 5.0
    effect_backoff_max: float = 900.0
    policy: Policy = field(default_factory=Policy)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        return _Reader(os.environ if env is None else env).settings()

    @property
    def probes_configured(self) -> bool:
        return bool(self.monitored_servers or self.discovery_scopes)


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
        storage = self.secret("AzureWebJobsStorage")
        endpoint = self.text("AzureWebJobsStorage__tableServiceUri")
        account = self.text("AzureWebJobsStorage__accountName")
        if endpoint is None and account is not None:
            endpoint = f"https://{account}.table.core.windows.net"
        if storage is None and endpoint is None:
            self.problems.append(
                "AzureWebJobsStorage: missing (a connection string, UseDevelopmentStorage=true for Azurite,"
                " or AzureWebJobsStorage__accountName for a managed identity)"
            )
        table = self.text("FAILOVER_TABLE", "failoverincidents") or ""
        if not _TABLE_NAME.match(table):
            self.problems.append("FAILOVER_TABLE: 3-63 letters and digits, starting with a letter")
        pg_auth = (self.text("PG_AUTH", "entra") or "").lower()
        if pg_auth not in ("entra", "password"):
            self.problems.append("PG_AUTH: must be 'entra' or 'password'")
        quiet = self.number("INCIDENT_QUIET_SECONDS", 300.0, float, 0, 86400)
        merge = self.number("INCIDENT_MERGE_SECONDS", 900.0, float, 0, 86400)
        settings = Settings(
            storage_connection=storage,
            storage_table_endpoint=endpoint,
            table_name=table,
            redis_url=self.secret("REDIS_URL"),
            redis_prefix=self.text("REDIS_PREFIX", "pgha:") or "pgha:",
            redis_entra_identity=self.text("REDIS_ENTRA_IDENTITY"),
            redis_invalidate_patterns=tuple(
                p.strip() for p in (self.text("REDIS_INVALIDATE_PATTERNS") or "").split(";") if p.strip()
            ),
            teams_webhook_url=self.secret("TEAMS_WEBHOOK_URL"),
            teams_routes=self.secret("TEAMS_ROUTES"),
            maintenance_windows=self.text("MAINTENANCE_WINDOWS", "") or "",
            monitored_servers=self.listed("MONITORED_SERVERS", _RESOURCE_ID, "flexible server resource ids"),
            discovery_scopes=self.listed("DISCOVERY_SCOPES", _SCOPE, "subscription or resource group ids"),
            discovery_interval=timedelta(
                minutes=self.number("DISCOVERY_INTERVAL_MINUTES", 15.0, float, 1, 1440)
            ),
            arm_endpoint=self.text("ARM_ENDPOINT"),
            pg_conninfo_template=self.text("PG_CONNINFO_TEMPLATE", Settings.pg_conninfo_template) or "",
            pg_conninfo_overrides=self.secret("PG_CONNINFO_OVERRIDES"),
            pg_user=self.text("PG_USER"),
            pg_password=self.secret("PG_PASSWORD"),
            pg_auth=pg_auth,
            pg_create_heartbeat_table=self.flag("PG_CREATE_HEARTBEAT_TABLE"),
            probe_id=self.text("PROBE_ID", "pg-failover-responder") or "pg-failover-responder",
            probe_window=timedelta(seconds=self.number("PROBE_WINDOW_SECONDS", 50.0, float, 0, 3600)),
            probe_db_interval=self.number("PROBE_DB_INTERVAL_SECONDS", 0.5, float, 0.05, 60),
            probe_db_fast_interval=self.number("PROBE_DB_FAST_INTERVAL_SECONDS", 0.2, float, 0.05, 60),
            probe_max_workers=self.number("PROBE_MAX_WORKERS", 16, int, 1, 256),
            probe_arm_interval=self.number("PROBE_ARM_INTERVAL_SECONDS", 5.0, float, 0.1, 3600),
            public_base_url=(self.text("PUBLIC_BASE_URL") or "").rstrip("/") or None,
            continuation_secret=self.secret("CONTINUATION_SECRET"),
            effect_max_attempts=self.number("EFFECT_MAX_ATTEMPTS", 8, int, 1, 50),
            effect_backoff_base=self.number("EFFECT_BACKOFF_BASE_SECONDS", 5.0, float, 0.01, 3600),
            effect_backoff_max=self.number("EFFECT_BACKOFF_MAX_SECONDS", 900.0, float, 0.01, 86400),
            policy=Policy(quiet=timedelta(seconds=quiet), merge_window=timedelta(seconds=merge)),
        )
        if storage is None and settings.continuation_secret is None and endpoint is not None:
            self.problems.append(
                "CONTINUATION_SECRET: required when storage is reached with a managed identity"
            )
        if settings.pg_auth == "password" and settings.pg_password is None and settings.probes_configured:
            self.problems.append("PG_PASSWORD: missing while PG_AUTH=password")
        if self.problems:
            raise ConfigError("invalid settings: " + "; ".join(self.problems))
        return settings
