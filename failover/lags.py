"""Source families and their documented lags: the bounds correlation relies on.

Layer: pure core. A table of values and two lookups; no I/O, no clock.

Two numbers per source family:
- `trail`: how long after the primary was restored a signal of this family can still be an
  observation of the *same* failover (its `observed_at` lags the event it reports). A failover-start
  signal observed later than `primary restored + trail` is a new failover.
- `delivery`: how long after `observed_at` the signal may reach the app (retries, alert latency).
  Correlation never uses arrival order, so delivery lag only bounds how long a late signal can
  still change an incident's counts; it is documented here and drawn from by the generated-history
  tests (tests/unit/test_history.py).

Sources (docs/incident-lifecycle.md repeats this table):
- Azure Monitor data ingestion time: activity log and Resource Health alerts reach alert rules
  3 to 20 minutes after the event
  (https://learn.microsoft.com/azure/azure-monitor/logs/data-ingestion-time).
- Metric alerts evaluate `is_db_alive` (1-minute grain) over 1 to 5 minute windows every 1 to 5
  minutes (https://learn.microsoft.com/azure/azure-monitor/alerts/alerts-types#metric-alerts).
- Event Grid retries a delivery for up to 24 hours
  (https://learn.microsoft.com/azure/event-grid/delivery-and-retry).
- Probes are the app's own checks: seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from failover.model import Signal, SignalKind, Source, _StrEnum


class Family(_StrEnum):
    """Where a signal came from, finer than `Source`: each family has its own lags and recovery."""

    DB_PROBE = "db_probe"
    ARM_PROBE = "arm_probe"
    METRIC = "metric"
    RESOURCE_HEALTH = "resource_health"
    ACTIVITY_LOG = "activity_log"
    EVENT_GRID = "event_grid"
    SERVICE_HEALTH = "service_health"


@dataclass(frozen=True)
class SourceLag:
    trail: timedelta
    delivery: timedelta
    basis: str


_M = timedelta(minutes=1)
LAGS: dict[Family, SourceLag] = {
    Family.DB_PROBE: SourceLag(timedelta(seconds=30), timedelta(seconds=10), "the app's own client"),
    Family.ARM_PROBE: SourceLag(2 * _M, timedelta(seconds=10), "HA state settles after writes resume"),
    Family.METRIC: SourceLag(10 * _M, 15 * _M, "1-5 min windows, evaluated every 1-5 min"),
    Family.RESOURCE_HEALTH: SourceLag(10 * _M, 20 * _M, "alert latency 3-20 min (data ingestion time)"),
    Family.ACTIVITY_LOG: SourceLag(10 * _M, 20 * _M, "alert latency 3-20 min (data ingestion time)"),
    Family.EVENT_GRID: SourceLag(10 * _M, timedelta(hours=24), "Event Grid retries for 24 h"),
    Family.SERVICE_HEALTH: SourceLag(0 * _M, timedelta(hours=1), "maintenance notices, days ahead"),
}
PROBES = frozenset({Family.DB_PROBE, Family.ARM_PROBE})
AZURE_ALERTS = frozenset(
    {Family.METRIC, Family.RESOURCE_HEALTH, Family.ACTIVITY_LOG, Family.EVENT_GRID, Family.SERVICE_HEALTH}
)
# Longest trail of any family: how far past a restored primary an incident can still take evidence.
MAX_TRAIL = max(lag.trail for lag in LAGS.values())

_METRIC_KINDS = frozenset(
    {
        SignalKind.DB_DOWN,
        SignalKind.DB_UP,
        SignalKind.REPLICATION_LAG_HIGH,
        SignalKind.REPLICATION_LAG_NORMAL,
    }
)
_HEALTH_KINDS = frozenset(
    {
        SignalKind.HEALTH_AVAILABLE,
        SignalKind.HEALTH_DEGRADED,
        SignalKind.HEALTH_UNAVAILABLE,
        SignalKind.HEALTH_UNKNOWN,
    }
)


def family_of(source: Source, kind: SignalKind) -> Family:
    """The family of a signal, from its source and kind (every Monitor alert kind maps to one)."""
    if source is Source.DB_PROBE:
        return Family.DB_PROBE
    if source is Source.ARM_PROBE:
        return Family.ARM_PROBE
    if source is Source.EVENT_GRID:
        return Family.EVENT_GRID
    if kind in _METRIC_KINDS:
        return Family.METRIC
    if kind in _HEALTH_KINDS:
        return Family.RESOURCE_HEALTH
    if kind is SignalKind.MAINTENANCE_SCHEDULED:
        return Family.SERVICE_HEALTH
    return Family.ACTIVITY_LOG


def signal_family(signal: Signal) -> Family:
    return family_of(signal.source, signal.kind)


def trail(family: Family, kind: SignalKind) -> timedelta:
    """How long after a restored primary a signal of `family` and `kind` is still the same failover.

    A restart request (the activity log's `Started`/`Accepted`) is stamped when the request is made,
    which precedes its own outage: one observed after a restored primary is always a new failover.
    """
    if family is Family.ACTIVITY_LOG and kind is SignalKind.FAILOVER_STARTED:
        return timedelta(0)
    return LAGS[family].trail
