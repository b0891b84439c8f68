"""The SVG geometry of the timeline page: the time axis, phase bars, the HA-state row, source lanes.

Layer: pure core rendering support for `failover.timeline_html`. From an `IncidentView` and a time
axis it computes where things go (px in the SVG viewBox) and nothing else: the template
`templates/timeline.html.j2` draws the shapes and escapes every text. It must do no I/O, read no
clock and produce no markup; the CSS class names it hands out come from fixed tables, never from
payload values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from failover.model import HA_HEALTHY, HA_PROBLEM_STATES
from failover.phases import HaStep, Phase
from failover.presentation import EntryView, IncidentView, phase_note

# (source, lane label, longer name for the legend and the table); colours live in timeline.css.
SOURCES = (
    ("monitor_alert", "Monitor alerts", "Monitor alert"),
    ("event_grid", "Event Grid", "Event Grid"),
    ("arm_probe", "Management API", "Management API probe"),
    ("db_probe", "Database probe", "Database probe"),
    ("responder", "Responder", "Responder"),
)
SOURCE_NAMES = {key: name for key, _, name in SOURCES}

# SVG geometry (px in the viewBox; the page is laid out for a 1280 px wide window).
WIDTH = 1136
PLOT_LEFT = 170
PLOT_RIGHT = WIDTH - 96
ROW = 30
LANE = 34
SUBROW = 20
MARK_R = 9
MAX_SUBROWS = 4
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


# --- the time axis -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    start: datetime
    end: datetime

    def x(self, when: datetime) -> float:
        share = (when - self.start).total_seconds() / (self.end - self.start).total_seconds()
        return PLOT_LEFT + min(max(share, 0.0), 1.0) * (PLOT_RIGHT - PLOT_LEFT)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return start <= self.end and end >= self.start

    def ticks(self) -> list[tuple[float, str]]:
        span = (self.end - self.start).total_seconds()
        step = next((s for s in _STEPS if span / s <= 9), _STEPS[-1] * math.ceil(span / _STEPS[-1] / 9))
        first = math.ceil(self.start.timestamp() / step) * step
        moments = (
            datetime.fromtimestamp(first + n * step, tz=timezone.utc) for n in range(int(span // step) + 2)
        )
        layout = "%m-%d %H:%M" if span > 86400 else ("%H:%M:%S" if step < 60 else "%H:%M")
        return [(self.x(when), when.strftime(layout)) for when in moments if when <= self.end]


def axis_of(view: IncidentView, now: datetime) -> Axis:
    """Everything known about the incident, and an open incident up to now (unless now is far)."""
    incident = view.incident
    known = [incident.opened_at, *(t for t in (incident.primary_restored_at, view.closed_at) if t)]
    known += [e.at for e in view.entries] + [p.start for p in view.phases]
    start, end = min(known), max(known)
    if view.is_open and now > end:
        end = min(now, end + max(end - start, timedelta(minutes=5)))
    span = max((end - start).total_seconds(), 60.0)
    pad = timedelta(seconds=span * 0.04)
    return Axis(start - pad, start + timedelta(seconds=span) + pad)


def zoom_of(phases: Sequence[Phase], axis: Axis) -> Axis | None:
    """A closer view of failing over and the write outage when they are lost in a long incident."""
    focus = [p for p in phases if p.key in ("failing_over", "writes_unavailable") and p.end]
    if not focus:
        return None
    start = min(p.start for p in focus)
    end = max(p.end or p.start for p in focus)
    span = (end - start).total_seconds()
    if span <= 0 or span > 0.3 * (axis.end - axis.start).total_seconds():
        return None
    return Axis(
        start - timedelta(seconds=max(span * 0.12, 2.0)), end + timedelta(seconds=max(span * 0.3, 4.0))
    )


# --- the chart: geometry only; the template draws it ---------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One phase row: a bar (`width` set), a diamond for a moment, or a note when off this view."""

    phase: Phase
    mid: float
    x: float
    width: float | None
    note: str
    note_x: float
    note_end: bool  # the note is anchored at its end (left of the bar)
    visible: bool = True


@dataclass(frozen=True)
class Band:
    """One stretch of the HA-state row."""

    step: HaStep
    x: float
    width: float
    tone: str  # healthy / problem / other (a CSS class)
    labelled: bool


@dataclass(frozen=True)
class Mark:
    row: EntryView
    x: float
    y: float
    source: str  # a known source key or "other" (a CSS class)


@dataclass(frozen=True)
class Lane:
    label: str
    source: str
    y: float
    height: float
    marks: tuple[Mark, ...]


@dataclass(frozen=True)
class Chart:
    label: str
    bars: tuple[Bar, ...]
    ha_y: float | None
    bands: tuple[Band, ...]
    section_y: float
    lanes: tuple[Lane, ...]
    bottom: float
    ticks: tuple[tuple[float, str], ...]
    guides: tuple[tuple[float, str], ...]  # (x, phase key) where the failover changed phase

    @property
    def lanes_top(self) -> float:
        return self.lanes[0].y if self.lanes else self.bottom

    @property
    def height(self) -> float:
        return self.bottom + 34


def chart(view: IncidentView, axis: Axis, label: str) -> Chart:
    y = 8.0
    bars = []
    for phase in view.phases:
        bars.append(_bar(phase, axis, y + ROW / 2))
        y += ROW
    ha_y: float | None = None
    bands: tuple[Band, ...] = ()
    if view.ha_states:
        ha_y, bands = y + ROW / 2, _bands(view, axis)
        y += ROW
    section_y = y + 18
    y += 28
    lanes = []
    for key, lane_label, rows in _lanes(view.rows):
        lane = _lane(lane_label, key, rows, axis, y)
        lanes.append(lane)
        y += lane.height
    guides = tuple(
        (axis.x(p.start), p.key)
        for p in view.phases
        if p.key != "writes_unavailable" and axis.overlaps(p.start, p.start)
    )
    return Chart(label, tuple(bars), ha_y, bands, section_y, tuple(lanes), y, tuple(axis.ticks()), guides)


def _bar(phase: Phase, axis: Axis, mid: float) -> Bar:
    end_at = phase.end or (axis.end if phase.ongoing else phase.start)
    note = phase_note(phase)
    if not axis.overlaps(phase.start, end_at):  # outside this (zoomed) view
        later = f"at {phase.start:%H:%M:%S} \u2192" if phase.start > axis.end else ""
        return Bar(phase, mid, 0.0, None, later, WIDTH, True, visible=False)
    start = axis.x(phase.start)
    width = None if end_at == phase.start else max(axis.x(end_at) - start, 3.0)
    end = start + (width if width is not None else 8)
    if end + 8 + 7 * len(note) <= WIDTH:
        return Bar(phase, mid, start, width, note, end + 8, False)
    return Bar(phase, mid, start, width, note, start - 12, True)


def _bands(view: IncidentView, axis: Axis) -> tuple[Band, ...]:
    steps = list(view.ha_states)
    if steps[0].previous:  # the state before the first change, from the start of the view
        steps.insert(0, HaStep(axis.start, steps[0].previous, None))
    bands = []
    for n, step in enumerate(steps):
        end = steps[n + 1].at if n + 1 < len(steps) else axis.end
        if end <= step.at or not axis.overlaps(step.at, end):
            continue
        x = axis.x(step.at)
        width = max(axis.x(end) - x, 2.0)
        tone = (
            "healthy"
            if step.state == HA_HEALTHY
            else "problem"
            if step.state in HA_PROBLEM_STATES
            else "other"
        )
        bands.append(Band(step, x, width, tone, width >= 7 * len(step.state) + 12))
    return tuple(bands)


def _lanes(rows: Sequence[EntryView]) -> list[tuple[str, str, list[EntryView]]]:
    lanes: dict[str, tuple[str, list[EntryView]]] = {key: (label, []) for key, label, _ in SOURCES}
    others: list[EntryView] = []
    for row in rows:
        (lanes[row.entry.source][1] if row.entry.source in lanes else others).append(row)
    found = [(key, label, members) for key, (label, members) in lanes.items()]
    return found + ([("other", "Other", others)] if others else [])


def _lane(label: str, source: str, rows: Sequence[EntryView], axis: Axis, y: float) -> Lane:
    placed = _stagger([(axis.x(r.entry.at), r) for r in rows if axis.overlaps(r.entry.at, r.entry.at)])
    height = LANE + max((row for row, _, _ in placed), default=0) * SUBROW
    marks = tuple(Mark(entry, x, y + LANE / 2 + row * SUBROW, source) for row, x, entry in placed)
    return Lane(label, source, y, height, marks)


def _stagger(points: list[tuple[float, EntryView]]) -> list[tuple[int, float, EntryView]]:
    """Put marks that would overlap on sub-rows below each other."""
    last: list[float] = []
    placed = []
    for x, entry in sorted(points, key=lambda p: p[0]):
        row = next((n for n, end in enumerate(last) if x - end >= 2 * MARK_R + 2), None)
        if row is None and len(last) < MAX_SUBROWS:
            row = len(last)
            last.append(x)
        elif row is None:
            row = min(range(len(last)), key=lambda n: last[n])
        last[row] = x
        placed.append((row, x, entry))
    return placed
