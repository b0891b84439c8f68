"""Azure Monitor alerts in the common alert schema: validate the envelope, dispatch by family.

Layer: pure core (`failover.sources`). Takes the decoded webhook body and the time it arrived;
returns a `ParseResult`. It must not do I/O, read the clock or log payload contents, and it
raises only `InvalidPayloadError` (the edge answers 400 with its message). Enforcing
`MAX_ALERT_BYTES` on the raw body (413) is the edge's job; the constant lives here with the schema.

Family modules: `resource_health`, `activity_log` (administrative), `metric_alert`,
`service_health`. Dispatch is by `essentials.monitoringService`, then by
`alertContext.eventSource`, then by `essentials.signalType`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from failover.errors import InvalidPayloadError
from failover.sources import activity_log, metric_alert, resource_health, service_health
from failover.sources.parsing import (
    Alert,
    ParseResult,
    clip,
    field,
    fold,
    ident,
    ignore,
    lookup,
    require_object,
    string_list,
    text,
    timestamp,
)
from failover.timeutil import ensure_utc

MAX_ALERT_BYTES = 256 * 1024
COMMON_SCHEMA_ID = "azureMonitorCommonAlertSchema"

FamilyParser = Callable[[Alert], ParseResult]

_BY_MONITORING_SERVICE: dict[str, FamilyParser] = {
    "resourcehealth": resource_health.parse,
    "activitylogadministrative": activity_log.parse,
    "platform": metric_alert.parse,
    "servicehealth": service_health.parse,
}
_BY_EVENT_SOURCE: dict[str, FamilyParser] = {
    "resourcehealth": resource_health.parse,
    "administrative": activity_log.parse,
    "servicehealth": service_health.parse,
}
_BY_SIGNAL_TYPE: dict[str, FamilyParser] = {
    "metric": metric_alert.parse,
}


def parse_alert(payload: object, *, received_at: datetime) -> ParseResult:
    """Signals carried by one common-schema alert, or why it is ignored; malformed raises."""
    alert = _envelope(payload, ensure_utc(received_at))
    family = (
        lookup(_BY_MONITORING_SERVICE, alert.monitoring_service)
        or lookup(_BY_EVENT_SOURCE, field(alert.context, "eventSource"))
        or lookup(_BY_SIGNAL_TYPE, alert.signal_type)
    )
    if family is None:
        service = clip(alert.monitoring_service, 60) or "an unnamed monitoring service"
        return ignore(f"alerts from {service} are not a source we watch")
    return family(alert)


def _envelope(payload: object, received_at: datetime) -> Alert:
    body = require_object(payload, "the alert payload")
    _check_schema(body)
    data = require_object(field(body, "data"), "data")
    essentials = require_object(field(data, "essentials"), "data.essentials")
    context = field(data, "alertContext")
    if context is not None and not isinstance(context, Mapping):
        raise InvalidPayloadError("data.alertContext must be a JSON object")
    alert_id = ident(essentials, "alertId", where="data.essentials.alertId")
    if alert_id is None:
        raise InvalidPayloadError("data.essentials.alertId is required")
    return Alert(
        alert_id=alert_id,
        rule=text(field(essentials, "alertRule")),
        monitoring_service=text(field(essentials, "monitoringService")),
        signal_type=text(field(essentials, "signalType")),
        monitor_condition=text(field(essentials, "monitorCondition")),
        target_ids=string_list(field(essentials, "alertTargetIDs"), "data.essentials.alertTargetIDs"),
        fired_at=timestamp(field(essentials, "firedDateTime"), "data.essentials.firedDateTime"),
        resolved_at=timestamp(field(essentials, "resolvedDateTime"), "data.essentials.resolvedDateTime"),
        context=context or {},
        received_at=received_at,
    )


def _check_schema(body: Mapping[str, object]) -> None:
    schema = field(body, "schemaId")
    if schema is None:
        raise InvalidPayloadError(
            "schemaId is missing: only the Azure Monitor common alert schema is accepted "
            "(enable 'Use common alert schema' on the action group's webhook action)"
        )
    if fold(schema) != fold(COMMON_SCHEMA_ID):
        shown = clip(schema, 60) or "not a string"
        raise InvalidPayloadError(
            f"schemaId {shown!r} is not {COMMON_SCHEMA_ID}: "
            "enable 'Use common alert schema' on the action group's webhook action"
        )
