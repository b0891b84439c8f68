"""Service Health alerts (activity log category ServiceHealth): planned maintenance notices.

Layer: pure core (`failover.sources`). Maps one validated `Alert` to signals. It must not do
I/O, read the clock or log payload contents, and it raises only `InvalidPayloadError`.

A documented Service Health payload names services and regions, not resources
(`impactedServices`: `[{"ServiceName", "ImpactedRegions": [{"RegionName"}]}]`; `alertTargetIDs`
is the subscription). Impacted resources of planned maintenance are listed in the portal and in
Resource Graph (`servicehealthresources`), not in the alert. So a notice yields signals only for
flexible servers it names by resource id (in `alertTargetIDs`, an `impactedResources`-style
property, or `ImpactedResources` inside `impactedServices`); otherwise it is ignored with a reason
that gives its tracking id, and the probe/lookup layer can resolve impact if it wants to.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

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
    ident,
    ignore,
    joined,
    lookup,
    soft_timestamp,
    text,
    unique,
)
from failover.sources.resources import flexible_server_from_resource_id
from failover.timeutil import iso

_INCIDENT_TYPES: dict[str, tuple[SignalKind, tuple[Cause, int]]] = {
    "maintenance": (SignalKind.MAINTENANCE_SCHEDULED, (Cause.MAINTENANCE, 2)),
}
# Where a notice could name resources (none of these is in the documented samples).
_RESOURCE_LIST_KEYS = ("impactedResources", "impactedResourceIds", "resourceIds", "resourceId")
_RESOURCE_ITEM_KEYS = ("resourceId", "id", "resourceUri", "targetResourceId")
_MAX_ITEMS = 500


def parse(alert: Alert) -> ParseResult:
    props = child(alert.context, "properties")
    incident_type = text(field(props, "incidentType"))
    tracking_id = clip(field(props, "trackingId"), 60)
    rule = lookup(_INCIDENT_TYPES, incident_type)
    if rule is None:
        shown = clip(incident_type, 40) or "unspecified"
        notice = f"notice {tracking_id}" if tracking_id else "notice"
        return ignore(f"Service Health {shown} {notice} is not planned maintenance")
    servers = unique(_named_servers(alert, props))
    if not servers:
        return ignore(
            f"Service Health maintenance {tracking_id or '(no tracking id)'} names no PostgreSQL "
            "flexible server: the notice lists services and regions, not resources"
        )
    kind, cause = rule
    observed = event_time(alert)
    start = soft_timestamp(field(props, "impactStartTime"))
    end = soft_timestamp(field(props, "impactMitigationTime"))
    regions = _regions(props)
    title = clip(field(props, "title", "defaultLanguageTitle"))
    details = {
        "tracking_id": tracking_id,
        "title": title,
        "impact_start": iso(start),
        "impact_end": iso(end),
        "regions": clip(", ".join(regions), 200),
        "service": clip(field(props, "service"), 80),
        "stage": clip(field(props, "stage"), 40),
        "event_status": clip(field(alert.context, "status"), 40),
        "correlation_id": clip(field(alert.context, "correlationId"), 80),
    }
    base_id = _base_id(alert, props)
    return accept(
        *(
            alert.signal(
                server,
                signal_id=f"{base_id}:{server[1]}",
                kind=kind,
                cause=cause,
                observed_at=observed,
                summary=_summary(tracking_id, start, end, title),
                details=details,
            )
            for server in servers
        )
    )


def _named_servers(alert: Alert, props: JsonMap) -> Iterator[tuple[str, str]]:
    candidates: list[object] = [*alert.target_ids, *_resource_ids(props)]
    for service in _impacted_services(props):
        candidates.extend(_resource_ids(service, "ImpactedResources"))
    for candidate in candidates[:_MAX_ITEMS]:
        server = flexible_server_from_resource_id(candidate)
        if server is not None:
            yield server


def _resource_ids(mapping: JsonMap, *keys: str) -> Iterator[object]:
    for key in keys or _RESOURCE_LIST_KEYS:
        value = field(mapping, key)
        if isinstance(value, str) and value.lstrip().startswith(("[", "{")):
            value = embedded_json(value)
        items = value if isinstance(value, list) else [value]
        for item in items[:_MAX_ITEMS]:
            yield field(item, *_RESOURCE_ITEM_KEYS) if isinstance(item, Mapping) else item


def _impacted_services(props: JsonMap) -> tuple[JsonMap, ...]:
    services = embedded_json(field(props, "impactedServices"))
    if not isinstance(services, list):
        return ()
    return tuple(service for service in services[:_MAX_ITEMS] if isinstance(service, Mapping))


def _regions(props: JsonMap) -> tuple[str, ...]:
    names: list[str] = []
    for service in _impacted_services(props):
        regions = field(service, "ImpactedRegions")
        for region in regions[:_MAX_ITEMS] if isinstance(regions, list) else ():
            name = clip(field(region, "RegionName"), 60) if isinstance(region, Mapping) else None
            if name:
                names.append(name)
    region = clip(field(props, "region"), 60)
    return unique(names or ([region] if region else []))


def _summary(tracking_id: str | None, start: datetime | None, end: datetime | None, title: str | None) -> str:
    summary = "Service Health: maintenance"
    if tracking_id:
        summary += f" {tracking_id}"
    summary += " scheduled"
    if start and end:
        summary += f" from {iso(start)} to {iso(end)}"
    return f"{summary}, {title}" if title else summary


def _base_id(alert: Alert, props: JsonMap) -> str:
    ctx = alert.context
    return first_id(
        "monitor:sh",
        ident(ctx, "eventDataId", where="alertContext.eventDataId"),
        joined(
            ident(props, "trackingId", where="properties.trackingId"),
            ident(props, "communicationId", where="properties.communicationId"),
        ),
        alert.alert_id,
    )
