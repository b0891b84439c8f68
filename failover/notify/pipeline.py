"""What runs in front of every channel: routing, maintenance muting and deferral, then the channel.

Layer: application. `NotifyPipeline.deliver` runs one `notify_{channel}` effect and returns it
finished (done, skipped, suppressed) or pending again (held back until a maintenance window ends);
a channel's error propagates to the Responder, whose outbox retry is the only retry policy. The
Responder then records the notification under the channel's name. It never sleeps, never reads
the environment, and never logs a target (targets are secrets).

Maintenance (`MAINTENANCE_WINDOWS`): inside a window every message is held until the window's
end, without spending an attempt; at the end a held message goes out if its transition is still
the incident's latest, else it is suppressed (`effects.card_action`).

Zone outages (`failover.digesting`): every message first tells the digest the incident's latest
state; a message of an incident folded into a zone digest window is suppressed (the digest card
tells its story). Pacing: a channel target posts at most once a second (`ChannelPacer`, shared with
the digest cards); a message that finds its channel busy is pending again for the freed slot,
without spending an attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from failover import effects as fx
from failover.digesting import ChannelPacer, ZoneDigest
from failover.model import Effect, EffectStatus, Incident, Transition
from failover.notify.channel import Channel, Links
from failover.presentation import IncidentView, portal_url
from failover.timeutil import iso

log = logging.getLogger(__name__)

HELD = "held_until"  # effect payload key: the window end a message was held back to


def _no_window(server: str, now: datetime) -> datetime | None:
    return None


def _no_link(incident_id: str) -> str | None:
    return None


def _no_region(server: str) -> str | None:
    return None


@dataclass
class NotifyPipeline:
    """The configured channels by name, and the policy in front of them."""

    channels: Mapping[str, Channel] = field(default_factory=dict)
    maintenance_end: Callable[[str, datetime], datetime | None] = _no_window
    timeline_url_for: Callable[[str], str | None] = _no_link
    digest: ZoneDigest | None = None
    region_of: Callable[[str], str | None] = _no_region  # the server's Azure region (None: unknown)
    pacer: ChannelPacer | None = None
    # The incident with its verification steps, for the resolved message (None: not configured).
    with_verification: Callable[[Incident], Incident] | None = None

    def deliver(self, effect: Effect, load: Callable[[], Incident], *, now: datetime) -> Effect:
        """Run one notification effect (`load` reads its incident)."""
        name = effect.name.channel or ""
        channel = self.channels.get(name)
        if channel is None:
            return fx.finished(effect, EffectStatus.SKIPPED, now=now, note=f"{name} not configured")
        target = channel.target_for(effect.server)
        if target is None:
            return fx.finished(
                effect, EffectStatus.SKIPPED, now=now, note=f"{name}: routed off for this server"
            )
        incident = load()
        window_end = self.maintenance_end(effect.server, now)
        latest = incident.transitions[-1] if incident.transitions else None
        action = fx.card_action(effect.transition, window_end, held=HELD in effect.payload, latest=latest)
        if action == "defer" and window_end is not None:
            return _held(effect, window_end, now=now)
        if action == "suppress":
            log.info(
                "%s message for %s of incident %s suppressed: the incident moved on during maintenance",
                name,
                effect.transition.value,
                incident.incident_id,
            )
            return fx.finished(effect, EffectStatus.SUPPRESSED, now=now, note="superseded during maintenance")
        folded = self._folded(name, incident)
        if folded is not None:
            return fx.finished(
                effect, EffectStatus.SUPPRESSED, now=now, note=f"folded into zone digest {folded}"
            )
        if effect.transition is Transition.RESOLVED and self.with_verification is not None:
            incident = self.with_verification(incident)
        links = Links(self.timeline_url_for(incident.incident_id), portal_url(incident.resource_id))
        message = channel.render(IncidentView.of(incident), effect.transition, links)
        if message is None:
            return fx.finished(effect, EffectStatus.SKIPPED, now=now, note=f"{name}: nothing to send")
        free_at = self.pacer.claim(name, target) if self.pacer is not None else None
        if free_at is not None:
            return _pending(
                effect, free_at, now=now, note=f"{name}: the channel posted within the last second"
            )
        channel.send(target, message)
        log.info("%s message for %s of incident %s sent", name, effect.transition.value, incident.incident_id)
        return fx.finished(effect, EffectStatus.DONE, now=now)

    def _folded(self, name: str, incident: Incident) -> str | None:
        """Tell the digest the incident's latest state; the digest window key if it tells the story
        on this channel (a channel without digest cards keeps every message)."""
        if self.digest is None or name not in self.digest.channels:
            return None
        region = self.region_of(incident.server)
        if region is None:
            return None
        self.digest.note(incident, region)
        return self.digest.holds(incident, region)


def _held(effect: Effect, window_end: datetime, *, now: datetime) -> Effect:
    """Pending until the window ends; holding back is not an attempt."""
    held = _pending(effect, window_end, now=now, note="held back until the maintenance window ends")
    return replace(held, payload={**effect.payload, HELD: iso(window_end)})


def _pending(effect: Effect, until: datetime, *, now: datetime, note: str) -> Effect:
    """Pending again until `until`, without spending an attempt (nothing was sent)."""
    return replace(
        effect,
        status=EffectStatus.PENDING,
        attempts=max(effect.attempts - 1, 0),
        next_attempt_at=until,
        lease_until=None,
        updated_at=now,
        last_error=note,
    )
