"""Metric alerts (monitoringService Platform, signalType Metric) on flexible server metrics.

Layer: pure core (`failover.sources`). Maps one validated `Alert` to signals. It must not do
I/O, read the clock or log payload contents, and it raises only `InvalidPayloadError`.

Metric alerts are stateful: `Fired`, later `Resolved` for the same `alertId`. For `is_db_alive`
a Resolved notification yields two signals, the outage (at firedDateTime, with the same id the
Fired notification gets) and the recovery (at resolvedDateTime), so a lost Fired notification is
recovered and a late one is a duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from failover.errors import InvalidPayloadError
from failover.model import Cause, Signal, SignalKind
from failover.sources.parsing import (
    Alert,
    JsonMap,
    ParseResult,
    accept,
    child,
    clip,
    field,
    fold,
    ignore,
    ignore_foreign,
    number,
    soft_timestamp,
    text,
    unique,
)
from failover.sources.resources import first_flexible_server
from failover.timeutil import iso


@dataclass(frozen=True)
class _MetricRule:
    problem: SignalKind  # on Fired
    recovery: SignalKind  # on Resolved
    replay_fired: bool  # a Resolved notification also carries the Fired signal


_METRICS: dict[str, _MetricRule] = {
    "is_db_alive": _MetricRule(SignalKind.DB_DOWN, SignalKind.DB_UP, replay_fired=True),
    "physical_replication_delay_in_seconds": _MetricRule(
        SignalKind.REPLICATION_LAG_HIGH, SignalKind.REPLICATION_LAG_NORMAL, replay_fired=False
    ),
    "physical_replication_delay_in_bytes": _MetricRule(
        SignalKind.REPLICATION_LAG_HIGH, SignalKind.REPLICATION_LAG_NORMAL, replay_fired=False
    ),
    "logical_replication_delay_in_bytes": _MetricRule(
        SignalKind.REPLICATION_LAG_HIGH, SignalKind.REPLICATION_LAG_NORMAL, replay_fired=False
    ),
}
_CONDITIONS = frozenset({"fired", "resolved"})
_NO_CAUSE = (Cause.UNKNOWN, 0)


def parse(alert: Alert) -> ParseResult:
    if alert.signal_type is not None and fold(alert.signal_type) != "metric":
        return ignore(f"{clip(alert.signal_type, 40)} alerts from Platform are not metric alerts")
    server = first_flexible_server(alert.target_ids)
    if server is None:
        return ignore_foreign("metric alert", alert.target_ids)
    condition = child(alert.context, "condition")
    criterion, rule = _watched_criterion(condition)
    if criterion is None or rule is None:
        names = ", ".join(_metric_names(condition)) or "no metric"
        return ignore(f"metric alert on {clip(names, 100)} of {server[1]}: not a metric we watch")
    state = fold(alert.monitor_condition)
    if state not in _CONDITIONS:
        raise InvalidPayloadError("data.essentials.monitorCondition must be Fired or Resolved")
    if alert.fired_at is None:
        raise InvalidPayloadError("data.essentials.firedDateTime is required for metric alerts")
    build = _Builder(alert, server, criterion, condition)
    if state == "fired":
        return accept(build.fired(rule.problem, with_value=True))
    recovered = build.resolved(rule.recovery)
    if rule.replay_fired:
        return accept(build.fired(rule.problem, with_value=False), recovered)
    return accept(recovered)


def _watched_criterion(condition: JsonMap) -> tuple[JsonMap | None, _MetricRule | None]:
    for criterion in _criteria(condition):
        name = text(field(criterion, "metricName"))
        rule = _METRICS.get(name.lower()) if name else None
        if rule is not None:
            return criterion, rule
    return None, None


def _criteria(condition: JsonMap) -> tuple[JsonMap, ...]:
    all_of = field(condition, "allOf")
    if not isinstance(all_of, list):
        return ()
    return tuple(item for item in all_of if isinstance(item, Mapping))


def _metric_names(condition: JsonMap) -> tuple[str, ...]:
    names = (clip(field(criterion, "metricName"), 60) for criterion in _criteria(condition))
    return unique(name for name in names if name)


@dataclass(frozen=True)
class _Builder:
    alert: Alert
    server: tuple[str, str]
    criterion: JsonMap
    condition: JsonMap

    @property
    def metric(self) -> str:
        return (text(field(self.criterion, "metricName")) or "").lower()

    def fired(self, kind: SignalKind, *, with_value: bool) -> Signal:
        fired_at = self.alert.fired_at
        if fired_at is None:  # checked by parse(); kept for the type checker
            raise InvalidPayloadError("data.essentials.firedDateTime is required for metric alerts")
        value = number(field(self.criterion, "metricValue")) if with_value else None
        note = f": value {value}" if value is not None else " (replayed from the Resolved notification)"
        return self._signal("fired", kind, fired_at, f"Metric alert {self.metric} Fired{note}", value)

    def resolved(self, kind: SignalKind) -> Signal:
        resolved_at = self.alert.resolved_at or soft_timestamp(field(self.condition, "windowEndTime"))
        if resolved_at is None:
            raise InvalidPayloadError("a Resolved metric alert needs data.essentials.resolvedDateTime")
        value = number(field(self.criterion, "metricValue"))
        note = f": value {value}" if value is not None else ""
        return self._signal(
            "resolved", kind, resolved_at, f"Metric alert {self.metric} Resolved{note}", value
        )

    def _signal(
        self, state: str, kind: SignalKind, observed: datetime, summary: str, value: int | float | None
    ) -> Signal:
        threshold = field(self.criterion, "threshold")
        return self.alert.signal(
            self.server,
            signal_id=f"monitor:metric:{self.alert.alert_id}:{state}",
            kind=kind,
            cause=_NO_CAUSE,
            observed_at=observed,
            summary=summary + _rule_text(self.criterion),
            details={
                "metric": clip(self.metric, 80),
                "metric_value": value,
                "threshold": number(threshold) if number(threshold) is not None else clip(threshold, 40),
                "operator": clip(field(self.criterion, "operator"), 40),
                "time_aggregation": clip(field(self.criterion, "timeAggregation"), 40),
                "monitor_condition": state.capitalize(),
                "fired_at": iso(self.alert.fired_at),
                "resolved_at": iso(self.alert.resolved_at),
                "window_start": iso(soft_timestamp(field(self.condition, "windowStartTime"))),
                "window_end": iso(soft_timestamp(field(self.condition, "windowEndTime"))),
            },
        )


def _rule_text(criterion: JsonMap) -> str:
    operator = clip(field(criterion, "operator"), 40)
    threshold = clip(field(criterion, "threshold"), 40)
    if operator and threshold:
        return f" (rule: {operator} {threshold})"
    return ""
