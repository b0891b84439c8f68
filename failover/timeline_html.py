"""The incident timeline as a self-contained HTML page for people (`GET .../timeline`, CLI `--html`).

Layer: pure core rendering. One function from an `IncidentView` (`failover.presentation`) and the
current time to a string: the Jinja2 template `templates/timeline.html.j2`, autoescaped, with the
style sheet `templates/timeline.css` inlined at render time. The SVG geometry comes from
`failover.timeline_chart`; this module adds the page's fact cards and the template's filters. It
must do no I/O but reading its own two package files (once), read no clock, and the
page must load nothing from anywhere (inline CSS and inline SVG only: no scripts, fonts, style
sheets or images, so the page works offline and under the strict `CSP`). Every payload value reaches
the page through autoescaping; class names come from fixed tables, never from payloads.

What it shows: the phases of the failover as bars on one time axis, the HA state over time, every
timeline entry as a numbered mark in its source's lane, the measured client write downtime, zones,
cause, status, detection lead, verification steps, the notifications sent per channel, upcoming
maintenance, and every entry in a table (capped, with a "more" link to the next part).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover.presentation import STALE_TEXT, IncidentView, channel_name, format_duration
from failover.timeline_chart import (
    LANE,
    MARK_R,
    PLOT_LEFT,
    PLOT_RIGHT,
    SOURCE_NAMES,
    SOURCES,
    WIDTH,
    axis_of,
    chart,
    zoom_of,
)
from failover.timeutil import parse_iso

if TYPE_CHECKING:
    from jinja2 import Environment

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
# `frame-ancestors` is ignored in a <meta> policy; the HTTP header carries it.
META_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
TEMPLATES = Path(__file__).resolve().parent / "templates"

# --- the page ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    detail: str
    tone: str = ""  # alert / ok / warn / "" (a CSS class)
    muted: bool = False


def cards(view: IncidentView, now: datetime) -> list[Card]:
    """The fact cards above the chart: downtime, zones, restore, the end of it, detection."""
    incident = view.incident
    downtime = incident.write_downtime_seconds
    cards = [
        Card(
            "Client write downtime", format_duration(downtime), "writes refused, as a client saw it", "alert"
        )
        if downtime is not None
        else Card("Client write downtime", "not measured", "no database probe measured writes", muted=True),
        Card(
            "Primary zone",
            view.zones_text,
            view.standby_text + (f" · HA {incident.ha_state}" if incident.ha_state else ""),
        ),
    ]
    if incident.primary_restored_at is not None:
        at = f"serving again at {incident.primary_restored_at:%H:%M:%S} UTC"
        cards.append(Card("Primary restored after", format_duration(view.restored_after), at))
    else:
        cards.append(Card("Primary restored", "not yet", "no evidence of a serving primary", muted=True))
    if view.closed_at is not None:
        stale = incident.resolved_at is None
        label = "Closed after" if stale else "Resolved after"
        detail = (
            f"{STALE_TEXT} at {view.closed_at:%H:%M:%S} UTC" if stale else f"at {view.closed_at:%H:%M:%S} UTC"
        )
        cards.append(Card(label, format_duration(view.closed_after), detail, "bad" if stale else "ok"))
    else:
        took = format_duration((now - incident.opened_at).total_seconds())
        cards.append(Card("Open for", took, f"as of {now:%H:%M:%S} UTC", "warn"))
    return [*cards, _detection_card(view)]


def _detection_card(view: IncidentView) -> Card:
    incident = view.incident
    if incident.detected_at is None:
        return Card("Detection", "not recorded", "no detection time kept", muted=True)
    lead = incident.detection_lead_seconds
    detected = f"detected {incident.detected_at:%H:%M:%S} UTC"
    if lead is None:
        return Card("Detected", f"{incident.detected_at:%H:%M:%S}", f"{detected}; no Azure alert yet")
    alert = f"Azure's first alert {incident.azure_alert_at:%H:%M:%S} UTC"
    if lead >= 0:
        return Card("Ahead of Azure's alert", format_duration(lead), f"{detected} · {alert}", "ok")
    return Card("Behind Azure's alert", format_duration(-lead), f"{detected} · {alert}", muted=True)


@dataclass(frozen=True)
class Upcoming:
    starts: str
    ends: str
    status: str
    event: str


def upcoming_rows(items: Sequence[Mapping[str, Any]]) -> list[Upcoming]:
    """The server's upcoming maintenance (from `maintenanceEvents`, as the probe keeps it)."""
    return [
        Upcoming(
            _stamp_text(m.get("starts_at")),
            _stamp_text(m.get("ends_at")),
            _text(m.get("status")),
            _text(m.get("event_id")),
        )
        for m in items
        if isinstance(m, Mapping)
    ]


def render_timeline_page(
    view: IncidentView, *, now: datetime, upcoming: Sequence[Mapping[str, Any]] = ()
) -> str:
    """A complete, self-contained HTML document describing one incident."""
    axis = axis_of(view, now)
    zoom = zoom_of(view.phases, axis)
    opened = view.incident.opened_at
    counts = {key: 0 for key, _, _ in SOURCES}
    for row in view.rows:
        counts[row.entry.source] = counts.get(row.entry.source, 0) + 1
    return (
        _environment()
        .get_template("timeline.html.j2")
        .render(
            view=view,
            incident=view.incident,
            now=now,
            csp=META_CSP,
            cards=cards(view, now),
            overview=chart(view, axis, "Failover timeline"),
            zoom=chart(view, zoom, "The failover up close") if zoom else None,
            zoom_window=f"{zoom.start:%H:%M:%S} to {zoom.end:%H:%M:%S} UTC" if zoom else "",
            legend=[(key, name, counts[key]) for key, _, name in SOURCES],
            same_day={r.entry.at.date() for r in view.rows} <= {opened.date()},
            upcoming=upcoming_rows(upcoming),
            geometry={"width": WIDTH, "left": PLOT_LEFT, "right": PLOT_RIGHT, "mark_r": MARK_R, "lane": LANE},
        )
    )


# --- Jinja2 and filters --------------------------------------------------------------------------


@functools.cache
def _environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        duration=format_duration,
        channel=channel_name,
        stamp=stamp,
        offset=offset,
        words=lambda value: _text(value).replace("_", " ").capitalize(),
        px=lambda value: f"{value:.1f}",
        source_name=lambda source: SOURCE_NAMES.get(source) or source or "Other",
        source_class=lambda source: source if source in SOURCE_NAMES else "other",
        status_class=lambda status: _STATUS_CLASSES.get(_text(status), "neutral"),
    )
    return env


_STATUS_CLASSES = {
    "done": "ok",
    "passed": "ok",
    "dead": "bad",
    "failed": "bad",
    "pending": "warn",
    "running": "warn",
    "suppressed": "neutral",
    "skipped": "neutral",
}


def stamp(when: datetime | None, *, millis: bool = False, seconds: bool = True, date: bool = True) -> str:
    if when is None:
        return ""
    text = when.strftime(("%Y-%m-%d " if date else "") + ("%H:%M:%S" if seconds else "%H:%M"))
    return f"{text}.{when.microsecond // 1000:03d}" if millis else text


def offset(delta: timedelta) -> str:
    """`+0:12.4` or `+1:02:03.0` from the opening of the incident."""
    total = delta.total_seconds()
    sign = "-" if total < 0 else "+"
    minutes, secs = divmod(abs(total), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{sign}{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{sign}{minutes}:{secs:04.1f}"


def _stamp_text(value: object) -> str:
    try:
        return stamp(parse_iso(value))
    except (ValueError, OverflowError):
        return _text(value)


def _text(value: object) -> str:
    return "" if value is None else str(value)
