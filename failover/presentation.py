"""One typed view of an incident for people, and the one duration formatter.

Layer: pure core. `IncidentView.of(incident, entries)` is built once per answer from the domain
`Incident` and its timeline entries; every presenter (the Teams card, the PagerDuty event, the CLI,
the JSON lookups, the timeline page) reads the same facts and words from it: the cause and status in
words (a stale incident is "closed without recovery evidence"), the headline and advice of a
transition, the zones (a same-zone failover says so), the downtime, the detection figures, the
phases of the failover, the HA-state timeline (read from the entries' `details`, never from their
summary text), the notifications with their channel, the verification steps and the zone-outage
digest the incident was folded into. It must not do
I/O, read the clock (callers pass `now` where an age is shown) or escape for any one medium: each
presenter escapes for its own (the card de-markdowns, the page autoescapes HTML, the CLI strips
control characters).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import quote

from failover.model import (
    Cause,
    Incident,
    IncidentStatus,
    TimelineEntry,
    Transition,
)
from failover.phases import HaStep, Phase, failover_phases, ha_steps
from failover.timeutil import ensure_utc, iso, parse_iso
from failover.urls import MAX_URL_LENGTH

_MAX_SECONDS = 10 * 365 * 86400
PORTAL_BASE = "https://portal.azure.com/#@/resource"

CAUSE_TEXT = {
    Cause.PLANNED: "planned failover",
    Cause.FORCED: "forced failover",
    Cause.UNPLANNED: "unplanned failover (platform)",
    Cause.MAINTENANCE: "planned maintenance",
    Cause.SCALING: "compute scaling by failover",
    Cause.UNKNOWN: "cause not known yet",
}
STALE_TEXT = "closed without recovery evidence"
CHANNEL_NAMES = {"teams": "Teams", "pagerduty": "PagerDuty"}  # how people spell them; others as stored
# The responder's own timeline entries that need someone's attention.
ALARM_KINDS = frozenset({"effect_dead", "failover_failed"})


def format_duration(seconds: object, *, missing: str = "not measured") -> str:
    """`12.4 s`, `45 s`, `2 min 5 s`, `6 min`, `2 h 05 min`, `3 d 4 h`; `missing` when not a duration."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return missing
    value = float(seconds)
    if not math.isfinite(value) or value < 0 or value > _MAX_SECONDS:
        return missing
    if value < 60:
        return f"{value:.1f} s" if value % 1 else f"{int(value)} s"
    whole = round(value)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s" if whole % 60 else f"{whole // 60} min"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def portal_url(resource_id: str | None) -> str | None:
    """The Azure portal overview page of an ARM resource id, or None when the id is not one."""
    if not resource_id or not resource_id.startswith("/subscriptions/"):
        return None
    if any(ch.isspace() or ch in "#?\"'<>\\" for ch in resource_id):
        return None
    url = f"{PORTAL_BASE}{resource_id}/overview"
    return url if len(url) <= MAX_URL_LENGTH else None


def channel_name(channel: str) -> str:
    return CHANNEL_NAMES.get(channel, channel)


def format_time(value: datetime | None, *, missing: str) -> str:
    return missing if value is None else ensure_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def detection_figure(detected_at: datetime | None, azure_alert_at: datetime | None) -> str | None:
    """How long before Azure's first alert the app knew (None: not detected)."""
    if detected_at is None:
        return None
    if azure_alert_at is None:
        return f"Detected at {format_time(detected_at, missing='unknown')}; no Azure alert yet"
    lead = round((ensure_utc(azure_alert_at) - ensure_utc(detected_at)).total_seconds())
    if lead > 0:
        return f"Detected {format_duration(lead)} before Azure's alert"
    if lead < 0:
        return f"Azure's alert came {format_duration(-lead)} before the app detected it"
    return "Detected at the same time as Azure's alert"


def phase_note(phase: Phase) -> str:
    """`ongoing`, the span's duration, or the moment's time of day."""
    if phase.ongoing:
        return "ongoing"
    seconds = phase.seconds
    return format_duration(seconds) if seconds is not None else f"{phase.start:%H:%M:%S}"


@dataclass(frozen=True)
class EntryView:
    """One numbered timeline entry (numbers run on across the parts of a long timeline)."""

    number: int
    entry: TimelineEntry

    @property
    def alarm(self) -> bool:
        return self.entry.kind in ALARM_KINDS


@dataclass(frozen=True)
class VerificationStep:
    """One post-failover check (`verification: [{check, status, at, detail}]` in the incident JSON)."""

    check: str
    status: str  # passed / failed / pending / skipped
    at: datetime | None
    detail: str

    @classmethod
    def from_public(cls, raw: object) -> VerificationStep | None:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("check"), str):
            return None
        at: datetime | None = raw.get("at") if isinstance(raw.get("at"), datetime) else None
        try:
            at = at or parse_iso(raw.get("at"))
        except (ValueError, OverflowError):
            at = None
        detail = raw.get("detail")
        return cls(
            raw["check"], str(raw.get("status") or "pending"), at, "" if detail is None else str(detail)
        )


@dataclass(frozen=True)
class DigestMember:
    """A server of a zone-outage digest window, as its other servers' timelines list it."""

    server: str
    incident_id: str
    cause: str
    status: str

    @property
    def timeline_path(self) -> str:
        """The server's own timeline page, under the app's base URL."""
        return f"/api/incidents/{quote(self.incident_id, safe='~')}/timeline"

    def to_public(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "incident_id": self.incident_id,
            "cause": self.cause,
            "status": self.status,
        }


@dataclass(frozen=True)
class DigestLink:
    """The zone-outage digest an incident's cards were folded into (`digest` in its JSON).

    `digest_id` is the outage (`GET /api/digests/{digest_id}`), `window` the card's window in it."""

    digest_id: str
    window: str
    start: datetime
    end: datetime
    members: tuple[DigestMember, ...]

    @property
    def path(self) -> str:
        """Where the digest can be seen, under the app's base URL."""
        return f"/api/digests/{quote(self.digest_id, safe='~')}"

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.digest_id,
            "window": self.window,
            "window_start": iso(self.start),
            "window_end": iso(self.end),
            "url": self.path,
            "servers": [m.to_public() for m in self.members],
        }


@dataclass(frozen=True)
class TimelinePart:
    """Which entries of a long timeline are shown (answers are capped; `start` pages on)."""

    start: int = 0
    limit: int | None = None  # None: every entry from `start`


@dataclass(frozen=True)
class IncidentView:
    """What people are told about one incident, in facts and words, whatever the medium."""

    incident: Incident
    entries: tuple[TimelineEntry, ...] = ()
    verification: tuple[VerificationStep, ...] = ()
    part: TimelinePart = field(default_factory=TimelinePart)
    digest: DigestLink | None = None  # the zone-outage digest that told this incident's story

    @classmethod
    def of(
        cls,
        incident: Incident,
        entries: Sequence[TimelineEntry] = (),
        *,
        verification: Sequence[VerificationStep] | None = None,
        part: TimelinePart | None = None,
        digest: DigestLink | None = None,
    ) -> IncidentView:
        """The view of `incident` with all its `entries` (in time order), showing `part` of them;
        verification steps default to the ones the incident keeps."""
        if verification is None:
            found = (VerificationStep.from_public(raw) for raw in incident.verification)
            verification = [step for step in found if step is not None]
        return cls(incident, tuple(entries), tuple(verification), part or TimelinePart(), digest)

    @property
    def is_open(self) -> bool:
        return self.incident.status is IncidentStatus.OPEN

    @property
    def closed_at(self) -> datetime | None:
        return self.incident.resolved_at or self.incident.stale_at

    @cached_property
    def rows(self) -> tuple[EntryView, ...]:
        """The entries shown, numbered from one across the whole timeline."""
        start, limit = self.part.start, self.part.limit
        shown = self.entries[start : None if limit is None else start + limit]
        return tuple(EntryView(start + n, e) for n, e in enumerate(shown, start=1))

    @property
    def next_start(self) -> int | None:
        """The `start` of the part after the one shown, or None when it is the last."""
        following = self.part.start + len(self.rows)
        return following if following < len(self.entries) else None

    @cached_property
    def ha_states(self) -> tuple[HaStep, ...]:
        """The HA state over time, from the `ha_state` the management API's entries carry."""
        return ha_steps(self.entries)

    @cached_property
    def phases(self) -> tuple[Phase, ...]:
        """The failover's phases in order (a phase that did not happen is absent), with the
        client-observed write outage beside them."""
        return failover_phases(self.incident, self.entries, self.ha_states)

    @property
    def cause_text(self) -> str:
        return CAUSE_TEXT.get(self.incident.cause, str(self.incident.cause))

    @property
    def status_text(self) -> str:
        if self.incident.status is IncidentStatus.STALE:
            return STALE_TEXT
        return str(self.incident.status)

    @property
    def downtime_text(self) -> str:
        return format_duration(self.incident.write_downtime_seconds)

    @property
    def detection_text(self) -> str | None:
        return detection_figure(self.incident.detected_at, self.incident.azure_alert_at)

    @property
    def moved_zone(self) -> str | None:
        """The new primary zone, once the management API has shown the primary move there."""
        before, after = self.incident.primary_zone_before, self.incident.primary_zone_after
        return after if after and after != before else None

    def primary_zones(self, transition: Transition) -> str:
        before, after = self.incident.primary_zone_before, self.incident.primary_zone_after
        if before and before == after:
            return f"zone {before}, same zone"  # same-zone HA: nothing moved
        if before or after:
            pending = "pending" if transition is Transition.OPENED else "unknown"
            return f"{before or 'unknown'} \u2192 {after or pending}"
        return "unknown"

    @property
    def zones_text(self) -> str:
        """The primary's zones as things stand: `1 → 2`, `1 → pending`, `zone 1, same zone`."""
        return self.primary_zones(Transition.OPENED if self.is_open else Transition.RESOLVED)

    @property
    def standby_text(self) -> str:
        standby = self.incident.standby_zone_after
        return f"standby now in zone {standby}" if standby else "standby zone unknown"

    @property
    def restored_after(self) -> float | None:
        """Seconds from opening until the primary served again (None: not yet)."""
        restored = self.incident.primary_restored_at
        return None if restored is None else (restored - self.incident.opened_at).total_seconds()

    @property
    def closed_after(self) -> float | None:
        """Seconds from opening until the incident resolved or went stale (None: still open)."""
        closed = self.closed_at
        return None if closed is None else (closed - self.incident.opened_at).total_seconds()

    def public(self) -> dict[str, Any]:
        """The incident's public JSON (design section 5), with its verification steps."""
        body = self.incident.to_public()
        body["verification"] = [
            {"check": s.check, "status": s.status, "at": iso(s.at), "detail": s.detail}
            for s in self.verification
        ]
        return body

    def to_json(self) -> dict[str, Any]:
        """The public JSON of one incident with the part of its timeline shown, its phases and HA
        states (read from every entry, not just the part shown)."""
        return {
            **self.public(),
            "phases": [
                {"phase": p.key, "start": iso(p.start), "end": iso(p.end), "ongoing": p.ongoing}
                for p in self.phases
            ],
            "ha_states": [
                {"at": iso(s.at), "state": s.state, "previous": s.previous} for s in self.ha_states
            ],
            "timeline": [r.entry.to_public() for r in self.rows],
            "timeline_start": self.part.start,
            "timeline_total": len(self.entries),
            "timeline_next": self.next_start,
            "digest": self.digest.to_public() if self.digest is not None else None,
        }

    def headline(self, transition: Transition, server: str | None = None) -> str:
        """Where things stand after `transition`; `server` is the name as the medium shows it."""
        name = server if server is not None else self.incident.server
        if transition is Transition.OPENED:
            return (
                f"Failover in progress on {name} \u2014 writes may fail; "
                "clients reconnect to the same host name"
            )
        if transition is Transition.PRIMARY_RESTORED:
            where = f" in zone {self.moved_zone}" if self.moved_zone else ""
            return f"{name} is accepting writes again{where} \u2014 standby being rebuilt"
        if transition is Transition.STALE:
            return f"{name} failover {STALE_TEXT}"
        return f"{name} failover resolved \u2014 HA healthy"

    @staticmethod
    def advice(transition: Transition) -> str:
        if transition is Transition.OPENED:
            return (
                "Applications should retry failed writes and reconnect; the server keeps its host name. "
                "No action is needed unless writes stay down."
            )
        if transition is Transition.PRIMARY_RESTORED:
            return (
                "Writes succeed again. High availability is reduced until the standby is rebuilt; "
                "another failover now would take longer."
            )
        if transition is Transition.STALE:
            return (
                "No source reported the server whole again within the stale bound. Check the server's "
                "HA state and the probe's health before trusting it."
            )
        return "The server is whole again: primary serving, standby in sync. No action is needed."
