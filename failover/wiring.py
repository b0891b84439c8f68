"""Composition root: builds the runtime (store, responder, prober, integrations) from Settings.

Layer: wiring. The only module that knows which adapter serves which port. It runs on the first
invocation of a worker (never at import: `handlers._runtime.get_runtime()` calls it), imports
adapters lazily, and constructs clients without connecting; connections open on first use.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from failover import effects as fx
from failover.config import Settings
from failover.service import Integrations, Responder

if TYPE_CHECKING:
    from failover.adapters.table_store import TableStore
    from failover.ports import DatabaseProbe, ServerInspector, TopologyCache
    from failover.probing import Prober

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Runtime:
    settings: Settings
    store: TableStore
    responder: Responder
    clock: Callable[[], datetime] = utc_now
    cache: TopologyCache | None = None
    inspector: ServerInspector | None = None
    db_probe: DatabaseProbe | None = None
    _prober: Prober | None = field(default=None, repr=False)

    @property
    def prober(self) -> Prober:
        if self._prober is None:
            self._prober = build_prober(self)
        return self._prober


def build_runtime(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Runtime:
    store = build_store(settings)
    store.ensure_table()
    integrations = build_integrations(settings)
    responder = Responder(
        store=store,
        clock=clock,
        policy=settings.policy,
        retry=fx.RetryPolicy(
            max_attempts=settings.effect_max_attempts,
            base_seconds=settings.effect_backoff_base,
            max_seconds=settings.effect_backoff_max,
        ),
        integrations=integrations,
    )
    runtime = Runtime(
        settings=settings, store=store, responder=responder, clock=clock, cache=integrations.cache
    )
    if settings.probes_configured:
        runtime.inspector = build_inspector(settings)
        runtime.db_probe = build_db_probe(settings, runtime)
    log.info(
        "runtime ready: table %s, redis %s, teams %s, probes %s",
        settings.table_name,
        "on" if integrations.cache else "not configured",
        "on" if integrations.notifier else "not configured",
        "on" if settings.probes_configured else "not configured",
    )
    return runtime


def build_store(settings: Settings) -> TableStore:
    """A connection string when given (Azurite, keys), else the managed identity on the table endpoint."""
    from failover.adapters.table_store import TableStore

    if settings.storage_connection is not None:
        return TableStore.from_connection_string(settings.storage_connection.reveal(), settings.table_name)
    assert settings.storage_table_endpoint is not None
    from failover.adapters.arm import default_credential

    return TableStore.from_endpoint(
        settings.storage_table_endpoint, settings.table_name, default_credential()
    )


def build_integrations(settings: Settings) -> Integrations:
    from failover import notify_policy
    from failover.cards import render_card

    cache = None
    if settings.redis_url is not None:
        from failover.adapters.redis_cache import RedisTopologyCache, build_redis_client

        client = build_redis_client(settings.redis_url.reveal(), entra_identity=settings.redis_entra_identity)
        cache = RedisTopologyCache(client, prefix=settings.redis_prefix)
    default_url = settings.teams_webhook_url.reveal() if settings.teams_webhook_url else None
    routes = notify_policy.parse_routes(settings.teams_routes.reveal() if settings.teams_routes else None)
    windows = notify_policy.parse_windows(settings.maintenance_windows)
    notifier = None
    if default_url or routes:
        import requests

        from failover.adapters.teams import TeamsWebhookNotifier, install_log_redaction

        install_log_redaction()
        notifier = TeamsWebhookNotifier(requests.Session())

    def maintenance_end(server: str, now: datetime) -> datetime | None:
        window = notify_policy.window_at(server, now, windows)
        return notify_policy.window_end(window, now) if window else None

    return Integrations(
        cache=cache,
        notifier=notifier,
        card_url_for=lambda server: notify_policy.route_for(server, routes, default_url),
        maintenance_end=maintenance_end,
        timeline_url_for=_timeline_url(settings.public_base_url),
        redis_patterns=settings.redis_invalidate_patterns,
        render_card=render_card,
    )


def _timeline_url(base: str | None) -> Callable[[str], str | None]:
    def url(incident_id: str) -> str | None:
        return f"{base}/api/incidents/{quote(incident_id, safe='')}/timeline" if base else None

    return url


def build_inspector(settings: Settings) -> ServerInspector:
    from failover.adapters.arm import (
        ManagementApiInspector,
        build_client_factory,
        default_credential,
        is_loopback_http,
        static_credential,
    )

    local = is_loopback_http(settings.arm_endpoint)
    credential: Any = static_credential() if local else default_credential()
    factory = build_client_factory(
        credential, base_url=settings.arm_endpoint, polling_interval=0.5 if local else 5
    )
    return ManagementApiInspector(factory)


def build_db_probe(settings: Settings, runtime: Runtime) -> DatabaseProbe:
    from failover.adapters.postgres import PostgresProbe, entra_token_provider

    overrides: dict[str, str] = {}
    if settings.pg_conninfo_overrides is not None:
        try:
            raw = json.loads(settings.pg_conninfo_overrides.reveal())
            overrides = {str(k).lower(): str(v) for k, v in raw.items()}
        except (ValueError, AttributeError):
            log.error("PG_CONNINFO_OVERRIDES is not a JSON object of server -> conninfo; ignoring it")

    def conninfo_for(server: str) -> str:
        if server in overrides:
            return overrides[server]
        known = runtime._prober.fqdn_of(server) if runtime._prober else None
        fqdn = known or f"{server}.postgres.database.azure.com"
        conninfo = settings.pg_conninfo_template.format(fqdn=fqdn, server=server)
        return (
            f"{conninfo} user={settings.pg_user}"
            if settings.pg_user and "user=" not in conninfo
            else conninfo
        )

    password_for: Callable[[str], str] | None
    if settings.pg_auth == "password":
        secret = settings.pg_password
        password_for = (lambda server: secret.reveal()) if secret is not None else None
    else:
        from failover.adapters.arm import default_credential

        password_for = entra_token_provider(default_credential())
    return PostgresProbe(
        conninfo_for,
        password_for,
        probe_id=settings.probe_id,
        create_table=settings.pg_create_heartbeat_table,
    )


def build_prober(runtime: Runtime) -> Prober:
    from failover.probing import Prober, ProbeSchedule, Targets

    settings = runtime.settings
    targets = Targets(
        settings.monitored_servers,
        settings.discovery_scopes,
        runtime.inspector,
        clock=runtime.clock,
        refresh=settings.discovery_interval,
    )
    return Prober(
        responder=runtime.responder,
        clock=runtime.clock,
        targets=targets,
        inspector=runtime.inspector,
        db_probe=runtime.db_probe,
        schedule=ProbeSchedule(
            window=settings.probe_window,
            arm_interval=settings.probe_arm_interval,
            db_interval=settings.probe_db_interval,
            db_fast_interval=settings.probe_db_fast_interval,
            max_workers=settings.probe_max_workers,
            discovery_interval=settings.discovery_interval,
        ),
        on_report=lambda report: runtime.store.save_probe_health(
            [health_row(h) for h in report.servers.values()]
        ),
    )


def health_row(health: Any) -> dict[str, Any]:
    """The `~probe` row of one server: what the last probe run could and could not check."""
    from failover.timeutil import iso

    return {
        "server": health.server,
        "resource_id": health.resource_id,
        "arm": health.arm,
        "arm_error": health.arm_error or "",
        "db": health.db,
        "db_error": health.db_error or "",
        "checked_at": iso(health.checked_at) or "",
    }
