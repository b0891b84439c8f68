"""The drill's scored report card (failover/notify/teams/report.py): pure rendering."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from failover.notify.teams.card import MAX_CARD_BYTES, card_size
from failover.notify.teams.report import downtime_line, report_card, score

INCIDENT = {
    "incident_id": "pg-drill-01~20261130T190000Z",
    "status": "resolved",
    "cause": "forced",
    "detected_at": "2026-11-30T19:00:02Z",
    "azure_alert_at": "2026-11-30T19:00:14Z",
    "write_downtime_seconds": 8.4,
    "verification": [
        {"check": "writer_writable", "status": "passed", "at": "2026-11-30T19:00:10Z", "detail": "writes ok"},
        {"check": "slots_synced", "status": "skipped", "at": "2026-11-30T19:00:11Z", "detail": "no slots"},
    ],
}
CHECKS = [("cause", True, "forced (expected forced)"), ("resolved", False, "open")]


def _texts(card: dict) -> str:
    return json.dumps(card, ensure_ascii=False)


def test_the_score_names_the_detection_lead_the_downtime_against_microsoft_and_every_step():
    lines = dict(score(INCIDENT))
    assert lines["Detection"] == "Detected 12 s before Azure's alert"
    assert lines["Write downtime"] == "8.4 s, shorter than the 60 to 120 s Microsoft states"
    assert lines["Verification writer_writable"] == "passed: writes ok"
    assert lines["Verification slots_synced"] == "skipped: no slots"
    late = {**INCIDENT, "azure_alert_at": "2026-11-30T19:00:00Z"}
    assert dict(score(late))["Detection"] == "Azure's alert came 2 s before the app detected it"
    assert dict(score({**INCIDENT, "detected_at": None}))["Detection"] == "not detected by the app"
    assert score(None) == [("Incident", "none recorded")]


def test_downtime_is_judged_against_60_to_120_seconds():
    assert downtime_line(90).startswith("1 min 30 s, within")
    assert downtime_line(121).startswith("2 min 1 s, longer than")
    assert downtime_line(None).startswith("not measured")
    assert downtime_line(float("nan")).startswith("not measured")


def test_the_card_carries_the_verdict_the_score_and_every_check():
    card = report_card(
        server="pg-drill-01", incident=INCIDENT, checks=CHECKS, timeline_url="https://x.example/t"
    )
    text = _texts(card)
    assert card["version"] == "1.4" and card["fallbackText"] == "Failover drill failed: pg-drill-01"
    assert card["body"][0]["style"] == "attention"
    assert "1 of 2 checks passed; failed: resolved" in text
    for _, words in score(INCIDENT):
        assert words in text
    assert "FAIL" in text and "PASS" in text
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open timeline", "url": "https://x.example/t"}
    ]
    assert all(b.get("wrap") for b in card["body"][0]["items"])


def test_a_passed_drill_is_green_and_an_unsafe_link_is_dropped():
    card = report_card(server="s", incident=INCIDENT, checks=CHECKS[:1], timeline_url="javascript:alert(1)")
    assert card["fallbackText"] == "Failover drill passed: s" and card["body"][0]["style"] == "good"
    assert "actions" not in card


@given(
    st.text(max_size=2000),
    st.lists(st.tuples(st.text(max_size=500), st.booleans(), st.text(max_size=2000)), max_size=80),
)
def test_the_card_stays_under_the_size_limit_whatever_the_report_holds(server, checks):
    incident = {**INCIDENT, "incident_id": server, "verification": [{"check": server, "detail": server}] * 20}
    card = report_card(server=server, incident=incident, checks=checks)
    assert card_size(card) <= MAX_CARD_BYTES
    assert card["fallbackText"].startswith("Failover drill ")
