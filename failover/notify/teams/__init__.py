"""The Teams channel: Adaptive Cards posted to a Power Automate Workflows webhook (design section 5).

Layer: adapter (edge). Routes by `TEAMS_ROUTES`, else `TEAMS_WEBHOOK_URL`; renders with
`card.render_card`; posts once through `failover.notify.http` (no retry, no sleep: the outbox
retries). Besides the shared classification, an old connector's `200` whose body says
"returned HTTP error 429" is throttling. The webhook URL is a secret (its query holds a `sig=` SAS).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from failover.model import Transition
from failover.notify.channel import ChannelUnavailableError, Links
from failover.notify.http import JsonPoster, classify
from failover.notify.teams.card import envelope, render_card
from failover.notify_policy import Route, parse_routes, route_for
from failover.presentation import IncidentView
from failover.urls import describe_host

if TYPE_CHECKING:
    from failover.config import Settings

NAME = "teams"
_LEGACY_THROTTLE = "returned HTTP error 429"  # old connectors answered 200 with this text


class TeamsChannel:
    """`Channel` for Power Automate Workflows webhooks ("when a Teams webhook request is received")."""

    name = NAME

    def __init__(
        self, poster: JsonPoster, *, default_url: str | None, routes: tuple[Route, ...] = ()
    ) -> None:
        self._poster = poster
        self._default_url = default_url
        self._routes = routes

    def __repr__(self) -> str:
        return f"TeamsChannel(routes={len(self._routes)}, default={'set' if self._default_url else 'none'})"

    def target_for(self, server: str) -> str | None:
        return route_for(server, self._routes, self._default_url)

    def render(self, view: IncidentView, transition: Transition, links: Links) -> Mapping[str, Any]:
        card = render_card(view, transition, timeline_url=links.timeline_url, portal_url=links.portal_url)
        return envelope(card)

    def send(self, target: str, message: Mapping[str, Any]) -> None:
        answer = self._poster.post(target, message, channel="teams webhook")
        label = f"teams webhook at {describe_host(target)}"
        if 200 <= answer.status < 300 and _LEGACY_THROTTLE in answer.excerpt:
            raise ChannelUnavailableError(
                f"{label} throttled the card (legacy 200 with HTTP error 429)",
                status=429,
                retry_after=answer.retry_after,
            )
        classify(answer, label)


def build(settings: Settings, poster: JsonPoster) -> TeamsChannel | None:
    """The channel when `TEAMS_WEBHOOK_URL` or `TEAMS_ROUTES` is set; None (not configured) otherwise."""
    default_url = settings.teams_webhook_url.reveal() if settings.teams_webhook_url else None
    routes = parse_routes(
        settings.teams_routes.reveal() if settings.teams_routes else None, setting="TEAMS_ROUTES"
    )
    if not default_url and not routes:
        return None
    return TeamsChannel(poster, default_url=default_url, routes=routes)
