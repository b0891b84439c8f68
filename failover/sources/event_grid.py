"""Event Grid resource events (resource group or subscription system topics) about flexible servers.

Layer: pure core (`failover.sources`). Takes one decoded event, in the Event Grid schema or as a
CloudEvents 1.0 event, and the time it arrived; returns a `ParseResult`. It must not do I/O,
read the clock or log payload contents (never `claims` or `httpRequest`: they identify people),
and it raises only `InvalidPayloadError`.

Event Grid sees ARM calls only: a user's failover (`POST .../restart`) gives
`ResourceActionSuccess` (ARM accepted the request; not that the failover finished) or
`ResourceActionFailure`/`Cancel`; an update of the server gives `ResourceWriteSuccess`. The event
carries no request body, so the failover mode is unknown. The subscription validation handshake
is answered by the host and ignored here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from failover.errors import InvalidPayloadError
from failover.model import Cause, SignalKind, Source
from failover.sources.parsing import (
    ParseResult,
    accept,
    build_signal,
    clip,
    field,
    fold,
    ident,
    ignore,
    ignore_foreign,
    lookup,
    require_object,
    text,
    timestamp,
)
from failover.sources.resources import first_flexible_server
from failover.timeutil import ensure_utc

RESTART_OPERATION = "microsoft.dbforpostgresql/flexibleservers/restart/action"
WRITE_OPERATION = "microsoft.dbforpostgresql/flexibleservers/write"
VALIDATION_EVENT = "microsoft.eventgrid.subscriptionvalidationevent"


@dataclass(frozen=True)
class _Rule:
    operation: str
    kind: SignalKind
    cause: tuple[Cause, int]
    summary: str


_RULES: dict[str, _Rule] = {
    "microsoftresourcesresourceactionsuccess": _Rule(
        RESTART_OPERATION,
        SignalKind.FAILOVER_STARTED,
        (Cause.PLANNED, 1),
        "restart accepted by ARM (ResourceActionSuccess); completion not confirmed",
    ),
    "microsoftresourcesresourceactionfailure": _Rule(
        RESTART_OPERATION,
        SignalKind.FAILOVER_FAILED,
        (Cause.PLANNED, 1),
        "restart failed (ResourceActionFailure)",
    ),
    "microsoftresourcesresourceactioncancel": _Rule(
        RESTART_OPERATION,
        SignalKind.FAILOVER_FAILED,
        (Cause.PLANNED, 1),
        "restart canceled (ResourceActionCancel)",
    ),
    "microsoftresourcesresourcewritesuccess": _Rule(
        WRITE_OPERATION,
        SignalKind.HA_CONFIG_CHANGED,
        (Cause.UNKNOWN, 0),
        "server settings written (ResourceWriteSuccess); high availability settings may have changed",
    ),
}


@dataclass(frozen=True)
class _Envelope:
    event_id: str
    event_type: str
    subject: object
    time: datetime
    data: object


def parse_event(event: Mapping[str, object], *, received_at: datetime) -> ParseResult:
    """Signals carried by one Event Grid (or CloudEvents 1.0) event, or why it is ignored."""
    received = ensure_utc(received_at)
    envelope = _envelope(event)
    if fold(envelope.event_type) == fold(VALIDATION_EVENT):
        return ignore("subscription validation event: the Functions host answers the handshake")
    rule = lookup(_RULES, envelope.event_type)
    if rule is None:
        return ignore(f"Event Grid event type {clip(envelope.event_type, 80)} is not one we watch")
    data = require_object(envelope.data, "data")
    candidates = (field(data, "resourceUri"), envelope.subject)
    server = first_flexible_server(candidates)
    if server is None:
        return ignore_foreign("Event Grid event", candidates)
    operation = text(field(data, "operationName"))
    if operation is None:
        raise InvalidPayloadError("data.operationName is required for resource events")
    if operation.lower() != rule.operation:
        return ignore(f"operation {clip(operation, 100)} on {server[1]} is not one we watch")
    return accept(
        build_signal(
            Source.EVENT_GRID,
            server,
            received_at=received,
            signal_id=f"eventgrid:{envelope.event_id}",
            kind=rule.kind,
            cause=rule.cause,
            observed_at=envelope.time,
            summary=f"Event Grid: {rule.summary}",
            details={
                "event_type": clip(envelope.event_type, 80),
                "operation": clip(operation, 100),
                "status": clip(field(data, "status"), 40),
                "correlation_id": clip(field(data, "correlationId"), 80),
            },
        )
    )


def _envelope(event: object) -> _Envelope:
    body = require_object(event, "the event")
    cloud = field(body, "specversion") is not None
    id_key, type_key, time_key = ("id", "type", "time") if cloud else ("id", "eventType", "eventTime")
    event_id = ident(body, id_key, where=id_key)
    if event_id is None:
        raise InvalidPayloadError(f"{id_key} is required")
    event_type = field(body, type_key)
    if not isinstance(event_type, str) or not event_type.strip():
        raise InvalidPayloadError(f"{type_key} is required and must be a string")
    when = timestamp(field(body, time_key), time_key)
    if when is None:
        raise InvalidPayloadError(f"{time_key} is required")
    return _Envelope(event_id, event_type.strip(), field(body, "subject"), when, field(body, "data"))
