"""The timeline page renderer (pure): escaping, phases, robustness, no external resources."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from failover.timeline_html import CSP, format_duration, render_timeline_page
from tests.e2e.test_timeline_page import T0, planned_failover

UTC = timezone.utc
NOW = T0 + timedelta(minutes=15)


def row_labels(page: str) -> list[str]:
    return re.findall(r'<text class="row-label"[^>]*>([^<]*)</text>', page)


def phase_rows(page: str) -> list[str]:
    """The phase rows of the overview chart (the labels before the signal lanes)."""
    overview = page.split("SIGNALS BY SOURCE", maxsplit=1)[0]
    return row_labels(overview)


def test_planned_failover_shows_every_phase_in_order() -> None:
    page = render_timeline_page(planned_failover(), now=NOW)
    assert phase_rows(page) == [
        "Detected",
        "Failing over",
        "Writes unavailable",
        "Primary restored",
        "Standby rebuilt",
        "Resolved",
    ]
    assert "12.4 s" in page
    assert "1 → 2" in page
    assert "The failover up close" in page  # 28 s of failover in a 5 min incident: zoomed in too
    assert page.count("<tr") == 1 + 3 + 1 + 11


def test_phases_that_did_not_happen_are_absent() -> None:
    incident = planned_failover()
    incident.update(status="open", primary_restored_at=None, resolved_at=None, write_downtime_seconds=None)
    incident["timeline"] = incident["timeline"][:3]  # started, degraded, HA FailingOver
    incident["notifications"] = incident["notifications"][:1]
    page = render_timeline_page(incident, now=T0 + timedelta(minutes=2))
    assert phase_rows(page) == ["Detected", "Failing over"]
    assert "ongoing" in page
    assert "not measured" in page
    assert "Open for" in page and "2 min" in page
    assert "The failover up close" not in page


def test_writes_still_failing_show_as_ongoing() -> None:
    incident = planned_failover()
    incident.update(status="open", primary_restored_at=None, resolved_at=None, write_downtime_seconds=None)
    incident["timeline"] = incident["timeline"][:4]
    page = render_timeline_page(incident, now=T0 + timedelta(seconds=40))
    assert phase_rows(page) == ["Detected", "Failing over", "Writes unavailable"]


def hostile(field: str) -> str:
    return f"<i data-x=\"{field}\" onload='x'>&amp;{field}</i>"


def test_every_payload_value_is_escaped() -> None:
    incident: dict[str, Any] = planned_failover()
    for key in (
        "incident_id",
        "server",
        "resource_id",
        "cause",
        "primary_zone_before",
        "primary_zone_after",
        "standby_zone_after",
        "ha_state",
    ):
        incident[key] = hostile(key)
    incident["status"] = hostile("status")
    incident["notifications"] = [
        {"transition": hostile("transition"), "status": hostile("nstatus"), "at": hostile("nat")}
    ]
    incident["timeline"] = [
        {
            "at": incident["opened_at"],
            "source": hostile("source"),
            "kind": hostile("kind"),
            "summary": hostile("summary"),
            "signal_id": hostile("signal_id"),
        },
        {
            "at": hostile("at"),
            "source": "db_probe",
            "kind": "write_restored",
            "summary": "x",
            "signal_id": "y",
        },
    ]
    page = render_timeline_page(incident, now=NOW)
    assert "<i " not in page
    assert "onload='x'" not in page
    assert "&amp;amp;" in page  # the payload's own "&amp;" is shown as text
    for field in (
        "server",
        "resource_id",
        "cause",
        "primary_zone_before",
        "standby_zone_after",
        "ha_state",
        "transition",
        "nstatus",
        "nat",
        "source",
        "kind",
        "summary",
        "signal_id",
        "at",
        "incident_id",
    ):
        assert f"&lt;i data-x=&quot;{field}&quot; onload=&#x27;x&#x27;&gt;" in page, field
    # SVG tooltips and lane labels too: the unknown source gets its own lane, escaped
    assert re.search(r"<title>[^<]*&lt;i data-x=&quot;summary&quot;", page)
    tags = re.findall(r"<[^>]*>", page)
    assert not [t for t in tags if re.search(r"\son[a-z]+\s*=", t)]


def test_hostile_values_do_not_reach_style_or_class_attributes() -> None:
    incident = planned_failover()
    incident["notifications"] = [
        {"transition": "opened", "status": 'done" style="x', "at": "2026-11-25T07:16:04Z"}
    ]
    for entry in incident["timeline"]:
        entry["source"] = 'db_probe" style="background:url(x)'
    page = render_timeline_page(incident, now=NOW)
    tags = re.findall(r"<[^>]*>", page)
    assert not [t for t in tags if "url(" in t or 'style="x' in t]
    assert "db_probe&quot; style=&quot;background:url(x)" in page  # shown as text, in the table
    assert 'class="pill pill-neutral"' in page


@pytest.mark.parametrize(
    "incident",
    [
        {},
        {"timeline": "not a list", "notifications": {"x": 1}, "opened_at": "yesterday"},
        {"timeline": [None, 3, {"at": None}], "write_downtime_seconds": "12", "status": None},
        {"opened_at": "2026-11-25T07:16:02Z", "resolved_at": "2026-11-24T07:16:02Z", "status": "resolved"},
        {
            "opened_at": "2026-11-25T07:16:02Z",
            "timeline": [{"at": "2026-11-29T07:16:02Z", "kind": "db_down"}],
        },
    ],
)
def test_incomplete_or_odd_input_still_renders(incident: dict[str, Any]) -> None:
    page = render_timeline_page(incident, now=NOW)
    assert page.startswith("<!doctype html>")
    assert page.rstrip().endswith("</html>")


def test_page_is_self_contained_and_script_free() -> None:
    page = render_timeline_page(planned_failover(), now=NOW)
    assert not re.search(r"<(script|link|iframe|object|embed|img|base|form)\b", page, re.I)
    tags = re.findall(r"<[^>]*>", page)
    assert not [t for t in tags if re.search(r"\s(src|href|action)\s*=", t, re.I)]
    assert "@import" not in page and "url(" not in page and "javascript:" not in page.lower()
    assert '<meta http-equiv="Content-Security-Policy"' in page
    assert "default-src &#x27;none&#x27;" in page  # the policy in the meta tag, attribute-escaped


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
    incident = planned_failover()
    incident["resolved_at"] = (T0 + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    incident["timeline"].append(
        {
            "at": incident["resolved_at"],
            "source": "arm_probe",
            "kind": "ha_state_changed",
            "summary": "Management API: High availability state FailingOver -> Healthy",
            "signal_id": "late",
        }
    )
    page = render_timeline_page(incident, now=T0 + timedelta(days=3))
    assert re.search(r'<text class="tick"[^>]*>11-2[5-7] \d\d:\d\d</text>', page)
    assert "2026-11-27 07:16:02.000" in page  # entries on other days show their date


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (12.4, "12.4 s"),
        (59, "59 s"),
        (60, "1 min"),
        (372, "6 min 12 s"),
        (7500, "2 h 05 min"),
        (90000, "1 d 1 h"),
        (-3, "0 s"),
    ],
)
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_dead_effects_are_flagged() -> None:
    incident = planned_failover()
    incident["timeline"].append(
        {
            "at": "2026-11-25T07:20:00Z",
            "source": "responder",
            "kind": "effect_dead",
            "summary": "Teams card (opened) gave up after 8 attempt(s): Teams answered 500",
            "signal_id": "effect:x",
        }
    )
    page = render_timeline_page(incident, now=datetime(2026, 11, 25, 8, tzinfo=UTC))
    assert '<tr class="alarm">' in page
    assert 'stroke="#dc2626" stroke-width="3"' in page
    assert 'Responder <span class="count">1</span>' in page
