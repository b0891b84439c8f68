"""`on_resource_event`: Event Grid resource events (Event Grid schema) from system topics.

Layer: edge. Returns normally for recorded, duplicate, ignored and malformed events: Event Grid
does not retry 400s and a poison event must not be retried for 24 hours
(https://learn.microsoft.com/azure/event-grid/delivery-and-retry). It raises only when storage is
unavailable, so the host answers 500 and Event Grid redelivers.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import azure.functions as func

from handlers._runtime import get_runtime

log = logging.getLogger(__name__)
bp = func.Blueprint()


@bp.event_grid_trigger(arg_name="event")
def on_resource_event(event: func.EventGridEvent) -> None:
    # Imported on first use, not when the worker indexes the app (cold start).
    from failover.errors import InvalidPayloadError, RetryableError
    from failover.secrets import redact
    from failover.sources.event_grid import parse_event

    raw = _as_dict(event)
    try:
        parsed = parse_event(raw, received_at=datetime.now(timezone.utc))
    except InvalidPayloadError as exc:
        log.warning("event grid event %s dropped as malformed: %s", raw.get("id"), exc)
        return
    if parsed.ignored:
        log.info("event grid event %s ignored: %s", raw.get("id"), parsed.ignored_reason)
        return
    runtime = get_runtime()
    try:
        for outcome in runtime.responder.record_all(
            s.with_received_at(runtime.clock()) for s in parsed.signals
        ):
            log.info(
                "event grid event %s: signal %s %s (incident %s)",
                raw.get("id"),
                outcome.signal.signal_id,
                outcome.status,
                outcome.incident_id,
            )
    except RetryableError as exc:
        log.warning(
            "event grid event %s: storage unavailable, Event Grid will redeliver: %s",
            raw.get("id"),
            redact(str(exc)),
        )
        raise


def _as_dict(event: func.EventGridEvent) -> dict[str, Any]:
    from failover.timeutil import iso

    try:
        data = event.get_json()
    except ValueError:
        data = None
    event_time = event.event_time
    return {
        "id": event.id,
        "topic": event.topic,
        "subject": event.subject,
        "eventType": event.event_type,
        "eventTime": iso(event_time)
        if isinstance(event_time, datetime) and event_time.tzinfo
        else event_time,
        "data": data,
        "dataVersion": event.data_version,
    }
