"""Composition root: builds the runtime (store, responder, prober, integrations) from Settings.

Layer: wiring. The only module that knows which adapter serves which port. It runs on the first
invocation of a worker (never at import: `handlers._runtime.get_runtime()` calls it), imports
adapters lazily, and constructs clients without connecting; connections open on first use.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from failover import effects as fx
from failover.config import Settings
from failover.errors import ConfigError, FailoverError
from failover.log_setup import configure_logging
from failover.scope import AcceptedScope
from failover.service import Integrations, Responder

if TYPE_CHECKING:
    from failover.adapters.probe_queue import ShardQueue
    from failover.adapters.table_store import TableStore
    from failover.model import Incident
    from failover.ports import DatabaseProbe, IncidentStore, ServerInspector, TopologyCache
    from failover.probing import Prober
    from failover.shard_claims import ShardClaims
    from failover.verification import Step
    from failover.verifying import Verifying

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
    _shard_queue: ShardQueue | None = field(default=None, repr=False)
    _shard_claims: ShardClaims | None = field(default=None, repr=False)
    # Queue messages run on several threads at once: one prober (its management API listing, its
    # maintenance reads, the servers' addresses) and one memory of claimed shards per instance,
    # whichever message comes first (two would each forget what the other learnt).
    _building: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def prober(self) -> Prober:
        with self._building:
            if self._prober is None:
                self._prober = build_prober(self)
            return self._prober

    @property
    def shard_claims(self) -> ShardClaims:
        """Which shard each probe queue message watches (`failover.shard_claims`), built on first use."""
        from failover.shard_claims import ShardClaims

        with self._building:
            if self._shard_claims is None:
                self._shard_claims = ShardClaims(self.store.side_rows())
            return self._shard_claims

    @property
    def shard_queue(self) -> ShardQueue:
        """The probe fan-out queue on the app's storage account, built on first use."""
        if self._shard_queue is None:
            self._shard_queue = build_shard_queue(self.settings)
        return self._shard_queue


def build_runtime(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Runtime:
    configure_logging()
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
        scope=AcceptedScope.of(
            settings.monitored_servers, (*settings.alert_scopes, *settings.discovery_scopes)
        ),
    )
    runtime = Runtime(
        settings=settings, store=store, responder=responder, clock=clock, cache=integrations.cache
    )
    if settings.probes_configured:
        runtime.inspector = build_inspector(settings)
        runtime.db_probe = build_db_probe(settings, runtime) if settings.probe_db else None
        integrations.verifying = build_verifying(runtime)
    build_digest(settings, store, integrations, clock)
    log.info(
        "runtime ready: table %s, redis %s, channels %s, probes %s",
        settings.table_name,
        "on" if integrations.cache else "not configured",
        ", ".join(integrations.notify.channels) or "not configured",
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


def build_shard_queue(settings: Settings) -> ShardQueue:
    """The same account as the table: its connection string, else the managed identity."""
    from failover.adapters.probe_queue import ShardQueue
    from failover.shards import PROBE_QUEUE

    if settings.storage_connection is not None:
        return ShardQueue.from_connection_string(settings.storage_connection.reveal(), PROBE_QUEUE)
    if settings.storage_queue_endpoint is None:
        raise ConfigError(
            "AzureWebJobsStorage__queueServiceUri (or __accountName): needed to fan the probe out"
        )
    from failover.adapters.arm import default_credential

    return ShardQueue.from_endpoint(settings.storage_queue_endpoint, PROBE_QUEUE, default_credential())


def build_integrations(settings: Settings) -> Integrations:
    import requests

    from failover import notify_policy
    from failover.notify.http import JsonPoster
    from failover.notify.pipeline import NotifyPipeline
    from failover.notify.registry import build_channels

    cache = None
    if settings.redis_url is not None:
        from failover.adapters.redis_cache import RedisTopologyCache, redis_client_factory

        # Settings are checked now; the client (cluster detection included) is built on first use.
        connect = redis_client_factory(
            settings.redis_url.reveal(),
            entra_identity=settings.redis_entra_identity,
            cluster=settings.redis_cluster,
        )
        cache = RedisTopologyCache(
            connect,
            prefix=settings.redis_prefix,
            invalidate_seconds=settings.redis_invalidate_seconds,
            invalidate_max_keys=settings.redis_invalidate_max_keys,
        )
    windows = notify_policy.parse_windows(settings.maintenance_windows)
    channels = build_channels(settings, JsonPoster(requests.Session()))

    def maintenance_end(server: str, now: datetime) -> datetime | None:
        window = notify_policy.window_at(server, now, windows)
        return notify_policy.window_end(window, now) if window else None

    return Integrations(
        cache=cache,
        notify=NotifyPipeline(
            channels=channels,
            maintenance_end=maintenance_end,
            timeline_url_for=_timeline_url(settings.public_base_url),
        ),
        redis_patterns=settings.redis_invalidate_patterns,
    )


def build_verifying(runtime: Runtime) -> Verifying:
    """Post-failover verification through the management API and the database probe's session."""
    from failover.adapters.pg_verify import PostgresVerifier
    from failover.adapters.postgres import PostgresProbe
    from failover.verification import VerifyPolicy
    from failover.verifying import Verifying

    settings = runtime.settings
    probe = runtime.db_probe
    return Verifying(
        inspector=runtime.inspector,
        database=PostgresVerifier(probe) if isinstance(probe, PostgresProbe) else None,
        rows=runtime.store.side_rows(),
        policy=VerifyPolicy(deadline=settings.verify_deadline, app_zones=settings.app_zones),
        notify=_verification_poster(runtime.responder.integrations),
        clock=runtime.clock,
    )


def build_digest(
    settings: Settings, store: IncidentStore, integrations: Integrations, clock: Callable[[], datetime]
) -> None:
    """Zone-outage digests on the Teams channel, and one post a second for every channel target."""
    from failover.digest import DigestPolicy
    from failover.digesting import ChannelPacer, ZoneDigest
    from failover.verifying import with_steps

    pipeline = integrations.notify
    if not pipeline.channels:
        return
    rows = store.side_rows()
    pipeline.pacer = ChannelPacer(rows, clock)
    pipeline.with_verification = lambda incident: with_steps(rows, incident)
    teams = {name: c for name, c in pipeline.channels.items() if name == "teams"}
    if not teams:
        return
    base = settings.public_base_url
    integrations.digest = pipeline.digest = ZoneDigest(
        rows,
        teams,
        pipeline.pacer,
        DigestPolicy(min_servers=settings.digest_min_servers, window=settings.digest_window),
        clock,
        base_url=base,
    )

    def region_of(server: str) -> str | None:
        state, _ = store.read_state(server)
        known = state.topology if state is not None else None
        return known.location.lower() if known is not None and known.location else None

    pipeline.region_of = region_of


def _verification_poster(integrations: Integrations) -> Callable[[Incident, tuple[Step, ...]], None]:
    """One card to the server's Teams route when verification finds failures (never one per check)."""
    from failover.notify.teams.notice import notice_card

    post = _notice_poster(integrations)

    def notify(incident: Incident, failed: tuple[Step, ...]) -> None:
        card = notice_card(
            f"{incident.server}: {len(failed)} check(s) failed after the failover",
            f"Incident {incident.incident_id}: the new topology needs attention (details on its timeline).",
            [(s.check.value, s.detail) for s in failed],
            style="warning",
        )
        try:
            posted = post(incident.server, card)
        except FailoverError as error:  # the steps stay on the timeline; the card is not retried
            log.warning(
                "verification card for incident %s not posted: %s", incident.incident_id, type(error).__name__
            )
            return
        if posted:
            log.info("verification card for incident %s posted", incident.incident_id)

    return notify


def _timeline_url(base: str | None) -> Callable[[str], str | None]:
    def url(incident_id: str) -> str | None:
        return f"{base}/api/incidents/{quote(incident_id, safe='')}/timeline" if base else None

    return url


def build_inspector(settings: Settings) -> ServerInspector:
    from failover.adapters.arm import (
        ManagementApiInspector,
        build_client_factory,
        default_credential,
        static_credential,
    )
    from failover.urls import is_loopback_http

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
        # An instance watches two shards at once (host.json: batchSize + newBatchThreshold).
        max_sessions=2 * settings.probe_shard_size + 16,
    )


def _listed(inspector: ServerInspector | None, *, max_age: float) -> ServerInspector | None:
    """The probe reads the management API by subscription listing (ARM throttles reads per
    subscription: failover/adapters/arm_listing.py); a stand-in inspector is used as it is."""
    from failover.adapters.arm import ManagementApiInspector
    from failover.adapters.arm_listing import ListedInspector

    if isinstance(inspector, ManagementApiInspector):
        return ListedInspector(inspector, max_age=max_age)
    return inspector


def build_prober(runtime: Runtime) -> Prober:
    from failover.maintenance import MaintenancePolls, MaintenanceWatch
    from failover.probe_notices import ProbeNotices
    from failover.probing import Prober, ProbeSchedule, Targets
    from failover.sources.probes import Debounce

    settings = runtime.settings
    watch = (
        MaintenanceWatch(runtime.inspector, runtime.clock, MaintenancePolls(poll=settings.maintenance_poll))
        if runtime.inspector is not None
        else None
    )
    notices = ProbeNotices(
        runtime.store,
        runtime.clock,
        post=_notice_poster(runtime.responder.integrations),
        notify_after=settings.probe_fault_notify,
        maintenance=watch,
        announce_maintenance=settings.maintenance_cards,
    )
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
        inspector=_listed(runtime.inspector, max_age=settings.probe_arm_interval / 2),
        db_probe=runtime.db_probe,
        schedule=ProbeSchedule(
            window=settings.probe_window,
            arm_interval=settings.probe_arm_interval,
            db_interval=settings.probe_db_interval,
            db_fast_interval=settings.probe_db_fast_interval,
            max_workers=settings.probe_max_workers,
            record_workers=settings.probe_record_workers,
            debounce=Debounce(outage=timedelta(seconds=settings.probe_db_outage_seconds)),
            discovery_interval=settings.discovery_interval,
        ),
        on_report=notices.on_report,
        maintenance=watch.check_hook if watch is not None else None,
    )


def _notice_poster(integrations: Integrations) -> Callable[[str, Mapping[str, Any]], bool]:
    """Posts a notice card (not an incident) to the server's Teams route; False when it has none."""
    from failover.notify.teams.card import envelope

    def post(server: str, card: Mapping[str, Any]) -> bool:
        channel = integrations.notify.channels.get("teams")
        target = channel.target_for(server) if channel is not None else None
        if channel is None or target is None:
            return False
        channel.send(target, envelope(card))
        return True

    return post
