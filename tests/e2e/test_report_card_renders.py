"""The drill's report card renders in the official adaptivecards renderer (1.4) in headless Chromium.

Fails, never skips, when Chromium or npm is missing (as test_card_renders does).
"""

from __future__ import annotations

import pytest

from failover.notify.teams.report import report_card
from tests.e2e import cardrender
from tests.unit.test_report_card import CHECKS, INCIDENT

pytestmark = pytest.mark.browser


def test_the_report_card_renders_without_parse_or_validation_events():
    assert cardrender.CHROMIUM.exists(), f"Chromium is required at {cardrender.CHROMIUM}"
    card = report_card(
        server="pg-drill-01", incident=INCIDENT, checks=CHECKS, timeline_url="https://x.example/t"
    )
    result = cardrender.render(card)
    assert result.ok, (result.events, result.js_errors)
    assert "Failover drill failed: pg-drill-01" in result.text
    assert "8.4 s, shorter than the 60 to 120 s Microsoft states" in result.text
    assert result.actions == ["Open timeline"]
