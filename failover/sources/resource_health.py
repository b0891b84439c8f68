"""Resource Health alerts (an activity log alert on category ResourceHealth) about flexible servers.

Layer: pure core (`failover.sources`). Maps one validated `Alert` to one signal. It must not do
I/O, read the clock or log payload contents, and it raises only `InvalidPayloadError`.

Keys are the structured fields (`currentHealthStatus`/`healthStatus`, `cause`/`healthEventCause`,
`healthEventCategory`); the title and details texts are only hints, used when the cause is null
or to refine it (see `_REFINEMENTS`), because their wording is not documented.
"""

from __future__ import annotations

from failover.model import Cause, SignalKind
from failover.sources.parsing import (
    Alert,
    JsonMap,
    ParseResult,
    accept,
    child,
    clip,
    event_time,
    field,
    first_id,
    fold,
    ident,
    ignore_foreign,
    joined,
    lookup,
    text,
)
from failover.sources.resources import first_flexible_server

_HEALTH_KINDS: dict[str, SignalKind] = {
    "available": SignalKind.HEALTH_AVAILABLE,
    "degraded": SignalKind.HEALTH_DEGRADED,
    "unavailable": SignalKind.HEALTH_UNAVAILABLE,
    "unknown": SignalKind.HEALTH_UNKNOWN,
}

_CAUSES: dict[str, tuple[Cause, int]] = {
    "platforminitiated": (Cause.UNPLANNED, 2),
    "userinitiated": (Cause.PLANNED, 1),
}

# Title/details phrases, first match wins ("unplanned failover" must precede "planned failover").
_TITLE_HINTS: dict[str, Cause] = {
    "unplanned failover": Cause.UNPLANNED,
    "planned failover": Cause.PLANNED,
    "forced": Cause.FORCED,
    "upgrade failover": Cause.MAINTENANCE,
    "maintenance": Cause.MAINTENANCE,
}
_HINT_CONFIDENCE = 1
_NOTHING_KNOWN = (Cause.UNKNOWN, 0)

# A stated cause refined by a hint that agrees with it: the platform starting a planned
# (upgrade/maintenance) failover is maintenance, not an outage; a user's forced failover is forced.
_REFINEMENTS: dict[tuple[str, Cause], tuple[Cause, int]] = {
    ("platforminitiated", Cause.MAINTENANCE): (Cause.MAINTENANCE, 2),
    ("userinitiated", Cause.FORCED): (Cause.FORCED, 1),
}
_PLANNED_CATEGORY_HINT = Cause.MAINTENANCE  # healthEventCategory "Planned" with a platform cause

_CAUSE_WORDS: dict[str, str] = {
    "platforminitiated": "platform initiated",
    "userinitiated": "user initiated",
}


def parse(alert: Alert) -> ParseResult:
    ctx = alert.context
    candidates = (*alert.target_ids, field(ctx, "resourceId"))
    server = first_flexible_server(candidates)
    if server is None:
        return ignore_foreign("Resource Health alert", candidates)
    props = child(ctx, "properties")
    status = text(field(props, "currentHealthStatus", "healthStatus"))
    previous = text(field(props, "previousHealthStatus"))
    raw_cause = text(field(props, "cause", "healthEventCause"))
    title = clip(field(props, "title"))
    observed = event_time(alert)
    kind = lookup(_HEALTH_KINDS, status) or SignalKind.HEALTH_UNKNOWN
    cause = _cause(raw_cause, _hint(props), fold(field(props, "healthEventCategory")))
    return accept(
        alert.signal(
            server,
            signal_id=_signal_id(alert, observed.isoformat()),
            kind=kind,
            cause=cause,
            observed_at=observed,
            summary=_summary(status, previous, title, raw_cause),
            details={
                "health_status": clip(status, 40),
                "previous_health_status": clip(previous, 40),
                "health_cause": clip(raw_cause, 40),
                "title": title,
                "health_details": clip(field(props, "details")),
                "health_event_type": clip(field(props, "type", "healthEventType"), 40),
                "health_event_category": clip(field(props, "healthEventCategory"), 40),
                "event_status": clip(field(ctx, "status"), 40),
                "correlation_id": clip(field(ctx, "correlationId"), 80),
            },
        )
    )


def _hint(props: JsonMap) -> Cause | None:
    words = " ".join(
        part.lower() for part in (clip(field(props, "title")), clip(field(props, "details"))) if part
    )
    for phrase, cause in _TITLE_HINTS.items():
        if phrase in words:
            return cause
    return None


def _cause(raw_cause: str | None, hint: Cause | None, category: str | None) -> tuple[Cause, int]:
    key = fold(raw_cause)
    stated = _CAUSES.get(key) if key else None
    if key is None or stated is None:
        return (hint, _HINT_CONFIDENCE) if hint is not None else _NOTHING_KNOWN
    if key == "platforminitiated" and category == "planned":  # the platform's own planned work
        hint = _PLANNED_CATEGORY_HINT
    if hint is None:
        return stated
    return _REFINEMENTS.get((key, hint), stated)


def _signal_id(alert: Alert, observed: str) -> str:
    ctx = alert.context
    return first_id(
        "monitor:rh",
        ident(ctx, "eventDataId", where="alertContext.eventDataId"),
        joined(ident(ctx, "correlationId", where="alertContext.correlationId"), observed),
        alert.alert_id,
    )


def _summary(status: str | None, previous: str | None, title: str | None, cause: str | None) -> str:
    parts = [clip(status, 40) or "health status not given"]
    if previous:
        parts[0] += f" (was {clip(previous, 40)})"
    if title and title.lower() != (status or "").lower():
        parts.append(title)
    key = fold(cause)
    if key is None:
        parts.append("cause not given")
    else:
        parts.append(_CAUSE_WORDS.get(key) or f"cause {clip(cause, 40)}")
    return "Resource Health: " + ", ".join(parts)
