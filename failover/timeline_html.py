"""The incident timeline as a self-contained HTML page for people (`GET .../timeline`, CLI `--html`).

Layer: pure core rendering. One function from the public incident JSON (with its `timeline`) and the
current time to a string. It must do no I/O and read no clock, load nothing from anywhere (inline CSS
and inline SVG only: no scripts, fonts, style sheets or images, so the page works offline and under
`CSP`), and must pass every value that came from a payload through `html.escape(..., quote=True)`,
in SVG text and attributes too. It uses no JavaScript at all.

What it shows: the phases of the failover as bars on one time axis (detected, failing over, writes
unavailable, primary restored, standby rebuilt, resolved; a phase that did not happen is absent),
every signal as a numbered mark in its source's lane, the measured client write downtime, zones
before and after, cause, status, the notifications sent, and every entry in a table.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from failover.timeutil import parse_iso

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
# `frame-ancestors` is ignored in a <meta> policy; the HTTP header carries it.
_META_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
)

# (source, lane label, colour, longer name for the legend and the table)
_SOURCES = (
    ("monitor_alert", "Monitor alerts", "#7c3aed", "Monitor alert"),
    ("event_grid", "Event Grid", "#0369a1", "Event Grid"),
    ("arm_probe", "Management API", "#b45309", "Management API probe"),
    ("db_probe", "Database probe", "#be185d", "Database probe"),
    ("responder", "Responder", "#374151", "Responder"),
)
_SOURCE_INDEX = {source[0]: n for n, source in enumerate(_SOURCES)}
_OTHER_SOURCE = ("other", "Other", "#6b7280", "Other")

_PROBLEM_KINDS = frozenset(
    {"failover_started", "health_degraded", "health_unavailable", "db_down", "write_unavailable"}
)
_HA_TARGET = re.compile(r"->\s*([A-Za-z]+)\s*\)?\s*$")
_ALARM_KINDS = frozenset({"effect_dead", "failover_failed"})

# SVG geometry (px in the viewBox; the page is laid out for a 1280 px wide window).
_WIDTH = 1136
_PLOT_LEFT = 170
_PLOT_RIGHT = _WIDTH - 96
_ROW = 30
_LANE = 34
_SUBROW = 20
_MARK_R = 9
_MAX_SUBROWS = 4


@dataclass(frozen=True)
class _Entry:
    number: int
    at: datetime | None
    at_text: str
    source: str
    kind: str
    summary: str
    signal_id: str


@dataclass(frozen=True)
class _Phase:
    key: str
    label: str
    colour: str
    start: datetime
    end: datetime | None  # None: a moment, not a span
    ongoing: bool = False
    note: str = ""


@dataclass(frozen=True)
class _Facts:
    incident: dict[str, Any]
    entries: tuple[_Entry, ...]
    opened: datetime | None
    restored: datetime | None
    resolved: datetime | None
    downtime: float | None
    is_open: bool


# --- public --------------------------------------------------------------------------------------


def render_timeline_page(incident_json: dict[str, Any], *, now: datetime) -> str:
    """A complete, self-contained HTML document describing one incident."""
    facts = _facts(incident_json)
    axis = _axis(facts, now)
    phases = _phases(facts, axis.end)
    body = "\n".join(
        (
            _header(facts, now),
            _fact_cards(facts, now),
            _timeline_sections(facts, phases, axis),
            _notifications_section(facts),
            _entries_section(facts),
            f"<footer>Rendered {_e(_stamp(now))} UTC by pg-failover-responder. All times are UTC.</footer>",
        )
    )
    return _DOCUMENT.format(title=_e(_title(facts)), csp=_e(_META_CSP), style=_STYLE, body=body)


# --- reading the incident ------------------------------------------------------------------------


def _facts(incident: dict[str, Any]) -> _Facts:
    raw_entries = incident.get("timeline")
    entries = tuple(
        _entry(n, raw)
        for n, raw in enumerate(raw_entries if isinstance(raw_entries, list) else (), start=1)
        if isinstance(raw, dict)
    )
    downtime = incident.get("write_downtime_seconds")
    return _Facts(
        incident=incident,
        entries=entries,
        opened=_time(incident.get("opened_at")),
        restored=_time(incident.get("primary_restored_at")),
        resolved=_time(incident.get("resolved_at")),
        downtime=float(downtime)
        if isinstance(downtime, (int, float)) and not isinstance(downtime, bool)
        else None,
        is_open=incident.get("status") != "resolved",
    )


def _entry(number: int, raw: dict[str, Any]) -> _Entry:
    return _Entry(
        number=number,
        at=_time(raw.get("at")),
        at_text=_text(raw.get("at")),
        source=_text(raw.get("source")),
        kind=_text(raw.get("kind")),
        summary=_text(raw.get("summary")),
        signal_id=_text(raw.get("signal_id")),
    )


def _time(value: object) -> datetime | None:
    try:
        return parse_iso(value)
    except (ValueError, OverflowError):
        return None


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _ha_target(entry: _Entry) -> str | None:
    """The HA state an `ha_state_changed` entry moved to (`... -> Healthy`)."""
    if entry.kind != "ha_state_changed":
        return None
    match = _HA_TARGET.search(entry.summary)
    return match.group(1) if match else None


def _first(entries: Iterable[_Entry], after: datetime | None = None) -> datetime | None:
    times = [e.at for e in entries if e.at is not None and (after is None or e.at >= after)]
    return min(times) if times else None


# --- phases --------------------------------------------------------------------------------------


def _phases(facts: _Facts, axis_end: datetime) -> list[_Phase]:
    """Sequential states of the failover, plus the client-observed write outage beside them."""
    if facts.opened is None:
        return []
    failing = _first(e for e in facts.entries if e.kind in _PROBLEM_KINDS or _ha_target(e) == "FailingOver")
    healthy = _first((e for e in facts.entries if _ha_target(e) == "Healthy"), after=facts.restored)
    marks: list[tuple[str, str, str, datetime | None]] = [
        ("detected", "Detected", "#64748b", facts.opened),
        ("failing_over", "Failing over", "#d97706", failing),
        ("primary_restored", "Primary restored", "#2563eb", facts.restored),
        ("standby_rebuilt", "Standby rebuilt", "#0d9488", healthy if facts.restored else None),
        ("resolved", "Resolved", "#16a34a", facts.resolved),
    ]
    present = [(k, label, colour, t) for k, label, colour, t in marks if t is not None]
    phases = []
    for n, (key, label, colour, start) in enumerate(present):
        assert start is not None
        following = present[n + 1][3] if n + 1 < len(present) else None
        phases.append(_sequential(key, label, colour, start, following, facts, axis_end))
    writes = _write_outage(facts, axis_end)
    if writes is not None:
        keys = [p.key for p in phases]
        phases.insert(keys.index("failing_over") + 1 if "failing_over" in keys else 1, writes)
    return phases


def _sequential(
    key: str,
    label: str,
    colour: str,
    start: datetime,
    following: datetime | None,
    facts: _Facts,
    axis_end: datetime,
) -> _Phase:
    if key == "resolved":
        return _Phase(key, label, colour, start, None, note=_clock(start))
    if following is not None and following > start:
        return _Phase(key, label, colour, start, following, note=_span_note(start, following))
    if following is None and facts.is_open:
        return _Phase(key, label, colour, start, axis_end, ongoing=True, note="ongoing")
    return _Phase(key, label, colour, start, None, note=_clock(start))


def _write_outage(facts: _Facts, axis_end: datetime) -> _Phase | None:
    lost = _first(e for e in facts.entries if e.kind == "write_unavailable")
    back = _first((e for e in facts.entries if e.kind == "write_restored"), after=lost)
    label, colour = "Writes unavailable", "#dc2626"
    if back is not None and facts.downtime is not None:
        start = back - timedelta(seconds=facts.downtime)
        return _Phase("writes_unavailable", label, colour, start, back, note=format_duration(facts.downtime))
    if lost is not None and back is not None:
        return _Phase("writes_unavailable", label, colour, lost, back, note=_span_note(lost, back))
    if lost is not None and facts.is_open:
        return _Phase("writes_unavailable", label, colour, lost, axis_end, ongoing=True, note="ongoing")
    return None


# --- the time axis -------------------------------------------------------------------------------

_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True)
class _Axis:
    start: datetime
    end: datetime

    def x(self, when: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        share = (when - self.start).total_seconds() / span
        return _PLOT_LEFT + min(max(share, 0.0), 1.0) * (_PLOT_RIGHT - _PLOT_LEFT)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return start <= self.end and end >= self.start

    def ticks(self) -> list[tuple[datetime, str]]:
        span = (self.end - self.start).total_seconds()
        step = next((s for s in _STEPS if span / s <= 9), _STEPS[-1] * math.ceil(span / _STEPS[-1] / 9))
        first = math.ceil(self.start.timestamp() / step) * step
        ticks = []
        for n in range(int(span // step) + 2):
            when = datetime.fromtimestamp(first + n * step, tz=timezone.utc)
            if when <= self.end:
                ticks.append((when, _tick_label(when, step, span)))
        return ticks


def _axis(facts: _Facts, now: datetime) -> _Axis:
    known = [t for t in (facts.opened, facts.restored, facts.resolved) if t is not None]
    known += [e.at for e in facts.entries if e.at is not None]
    if facts.downtime is not None and known:
        known.append(min(known) - timedelta(seconds=facts.downtime))
    if not known:
        return _Axis(now - timedelta(minutes=5), now)
    start, end = min(known), max(known)
    if facts.is_open and now > end:  # show the open incident up to now, unless now is far away
        end = min(now, end + max(end - start, timedelta(minutes=5)))
    span = max((end - start).total_seconds(), 60.0)
    pad = timedelta(seconds=span * 0.04)
    return _Axis(start - pad, start + timedelta(seconds=span) + pad)


def _tick_label(when: datetime, step: int, span: float) -> str:
    if span > 86400:
        return when.strftime("%m-%d %H:%M")
    return when.strftime("%H:%M:%S" if step < 60 else "%H:%M")


# --- page sections -------------------------------------------------------------------------------


def _header(facts: _Facts, now: datetime) -> str:
    incident = facts.incident
    status = "open" if facts.is_open else "resolved"
    cause = _text(incident.get("cause")) or "unknown"
    opened = f"opened {_stamp(facts.opened)} UTC" if facts.opened else "opening time unknown"
    return (
        '<header class="top">'
        '<p class="eyebrow">PostgreSQL flexible server failover</p>'
        f"<h1>{_e(incident.get('server') or 'unknown server')}"
        f' <span class="pill pill-{status}">{_e(status)}</span>'
        f' <span class="pill pill-cause">{_e(cause)}</span></h1>'
        f'<p class="sub"><span class="mono">{_e(incident.get("incident_id"))}</span> · {_e(opened)}'
        f"{_e(_age(facts, now))}</p>"
        f'<p class="resource mono">{_e(incident.get("resource_id"))}</p>'
        "</header>"
    )


def _age(facts: _Facts, now: datetime) -> str:
    if facts.opened is None:
        return ""
    if facts.is_open:
        return f" · open for {format_duration((now - facts.opened).total_seconds())} as of {_clock(now)} UTC"
    if facts.resolved is not None:
        return f" · resolved after {format_duration((facts.resolved - facts.opened).total_seconds())}"
    return ""


def _fact_cards(facts: _Facts, now: datetime) -> str:
    incident = facts.incident
    cards = [_downtime_card(facts), _zone_card(incident)]
    if facts.opened is not None and facts.restored is not None:
        took = format_duration((facts.restored - facts.opened).total_seconds())
        cards.append(_card("Primary restored after", took, f"serving again at {_clock(facts.restored)} UTC"))
    else:
        cards.append(_card("Primary restored", "not yet", "no evidence of a serving primary", muted=True))
    cards.append(_resolution_card(facts, now))
    return f'<div class="cards">{"".join(cards)}</div>'


def _downtime_card(facts: _Facts) -> str:
    if facts.downtime is None:
        return _card("Client write downtime", "not measured", "no database probe measured writes", muted=True)
    return _card(
        "Client write downtime",
        format_duration(facts.downtime),
        "writes refused, as a client saw it (database probe)",
        tone="alert",
    )


def _zone_card(incident: dict[str, Any]) -> str:
    before, after = incident.get("primary_zone_before"), incident.get("primary_zone_after")
    standby = incident.get("standby_zone_after")
    value = f"{_text(before) or '?'} → {_text(after) or '?'}"
    detail = f"standby now in zone {_text(standby)}" if standby else "standby zone unknown"
    if incident.get("ha_state"):
        detail += f" · HA {_text(incident.get('ha_state'))}"
    return _card("Primary zone", value, detail)


def _resolution_card(facts: _Facts, now: datetime) -> str:
    if facts.resolved is not None and facts.opened is not None:
        took = format_duration((facts.resolved - facts.opened).total_seconds())
        return _card("Resolved after", took, f"at {_clock(facts.resolved)} UTC", tone="ok")
    if facts.opened is not None:
        took = format_duration((now - facts.opened).total_seconds())
        return _card("Open for", took, f"as of {_clock(now)} UTC", tone="warn")
    return _card("Status", "open", "", tone="warn")


def _card(label: str, value: str, detail: str, *, tone: str = "", muted: bool = False) -> str:
    classes = " ".join(c for c in ("card", f"card-{tone}" if tone else "", "muted" if muted else "") if c)
    return (
        f'<div class="{classes}"><div class="card-label">{_e(label)}</div>'
        f'<div class="card-value">{_e(value)}</div><div class="card-detail">{_e(detail)}</div></div>'
    )


def _timeline_sections(facts: _Facts, phases: Sequence[_Phase], axis: _Axis) -> str:
    overview = (
        "<section><h2>Timeline</h2>"
        f"{_legend(facts)}"
        f'<div class="chart">{_svg(facts, phases, axis, "Failover timeline")}</div></section>'
    )
    zoom = _zoom(phases, axis)
    if zoom is None:
        return overview
    window = f"{_clock(zoom.start)} to {_clock(zoom.end)} UTC"
    return (
        f'{overview}<section><h2>The failover up close <span class="h2-note">{_e(window)}</span></h2>'
        f'<div class="chart">{_svg(facts, phases, zoom, "The failover up close")}</div></section>'
    )


def _zoom(phases: Sequence[_Phase], axis: _Axis) -> _Axis | None:
    """A closer view of failing over and the write outage when they are lost in a long incident."""
    focus = [p for p in phases if p.key in ("failing_over", "writes_unavailable") and p.end and not p.ongoing]
    if not focus:
        return None
    start = min(p.start for p in focus)
    end = max(p.end or p.start for p in focus)
    span = (end - start).total_seconds()
    if span <= 0 or span > 0.3 * (axis.end - axis.start).total_seconds():
        return None
    before, after = max(span * 0.12, 2.0), max(span * 0.3, 4.0)
    return _Axis(start - timedelta(seconds=before), end + timedelta(seconds=after))


def _legend(facts: _Facts) -> str:
    counts = {source[0]: 0 for source in _SOURCES}
    for entry in facts.entries:
        counts[entry.source] = counts.get(entry.source, 0) + 1
    items = []
    for key, _, colour, label in _SOURCES:
        items.append(
            f'<span class="legend-item"><span class="dot" style="background:{colour}"></span>'
            f'{_e(label)} <span class="count">{counts[key]}</span></span>'
        )
    return (
        f'<div class="legend">{"".join(items)}<span class="hint">Numbers match the table below.</span></div>'
    )


# --- SVG -----------------------------------------------------------------------------------------


def _svg(facts: _Facts, phases: Sequence[_Phase], axis: _Axis, label: str) -> str:
    back: list[str] = []  # lane backgrounds, under the grid
    front: list[str] = []  # bars, marks and labels, over it
    y = 8
    for phase in phases:
        front.append(_phase_row(phase, axis, y))
        y += _ROW
    y += 14
    front.append(f'<text class="section" x="0" y="{y + 4}">SIGNALS BY SOURCE</text>')
    y += 14
    lanes_top = y
    for _, lane_label, colour, entries in _lanes(facts.entries):
        background, marks, height = _lane(lane_label, colour, entries, axis, y)
        back.append(background)
        front.append(marks)
        y += height
    layers = (*back, _grid(axis, 0, y), _guides(phases, axis, lanes_top, y), *front)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {y + 34}" width="100%" '
        f'role="img" aria-label="{_e(label)}">{"".join(layers)}</svg>'
    )


def _phase_row(phase: _Phase, axis: _Axis, y: int) -> str:
    mid = y + _ROW / 2
    label = (
        f'<rect x="0" y="{mid - 5:.1f}" width="10" height="10" rx="2" fill="{phase.colour}"/>'
        f'<text class="row-label" x="18" y="{mid + 4:.1f}">{_e(phase.label)}</text>'
    )
    if not axis.overlaps(phase.start, phase.end or phase.start):  # outside this (zoomed) view
        later = phase.start > axis.end
        note = f"at {_clock(phase.start)} →" if later else ""
        return label + (
            f'<text class="note muted" x="{_WIDTH}" y="{mid + 4:.1f}" text-anchor="end">{_e(note)}</text>'
        )
    start = axis.x(phase.start)
    tip = f"<title>{_e(phase.label)}: {_e(_stamp(phase.start))} UTC {_e(phase.note)}</title>"
    if phase.end is None:
        shape = (
            f'<path d="M{start:.1f} {mid - 8:.1f} L{start + 8:.1f} {mid:.1f} L{start:.1f} {mid + 8:.1f} '
            f'L{start - 8:.1f} {mid:.1f} Z" fill="{phase.colour}">{tip}</path>'
        )
        end = start + 8
    else:
        end = max(axis.x(phase.end), start + 3)
        opacity = ' fill-opacity="0.55"' if phase.ongoing else ""
        shape = (
            f'<rect x="{start:.1f}" y="{mid - 9:.1f}" width="{end - start:.1f}" height="18" rx="3" '
            f'fill="{phase.colour}"{opacity}>{tip}</rect>'
        )
    return label + shape + _phase_note(phase, start, end, mid)


def _phase_note(phase: _Phase, start: float, end: float, mid: float) -> str:
    if not phase.note:
        return ""
    if end + 8 + 7 * len(phase.note) <= _WIDTH:
        return f'<text class="note" x="{end + 8:.1f}" y="{mid + 4:.1f}">{_e(phase.note)}</text>'
    return (
        f'<text class="note" x="{start - 12:.1f}" y="{mid + 4:.1f}" text-anchor="end">{_e(phase.note)}</text>'
    )


def _lanes(entries: Sequence[_Entry]) -> list[tuple[str, str, str, list[_Entry]]]:
    lanes: list[tuple[str, str, str, list[_Entry]]] = [(k, label, c, []) for k, label, c, _ in _SOURCES]
    others: list[_Entry] = []
    for entry in entries:
        index = _SOURCE_INDEX.get(entry.source)
        (lanes[index][3] if index is not None else others).append(entry)
    if others:
        lanes.append((_OTHER_SOURCE[0], _OTHER_SOURCE[1], _OTHER_SOURCE[2], others))
    return lanes


def _lane(label: str, colour: str, entries: Sequence[_Entry], axis: _Axis, y: int) -> tuple[str, str, int]:
    """(background, marks and label, height) of one source's lane."""
    placed = _stagger([(axis.x(e.at), e) for e in entries if e.at is not None and axis.overlaps(e.at, e.at)])
    rows = max((row for row, _, _ in placed), default=0) + 1
    height = _LANE + (rows - 1) * _SUBROW
    background = (
        f'<rect x="{_PLOT_LEFT}" y="{y + 2}" width="{_PLOT_RIGHT - _PLOT_LEFT}" height="{height - 4}" '
        'rx="3" class="lane"/>'
    )
    parts = [
        f'<circle cx="5" cy="{y + _LANE / 2:.1f}" r="5" fill="{colour}"/>',
        f'<text class="row-label" x="18" y="{y + _LANE / 2 + 4:.1f}">{_e(label)}</text>',
    ]
    parts += [_mark(entry, x, y + _LANE / 2 + row * _SUBROW, colour) for row, x, entry in placed]
    return background, "".join(parts), height


def _stagger(points: list[tuple[float, _Entry]]) -> list[tuple[int, float, _Entry]]:
    """Put marks that would overlap on sub-rows below each other."""
    last: list[float] = []
    placed = []
    for x, entry in sorted(points, key=lambda p: p[0]):
        row = next((n for n, end in enumerate(last) if x - end >= 2 * _MARK_R + 2), None)
        if row is None and len(last) < _MAX_SUBROWS:
            row = len(last)
            last.append(x)
        elif row is None:
            row = min(range(len(last)), key=lambda n: last[n])
        last[row] = x
        placed.append((row, x, entry))
    return placed


def _mark(entry: _Entry, x: float, y: float, colour: str) -> str:
    alarm = entry.kind in _ALARM_KINDS
    ring = ' stroke="#dc2626" stroke-width="3"' if alarm else ' stroke="#ffffff" stroke-width="1.5"'
    tip = f"#{entry.number} {_stamp(entry.at)} UTC · {entry.kind} · {entry.summary}"
    return (
        f"<g><title>{_e(tip)}</title>"
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{_MARK_R}" fill="{colour}"{ring}/>'
        f'<text class="mark" x="{x:.1f}" y="{y + 3.5:.1f}" text-anchor="middle">{entry.number}</text></g>'
    )


def _grid(axis: _Axis, top: int, bottom: int) -> str:
    parts = [f'<line x1="{_PLOT_LEFT}" y1="{bottom}" x2="{_PLOT_RIGHT}" y2="{bottom}" class="axis"/>']
    for when, label in axis.ticks():
        x = axis.x(when)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" class="grid"/>')
        parts.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" class="axis"/>')
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{bottom + 19}" text-anchor="middle">{_e(label)}</text>'
        )
    parts.append(f'<text class="tick" x="{_PLOT_RIGHT + 12}" y="{bottom + 19}">UTC</text>')
    return "".join(parts)


def _guides(phases: Sequence[_Phase], axis: _Axis, top: int, bottom: int) -> str:
    """Dashed lines where the failover changed phase, carried down through the signal lanes."""
    lines = []
    for phase in phases:
        if phase.key == "writes_unavailable" or not axis.overlaps(phase.start, phase.start):
            continue
        x = axis.x(phase.start)
        lines.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" '
            f'stroke="{phase.colour}" class="guide"/>'
        )
    return "".join(lines)


# --- tables --------------------------------------------------------------------------------------


def _notifications_section(facts: _Facts) -> str:
    raw = facts.incident.get("notifications")
    items = [n for n in raw if isinstance(n, dict)] if isinstance(raw, list) else []
    if not items:
        return '<section><h2>Notifications</h2><p class="empty">No Teams notification recorded.</p></section>'
    rows = "".join(
        f"<tr><td>{_e(_words(n.get('transition')))}</td>"
        f'<td><span class="pill pill-{_status_class(n.get("status"))}">{_e(n.get("status"))}</span></td>'
        f'<td class="mono">{_e(_stamp(_time(n.get("at"))) or n.get("at"))}</td></tr>'
        for n in items
    )
    return (
        '<section><h2>Notifications</h2><table class="narrow"><thead><tr><th>Transition</th>'
        f"<th>Status</th><th>At (UTC)</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _status_class(status: object) -> str:
    return {"done": "ok", "dead": "bad", "pending": "warn", "running": "warn"}.get(_text(status), "neutral")


def _entries_section(facts: _Facts) -> str:
    if not facts.entries:
        return '<section><h2>All entries</h2><p class="empty">No timeline entries recorded.</p></section>'
    days = {e.at.date() for e in facts.entries if e.at is not None}
    same_day = facts.opened is not None and days <= {facts.opened.date()}
    rows = "".join(_entry_row(entry, facts.opened, with_date=not same_day) for entry in facts.entries)
    return (
        f'<section><h2>All entries <span class="count">{len(facts.entries)}</span></h2>'
        '<table class="entries"><thead><tr><th>#</th><th>Time (UTC)</th><th>Since opened</th>'
        "<th>Source</th><th>Kind</th><th>What happened</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _entry_row(entry: _Entry, opened: datetime | None, *, with_date: bool) -> str:
    label, colour = _source(entry.source)
    offset = _offset(entry.at - opened) if entry.at is not None and opened is not None else ""
    classes = ' class="alarm"' if entry.kind in _ALARM_KINDS else ""
    return (
        f'<tr{classes}><td class="num">{entry.number}</td>'
        f'<td class="mono nowrap">{_e(_stamp(entry.at, millis=True, date=with_date) or entry.at_text)}</td>'
        f'<td class="mono nowrap">{_e(offset)}</td>'
        f'<td class="nowrap"><span class="dot" style="background:{colour}"></span>{_e(label)}</td>'
        f'<td><span class="kind">{_e(entry.kind)}</span></td>'
        f'<td>{_e(entry.summary)}<div class="sid mono">{_e(entry.signal_id)}</div></td></tr>'
    )


def _source(source: str) -> tuple[str, str]:
    """(name, colour) of a source for the table; an unknown source shows its own (escaped) name."""
    index = _SOURCE_INDEX.get(source)
    if index is None:
        return source or _OTHER_SOURCE[3], _OTHER_SOURCE[2]
    return _SOURCES[index][3], _SOURCES[index][2]


# --- formatting ----------------------------------------------------------------------------------


def _e(value: object) -> str:
    """Escape anything for HTML text and quoted attributes (SVG included)."""
    return html.escape(_text(value), quote=True)


def _title(facts: _Facts) -> str:
    server = _text(facts.incident.get("server")) or "unknown server"
    status = "open" if facts.is_open else "resolved"
    when = f" {_stamp(facts.opened, seconds=False)} UTC" if facts.opened else ""
    return f"Failover of {server}{when} ({status})"


def _stamp(when: datetime | None, *, millis: bool = False, seconds: bool = True, date: bool = True) -> str:
    if when is None:
        return ""
    text = when.strftime(("%Y-%m-%d " if date else "") + ("%H:%M:%S" if seconds else "%H:%M"))
    return f"{text}.{when.microsecond // 1000:03d}" if millis else text


def _clock(when: datetime) -> str:
    return when.strftime("%H:%M:%S")


def _span_note(start: datetime, end: datetime) -> str:
    return format_duration((end - start).total_seconds())


def format_duration(seconds: float) -> str:
    """12.4 s · 6 min 12 s · 2 h 05 min · 3 d 4 h"""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds % 1 else f"{int(seconds)} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s" if whole % 60 else f"{whole // 60} min"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def _offset(delta: timedelta) -> str:
    total = delta.total_seconds()
    sign = "-" if total < 0 else "+"
    total = abs(total)
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{sign}{hours}:{minutes:02d}:{secs:04.1f}"
    return f"{sign}{minutes}:{secs:04.1f}"


def _words(value: object) -> str:
    return _text(value).replace("_", " ").capitalize()


_DOCUMENT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""

_STYLE = """
:root { --ink: #111827; --muted: #5b6473; --line: #e5e7eb; --panel: #ffffff; --bg: #f4f5f7; }
* { box-sizing: border-box; }
html { background: var(--bg); }
body { margin: 0; color: var(--ink); font: 15px/1.5 "Segoe UI", system-ui, -apple-system, "Helvetica Neue",
       "Noto Sans", "DejaVu Sans", Arial, sans-serif; -webkit-font-smoothing: antialiased; }
main { max-width: 1200px; margin: 0 auto; padding: 28px 32px 40px; }
.mono { font-family: ui-monospace, "Cascadia Mono", "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono",
        monospace; font-size: 0.92em; }
.top { margin-bottom: 20px; }
.eyebrow { margin: 0; text-transform: uppercase; letter-spacing: .08em; font-size: 12px; font-weight: 600;
           color: var(--muted); }
h1 { margin: 2px 0 4px; font-size: 30px; line-height: 1.2; font-weight: 700; letter-spacing: -.01em; }
h2 { margin: 0 0 12px; font-size: 18px; font-weight: 650; }
.h2-note { font-size: 13.5px; font-weight: 500; color: var(--muted); margin-left: 8px; }
.sub { margin: 0; color: var(--muted); }
.resource { margin: 2px 0 0; color: #8a93a3; font-size: 12.5px; word-break: break-all; }
.pill { display: inline-block; vertical-align: middle; padding: 2px 10px; border-radius: 999px;
        font-size: 13px; font-weight: 600; letter-spacing: .02em; text-transform: uppercase; }
h1 .pill { position: relative; top: -3px; }
.pill-resolved, .pill-ok { background: #dcfce7; color: #166534; }
.pill-open, .pill-warn { background: #fef3c7; color: #92400e; }
.pill-bad { background: #fee2e2; color: #991b1b; }
.pill-neutral { background: #e5e7eb; color: #374151; }
.pill-cause { background: #e0e7ff; color: #3730a3; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 14px; margin-bottom: 22px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px;
        border-top: 4px solid #94a3b8; }
.card-alert { border-top-color: #dc2626; }
.card-ok { border-top-color: #16a34a; }
.card-warn { border-top-color: #d97706; }
.card-label { font-size: 12.5px; font-weight: 600; color: var(--muted); text-transform: uppercase;
              letter-spacing: .05em; }
.card-value { font-size: 30px; font-weight: 700; line-height: 1.25; margin: 4px 0 2px;
              font-variant-numeric: tabular-nums; }
.card-alert .card-value { color: #b91c1c; }
.card.muted .card-value { color: #9ca3af; font-weight: 600; }
.card-detail { font-size: 13px; color: var(--muted); }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 18px 20px;
          margin-bottom: 18px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; align-items: center; margin: -4px 0 10px;
          font-size: 13.5px; color: #374151; }
.legend .hint { color: #8a93a3; margin-left: auto; font-size: 12.5px; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 7px;
       vertical-align: 0; }
.count { display: inline-block; min-width: 20px; padding: 0 6px; border-radius: 999px; background: #f1f5f9;
         color: #475569; font-size: 12px; font-weight: 600; text-align: center; }
.chart svg { display: block; overflow: visible; }
svg text { font-family: "Segoe UI", system-ui, "Noto Sans", "DejaVu Sans", Arial, sans-serif; }
svg .row-label { font-size: 13px; fill: #1f2937; font-weight: 600; }
svg .note { font-size: 12.5px; fill: #374151; font-weight: 600; }
svg .note.muted { fill: #8a93a3; font-weight: 500; }
svg .section { font-size: 11px; fill: #8a93a3; font-weight: 700; letter-spacing: .08em; }
svg .tick { font-size: 11.5px; fill: #5b6473; font-variant-numeric: tabular-nums; }
svg .mark { font-size: 10px; font-weight: 700; fill: #ffffff; }
svg .lane { fill: #f8fafc; }
svg .grid { stroke: #e5e7eb; stroke-width: 1; }
svg .axis { stroke: #9ca3af; stroke-width: 1; }
svg .guide { stroke-width: 1.2; stroke-dasharray: 4 4; opacity: .55; }
table { width: 100%; border-collapse: collapse; font-size: 14px; }
table.narrow { width: auto; min-width: 520px; }
th { white-space: nowrap; text-align: left; font-size: 12px; text-transform: uppercase; letter-spacing: .05em;
     color: var(--muted); font-weight: 600; padding: 6px 12px 8px 0; border-bottom: 1px solid var(--line); }
td { padding: 8px 12px 8px 0; border-bottom: 1px solid #f0f1f3; vertical-align: top; }
tbody tr:last-child td { border-bottom: 0; }
td.num { color: #8a93a3; font-variant-numeric: tabular-nums; width: 28px; }
.nowrap { white-space: nowrap; }
.kind { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; background: #f1f5f9;
        border-radius: 4px; padding: 1px 6px; white-space: nowrap; }
.sid { color: #9ca3af; font-size: 11.5px; word-break: break-all; margin-top: 2px; }
tr.alarm td { background: #fef2f2; }
tr.alarm td:first-child { box-shadow: inset 3px 0 0 #dc2626; padding-left: 6px; }
.empty { color: var(--muted); margin: 0; }
footer { color: #8a93a3; font-size: 12.5px; text-align: center; margin-top: 8px; }
@media (max-width: 900px) { .cards { grid-template-columns: repeat(2, 1fr); } }
@media print { html { background: #fff; } section, .card { break-inside: avoid; } }
"""
