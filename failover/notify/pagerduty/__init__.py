"""The PagerDuty channel: Events API v2 alert events (`POST https://events.pagerduty.com/v2/enqueue`).

Layer: adapter (edge). One alert per incident: `dedup_key` is the incident id, so `trigger` on
opened (and primary restored, which updates the same alert) and `resolve` on resolved or stale
act on one alert. Severity follows the cause (an unplanned failover is critical, one people
started is a warning). Routed by `PAGERDUTY_ROUTES` (`pattern=routing key`), else
`PAGERDUTY_ROUTING_KEY`; `PAGERDUTY_EVENTS_URL` overrides the endpoint (loopback in tests).
Answers are classified by `failover.notify.http.classify` (202 accepted, 400 permanent, 429 and
5xx retryable); there is no retry here. Routing keys are credentials: registered with
`failover.secrets` before use, never in a log line or an error text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from failover.errors import ConfigError
from failover.model import Cause, Transition
from failover.notify.channel import Links
from failover.notify.http import JsonPoster, classify
from failover.notify_policy import Route, parse_routes, route_for
from failover.presentation import IncidentView
from failover.secrets import register
from failover.timeutil import iso
from failover.urls import describe_host

if TYPE_CHECKING:
    from failover.config import Settings

NAME = "pagerduty"
EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
ROUTING_KEY = re.compile(r"^[A-Za-z0-9_+-]{20,64}$")  # the 32-character integration key, leniently
_SUMMARY_LIMIT = 1024
_SEVERITY = {
    Cause.UNPLANNED: "critical",
    Cause.UNKNOWN: "error",
    Cause.FORCED: "error",
    Cause.PLANNED: "warning",
    Cause.MAINTENANCE: "warning",
    Cause.SCALING: "warning",
}
_ACTION = {
    Transition.OPENED: "trigger",
    Transition.PRIMARY_RESTORED: "trigger",
    Transition.RESOLVED: "resolve",
    Transition.STALE: "resolve",
}


def valid_routing_key(value: str) -> bool:
    return ROUTING_KEY.match(value) is not None


def render_event(view: IncidentView, transition: Transition, links: Links) -> dict[str, Any]:
    """The Events API v2 body without its routing key (pure)."""
    incident = view.incident
    details = {
        "incident_id": incident.incident_id,
        "status": view.status_text,
        "cause": view.cause_text,
        "primary_zone": view.primary_zones(transition),
        "standby_zone": incident.standby_zone_after,
        "ha_state": incident.ha_state,
        "client_write_downtime": view.downtime_text,
        "detection": view.detection_text,
        "advice": view.advice(transition),
    }
    event: dict[str, Any] = {
        "event_action": _ACTION[transition],
        "dedup_key": incident.incident_id,
        "payload": {
            "summary": view.headline(transition)[:_SUMMARY_LIMIT],
            "source": incident.server,
            "severity": _SEVERITY.get(incident.cause, "error"),
            "timestamp": iso(incident.opened_at),
            "component": "postgresql-flexible-server",
            "class": view.cause_text,
            "custom_details": {k: v for k, v in details.items() if v is not None},
        },
        "client": "pg-failover-responder",
    }
    named = (("Incident timeline", links.timeline_url), ("Azure portal", links.portal_url))
    event["links"] = [{"href": url, "text": text} for text, url in named if url]
    if links.timeline_url:
        event["client_url"] = links.timeline_url
    return event


class PagerDutyChannel:
    """`Channel` for PagerDuty's Events API v2."""

    name = NAME

    def __init__(
        self,
        poster: JsonPoster,
        *,
        default_key: str | None,
        routes: tuple[Route, ...] = (),
        events_url: str = EVENTS_URL,
    ) -> None:
        self._poster = poster
        self._default_key = default_key
        self._routes = routes
        self._events_url = events_url

    def __repr__(self) -> str:
        return f"PagerDutyChannel(routes={len(self._routes)}, endpoint={describe_host(self._events_url)!r})"

    def target_for(self, server: str) -> str | None:
        return route_for(server, self._routes, self._default_key)

    def render(self, view: IncidentView, transition: Transition, links: Links) -> Mapping[str, Any]:
        return render_event(view, transition, links)

    def send(self, target: str, message: Mapping[str, Any]) -> None:
        register(target)
        answer = self._poster.post(self._events_url, {"routing_key": target, **message}, channel="pagerduty")
        classify(answer, f"pagerduty events at {describe_host(self._events_url)}")


def build(settings: Settings, poster: JsonPoster) -> PagerDutyChannel | None:
    """The channel when `PAGERDUTY_ROUTING_KEY` or `PAGERDUTY_ROUTES` is set; None otherwise."""
    default_key = settings.pagerduty_routing_key.reveal() if settings.pagerduty_routing_key else None
    routes = parse_routes(
        settings.pagerduty_routes.reveal() if settings.pagerduty_routes else None,
        setting="PAGERDUTY_ROUTES",
        valid=valid_routing_key,
        noun="routing key",
        what="Events API v2 integration key",
    )
    if default_key is not None and not valid_routing_key(default_key):
        raise ConfigError("PAGERDUTY_ROUTING_KEY: not an Events API v2 integration key (value not shown)")
    if not default_key and not routes:
        return None
    return PagerDutyChannel(
        poster, default_key=default_key, routes=routes, events_url=settings.pagerduty_events_url
    )
