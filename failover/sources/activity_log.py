"""Activity log alerts (category Administrative) on the flexible server restart action.

Layer: pure core (`failover.sources`). Maps one validated `Alert` to one signal. It must not do
I/O, read the clock or log payload contents (never the caller, claims or HTTP request: they
identify people), and it raises only `InvalidPayloadError`.

A user's planned or forced failover is `POST .../flexibleServers/{name}/restart` with
`restartWithFailover` and `failoverMode`; the Activity Log records it as
`Microsoft.DBforPostgreSQL/flexibleServers/restart/action`. The request body, when the event
carries it (`properties.requestbody`, a JSON string), tells a failover from a plain restart and
gives the mode; without it the event is taken as a failover of unknown mode.
"""

from __future__ import annotations

from collections.abc import Mapping

from failover.model import Cause, SignalKind
from failover.sources.parsing import (
    Alert,
    JsonMap,
    ParseResult,
    accept,
    child,
    clip,
    embedded_json,
    event_time,
    field,
    first_id,
    flag,
    fold,
    ident,
    ignore,
    ignore_foreign,
    joined,
    lookup,
    text,
)
from failover.sources.resources import first_flexible_server

RESTART_OPERATION = "microsoft.dbforpostgresql/flexibleservers/restart/action"

_STATUS_KINDS: dict[str, SignalKind] = {
    "started": SignalKind.FAILOVER_STARTED,
    "accepted": SignalKind.FAILOVER_STARTED,
    "succeeded": SignalKind.FAILOVER_COMPLETED,
    "failed": SignalKind.FAILOVER_FAILED,
    "canceled": SignalKind.FAILOVER_FAILED,
    "cancelled": SignalKind.FAILOVER_FAILED,
}

_FAILOVER_MODES: dict[str, tuple[Cause, int]] = {
    "forcedfailover": (Cause.FORCED, 3),
    "forcedswitchover": (Cause.FORCED, 3),
    "plannedfailover": (Cause.PLANNED, 3),
    "plannedswitchover": (Cause.PLANNED, 3),
}
_MODE_UNKNOWN = (Cause.PLANNED, 1)  # a user's action, mode not in the event
_PLAIN_RESTART = (Cause.UNKNOWN, 0)  # says nothing about why a failover happened


def parse(alert: Alert) -> ParseResult:
    ctx = alert.context
    candidates = _resource_candidates(alert)
    server = first_flexible_server(candidates)
    if server is None:
        return ignore_foreign("activity log alert", candidates)
    operation = text(field(ctx, "operationName"))
    if operation is None or operation.lower() != RESTART_OPERATION:
        shown = clip(operation, 100) or "no operation"
        return ignore(f"activity log operation {shown} on {server[1]} is not the restart/failover action")
    status = text(field(ctx, "status"))
    kind = lookup(_STATUS_KINDS, status)
    if kind is None:
        shown = clip(status, 40) or "no status"
        return ignore(f"restart status {shown} on {server[1]} is not a transition we record")
    with_failover, mode = _request(child(ctx, "properties"))
    cause = lookup(_FAILOVER_MODES, mode) or _MODE_UNKNOWN
    if with_failover is False:
        kind, cause = SignalKind.SERVER_RESTARTED, _PLAIN_RESTART
    observed = event_time(alert)
    return accept(
        alert.signal(
            server,
            signal_id=_signal_id(alert, status),
            kind=kind,
            cause=cause,
            observed_at=observed,
            summary=_summary(status, with_failover, mode),
            details={
                "operation": clip(operation, 100),
                "status": clip(status, 40),
                "sub_status": clip(field(ctx, "subStatus"), 60),
                "restart_with_failover": with_failover,
                "failover_mode": clip(mode, 40),
                "correlation_id": clip(field(ctx, "correlationId"), 80),
                "operation_id": clip(field(ctx, "operationId"), 80),
            },
        )
    )


def _resource_candidates(alert: Alert) -> tuple[object, ...]:
    ctx = alert.context
    return (
        *alert.target_ids,
        field(ctx, "resourceId"),
        field(child(ctx, "authorization"), "scope"),
        field(child(ctx, "properties"), "entity", "resource"),
    )


def _request(props: JsonMap) -> tuple[bool | None, str | None]:
    """(restartWithFailover, failoverMode) from the request body, when the event carries it."""
    body = embedded_json(field(props, "requestbody"))
    if not isinstance(body, Mapping):
        return None, None
    inner = child(body, "properties")  # tolerate a body wrapped like an ARM resource
    with_failover = flag(field(body, "restartWithFailover"))
    if with_failover is None:
        with_failover = flag(field(inner, "restartWithFailover"))
    mode = text(field(body, "failoverMode")) or text(field(inner, "failoverMode"))
    return with_failover, mode


def _signal_id(alert: Alert, status: str | None) -> str:
    ctx = alert.context
    return first_id(
        "monitor:al",
        ident(ctx, "eventDataId", where="alertContext.eventDataId"),
        joined(ident(ctx, "operationId", where="alertContext.operationId"), fold(status)),
        alert.alert_id,
    )


def _summary(status: str | None, with_failover: bool | None, mode: str | None) -> str:
    shown = clip(status, 40) or "status not given"
    if with_failover is False:
        return f"Activity Log: server restart without failover {shown}"
    if mode:
        return f"Activity Log: restart with failover ({clip(mode, 40)}) {shown}"
    return f"Activity Log: restart {shown} (failover mode not in the event)"
