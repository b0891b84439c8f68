"""The timeline page renderer (pure): escaping, phases, HA states, robustness, no external resources."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from failover.model import EffectStatus, IncidentStatus, Notification, TimelineEntry, Transition
from failover.presentation import IncidentView, TimelinePart, format_duration
from failover.timeline_html import CSP, render_timeline_page
from tests.e2e.test_timeline_page import T0, planned_failover

UTC = timezone.utc
ROOT = Path(__file__).resolve().parents[2]
NOW = T0 + timedelta(minutes=15)


def row_labels(page: str) -> list[str]:
    return re.findall(r'<text class="row-label"[^>]*>([^<]*)</text>', page)


def phase_rows(page: str) -> list[str]:
    """The phase rows of the overview chart (the labels before the signal lanes)."""
    overview = page.split("SIGNALS BY SOURCE", maxsplit=1)[0]
    return row_labels(overview)


def body(page: str) -> str:
    """The page after its inlined style sheet."""
    return page.split("</style>", maxsplit=1)[1]


def view_with(view: IncidentView, entries: int | None = None, **changes: Any) -> IncidentView:
    """The fixture with incident fields changed and only its first `entries` entries."""
    kept = view.entries if entries is None else view.entries[:entries]
    return IncidentView.of(replace(view.incident, **changes), kept, verification=())


def still_open(entries: int) -> IncidentView:
    return view_with(
        planned_failover(),
        entries,
        status=IncidentStatus.OPEN,
        primary_restored_at=None,
        resolved_at=None,
        write_downtime_seconds=None,
        notifications=planned_failover().incident.notifications[:1],
    )


def test_planned_failover_shows_every_phase_in_order() -> None:
    page = render_timeline_page(planned_failover(), now=NOW)
    assert phase_rows(page) == [
        "Detected",
        "Failing over",
        "Writes unavailable",
        "Primary restored",
        "Standby rebuilt",
        "Resolved",
        "HA state",
    ]
    assert "12.4 s" in page
    assert "1 → 2" in page
    assert "The failover up close" in page  # 28 s of failover in a 5 min incident: zoomed in too
    assert page.count("<tr") == (1 + 5) + (1 + 5) + (1 + 12)  # verification, notifications, entries
    assert "Detected 1 min 56 s before Azure&#39;s alert" in page
    assert "<td>PagerDuty</td>" in page


def test_ha_states_come_from_entry_details_not_summaries() -> None:
    view = planned_failover()
    # Summaries say nothing about HA; the details carry it: the page must still draw the states.
    mute = tuple(replace(e, summary="(no words)") for e in view.entries)
    page = render_timeline_page(IncidentView.of(view.incident, mute), now=NOW)
    bands = re.findall(r'class="ha-(\w+)"><title>HA (\w+) from', page)
    assert ("healthy", "Healthy") in bands and ("problem", "FailingOver") in bands
    assert ("other", "ReplicatingData") in bands
    assert "Standby rebuilt" in phase_rows(page)
    # Summaries that look like a state change but details that do not: no HA row at all.
    wordy = tuple(replace(e, details={}) for e in view.entries)
    page = render_timeline_page(IncidentView.of(view.incident, wordy), now=NOW)
    assert "HA state" not in phase_rows(page) and "Standby rebuilt" not in phase_rows(page)


def test_phases_that_did_not_happen_are_absent() -> None:
    page = render_timeline_page(still_open(3), now=T0 + timedelta(minutes=2))
    assert phase_rows(page) == ["Detected", "Failing over", "HA state"]
    assert "ongoing" in body(page)
    assert "not measured" in page
    assert "Open for" in page and "2 min" in page
    assert "The failover up close" not in page


def test_writes_still_failing_show_as_ongoing() -> None:
    page = render_timeline_page(still_open(4), now=T0 + timedelta(seconds=40))
    assert phase_rows(page) == ["Detected", "Failing over", "Writes unavailable", "HA state"]


def test_a_stale_incident_says_it_closed_without_recovery_evidence() -> None:
    stale = view_with(
        planned_failover(),
        4,
        status=IncidentStatus.STALE,
        primary_restored_at=None,
        resolved_at=None,
        stale_at=T0 + timedelta(hours=2),
    )
    page = render_timeline_page(stale, now=T0 + timedelta(hours=3))
    assert "Closed without recovery evidence" in phase_rows(page)
    assert "closed without recovery evidence at 09:16:02 UTC" in page
    assert 'class="pill pill-stale"' in page and "ongoing" not in body(page)
    assert "Open for" not in page


def test_a_same_zone_failover_says_so() -> None:
    page = render_timeline_page(view_with(planned_failover(), primary_zone_after="1"), now=NOW)
    assert "zone 1, same zone" in page


def hostile(field: str) -> str:
    return f"<i data-x=\"{field}\" onload='x'>&amp;{field}</i>"


def test_every_payload_value_is_escaped() -> None:
    view = planned_failover()
    fields: dict[str, Any] = {
        key: hostile(key)
        for key in (
            "incident_id",
            "server",
            "resource_id",
            "primary_zone_before",
            "primary_zone_after",
            "standby_zone_after",
            "ha_state",
        )
    }
    incident = replace(
        view.incident,
        **fields,
        notifications=(Notification(Transition.OPENED, EffectStatus.DONE, T0, channel=hostile("channel")),),
    )
    entries = (
        TimelineEntry(T0, hostile("source"), hostile("kind"), hostile("summary"), hostile("signal_id")),
        TimelineEntry(
            T0 + timedelta(seconds=9), "arm_probe", "ha_state_changed", "x", "y", {"ha_state": hostile("ha")}
        ),
    )
    page = render_timeline_page(
        IncidentView.of(incident, entries), now=NOW, upcoming=[{"status": hostile("m")}]
    )
    assert "<i " not in page
    assert "onload='x'" not in page
    assert "&amp;amp;" in page  # the payload's own "&amp;" is shown as text
    for field in (
        "incident_id",
        "server",
        "resource_id",
        "primary_zone_before",
        "standby_zone_after",
        "ha_state",
        "channel",
        "source",
        "kind",
        "summary",
        "signal_id",
        "ha",
        "m",
    ):
        assert f"&lt;i data-x=&#34;{field}&#34; onload=&#39;x&#39;&gt;" in page, field
    # SVG tooltips too
    assert re.search(r"<title>[^<]*&lt;i data-x=&#34;summary&#34;", page)
    tags = re.findall(r"<[^>]*>", page)
    assert not [t for t in tags if re.search(r"\son[a-z]+\s*=", t)]


def test_hostile_values_do_not_reach_class_or_style_attributes() -> None:
    view = planned_failover()
    entries = tuple(replace(e, source='db_probe" style="background:url(x)') for e in view.entries)
    page = render_timeline_page(IncidentView.of(view.incident, entries), now=NOW)
    tags = re.findall(r"<[^>]*>", page)
    assert not [t for t in tags if "url(" in t or "style=" in t]
    assert "db_probe&#34; style=&#34;background:url(x)" in page  # shown as text, in the table
    assert 'class="dot src-other"' in page
    classes = set(re.findall(r'class="([^"]*)"', page))
    assert all(re.fullmatch(r"[a-z0-9_ -]+", c) for c in classes), classes


@pytest.mark.parametrize(
    "case",
    ["no entries", "resolved before opened", "entry days later", "unknown kinds", "odd details"],
)
def test_incomplete_or_odd_input_still_renders(case: str) -> None:
    view = planned_failover()
    far = TimelineEntry(T0 + timedelta(days=4), "db_probe", "db_down", "late", "z")
    odd = TimelineEntry(T0, "arm_probe", "x", "y", "z", {"ha_state": 3, "previous_ha_state": ["x"]})
    built = {
        "no entries": IncidentView.of(view.incident),
        "resolved before opened": view_with(view, resolved_at=T0 - timedelta(days=1)),
        "entry days later": IncidentView.of(view.incident, (*view.entries, far)),
        "unknown kinds": IncidentView.of(view.incident, (replace(view.entries[0], kind="?", source=""),)),
        "odd details": IncidentView.of(replace(view.incident, write_downtime_seconds=-4.0), (odd,)),
    }[case]
    page = render_timeline_page(built, now=NOW)
    assert page.startswith("<!doctype html>")
    assert page.rstrip().endswith("</html>")


def test_page_is_self_contained_and_script_free() -> None:
    page = render_timeline_page(planned_failover(), now=NOW)
    assert not re.search(r"<(script|link|iframe|object|embed|img|base|form)\b", page, re.I)
    tags = re.findall(r"<[^>]*>", page)
    assert not [t for t in tags if re.search(r"\s(src|href|action|style)\s*=", t, re.I)]
    assert "@import" not in page and "url(" not in page and "javascript:" not in page.lower()
    assert '<meta http-equiv="Content-Security-Policy"' in page
    assert "default-src &#39;none&#39;" in page  # the policy in the meta tag, attribute-escaped
    assert ".ph-failing_over { fill: #d97706" in page  # the style sheet, inlined at render time


def test_csp_forbids_everything_but_inline_style() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["style-src"] == "'unsafe-inline'"
    assert directives["frame-ancestors"] == "'none'"
    assert "script-src" not in directives


def test_rendering_is_deterministic() -> None:
    assert render_timeline_page(planned_failover(), now=NOW) == render_timeline_page(
        planned_failover(), now=NOW
    )


def test_long_incidents_use_a_coarser_axis_and_dates() -> None:
    view = planned_failover()
    late = T0 + timedelta(days=2)
    entry = TimelineEntry(
        late, "arm_probe", "ha_state_changed", "HA Healthy", "late", {"ha_state": "Healthy"}
    )
    page = render_timeline_page(
        IncidentView.of(replace(view.incident, resolved_at=late), (*view.entries, entry)),
        now=T0 + timedelta(days=3),
    )
    assert re.search(r'<text class="tick"[^>]*>11-2[5-7] \d\d:\d\d</text>', page)
    assert "2026-11-27 07:16:02.000" in page  # entries on other days show their date


def test_a_part_of_a_long_timeline_numbers_on_and_links_to_the_next() -> None:
    view = planned_failover()
    part = IncidentView.of(view.incident, view.entries, part=TimelinePart(start=4, limit=3))
    page = render_timeline_page(part, now=NOW)
    assert re.findall(r'<td class="num">(\d+)</td>', page) == ["5", "6", "7"]
    assert "Entries 5 to 7 of 12" in page
    assert '<a href="?start=7">More entries, from number 8</a>' in page
    assert "Standby rebuilt" in phase_rows(page)  # phases come from every entry, not the part shown


def test_upcoming_maintenance_is_listed() -> None:
    upcoming = [
        {
            "starts_at": "2026-12-01T02:00:00Z",
            "ends_at": "2026-12-01T04:00:00Z",
            "status": "Planned",
            "event_id": "ev-1",
        }
    ]
    page = render_timeline_page(planned_failover(), now=NOW, upcoming=upcoming)
    assert "Upcoming maintenance of this server" in page and "2026-12-01 02:00:00" in page and "ev-1" in page
    assert "Upcoming maintenance" not in render_timeline_page(planned_failover(), now=NOW)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (12.4, "12.4 s"),
        (59, "59 s"),
        (60, "1 min"),
        (125, "2 min 5 s"),
        (372, "6 min 12 s"),
        (7500, "2 h 05 min"),
        (90000, "1 d 1 h"),
        (-3, "not measured"),
    ],
)
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_dead_effects_are_flagged() -> None:
    view = planned_failover()
    dead = TimelineEntry(
        datetime(2026, 11, 25, 7, 20, tzinfo=UTC),
        "responder",
        "effect_dead",
        "Teams card (opened) gave up after 8 attempt(s): Teams answered 500",
        "effect:x",
    )
    page = render_timeline_page(IncidentView.of(view.incident, (*view.entries, dead)), now=NOW)
    assert '<tr class="alarm">' in page
    assert 'class="src-responder alarm"' in page
    assert 'Responder <span class="count">1</span>' in page


def test_the_deployment_package_ships_the_template_and_style_sheet(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("package_script", ROOT / "scripts" / "package.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    names = script.build(tmp_path / "app.zip", bytecode=False)
    assert {"failover/templates/timeline.html.j2", "failover/templates/timeline.css"} <= set(names)


def test_importing_the_page_module_loads_no_jinja2() -> None:
    """Invariant 8: Jinja2 is imported on the first render, not when the app indexes its functions."""
    probe = "import sys, handlers.lookups; print('jinja2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_verification_steps_the_incident_keeps_reach_the_page_and_the_json() -> None:
    view = planned_failover()
    steps = (
        {"check": "writer_writable", "status": "passed", "at": "2026-11-25T07:16:29Z", "detail": "ok"},
        {"check": "slots_synced", "status": "skipped", "at": None, "detail": "no logical slots"},
        {"status": "passed"},  # not a step: no check named
    )
    kept = IncidentView.of(replace(view.incident, verification=steps), view.entries)
    assert [(s.check, s.status) for s in kept.verification] == [
        ("writer_writable", "passed"),
        ("slots_synced", "skipped"),
    ]
    page = render_timeline_page(kept, now=NOW)
    assert "Writer writable" in page and "no logical slots" in page
    body = kept.to_json()
    assert body["verification"][0] == steps[0]
    assert [p["phase"] for p in body["phases"]][:2] == ["detected", "failing_over"]
    assert [s["state"] for s in body["ha_states"]] == ["FailingOver", "ReplicatingData", "Healthy"]
    assert "Verification" not in render_timeline_page(IncidentView.of(view.incident, view.entries), now=NOW)
