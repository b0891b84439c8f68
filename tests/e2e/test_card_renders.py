"""Every card renders in the official adaptivecards 3.0.6 renderer (1.4 context) in headless Chromium.

Fails, never skips, when Chromium or npm is missing: `.ci` installs them (Debian `chromium`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from failover.model import Transition
from failover.notify.teams.card import render_card
from failover.presentation import IncidentView
from tests.builders import incident as make_incident
from tests.e2e import cardrender

pytestmark = pytest.mark.browser

HOSTILE = "[click](https://evil.example) **bold** _it_ <b>x</b> `c` ~~s~~\n- item\n1. one | \\"


def _cards() -> dict[str, dict[str, Any]]:
    cards = dict(cardrender.sample_cards())
    hostile = replace(
        make_incident(Transition.RESOLVED),
        server=HOSTILE,
        incident_id=HOSTILE * 3,
        primary_zone_before=HOSTILE,
        primary_zone_after=HOSTILE,
        standby_zone_after=HOSTILE,
        write_downtime_seconds=float("nan"),
        ha_state=HOSTILE * 50,
    )
    cards["hostile"] = render_card(
        IncidentView.of(hostile), Transition.RESOLVED, timeline_url="javascript:alert(1)", portal_url=None
    )
    cards["stale_no_links"] = render_card(
        IncidentView.of(make_incident(Transition.STALE, ha_state=None)),
        Transition.STALE,
        timeline_url=None,
        portal_url=None,
    )
    cards["digest"] = cardrender.sample_digest_card()
    # Negative control: the harness must see problems (a 1.5 Table in a 1.4 context, an unknown action).
    cards["broken_control"] = {
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [{"type": "Table", "columns": [], "rows": []}],
        "actions": [{"type": "Action.Teleport", "title": "x"}],
    }
    return cards


@pytest.fixture(scope="module")
def rendered() -> dict[str, cardrender.RenderResult]:
    assert cardrender.CHROMIUM.exists(), (
        f"Chromium is required at {cardrender.CHROMIUM}: apt-get install -y --no-install-recommends chromium"
    )
    cards = _cards()
    results = cardrender.render_many(list(cards.values()))
    return dict(zip(cards, results, strict=True))


@pytest.mark.parametrize("name", ["opened", "primary_restored", "resolved", "hostile", "stale_no_links"])
def test_card_renders_without_parse_or_validation_events_or_js_errors(rendered, name):
    result = rendered[name]
    assert result.parse_events == []
    assert result.validation_events == []
    assert result.js_errors == []
    assert result.rendered
    assert result.version == "1.4"
    assert result.fact_sets == 1
    assert result.facts[:3] == ["Server", "Cause", "Primary zone"]
    assert result.ok


@pytest.mark.parametrize("name", ["opened", "primary_restored", "resolved"])
def test_links_render_as_buttons(rendered, name):
    assert rendered[name].actions == ["Open timeline", "Open in Azure portal"]


def test_headlines_are_shown(rendered):
    assert "Failover in progress on pg-prod-01" in rendered["opened"].text
    assert "pg-prod-01 is accepting writes again in zone 2" in rendered["primary_restored"].text
    assert "pg-prod-01 failover resolved" in rendered["resolved"].text
    assert "pg-prod-01 failover closed without recovery evidence" in rendered["stale_no_links"].text


def test_hostile_values_render_as_plain_text(rendered):
    result = rendered["hostile"]
    assert result.actions == []  # a javascript: link is never turned into a button
    assert "evil.example" in result.text  # shown, but as text
    assert "](" not in result.text


def test_the_harness_reports_a_broken_card(rendered):
    control = rendered["broken_control"]
    assert not control.ok
    kinds = {event["event"] for event in control.events}
    assert "UnknownElementType" in kinds
    assert "UnknownActionType" in kinds


def test_the_zone_outage_digest_card_renders_and_names_every_server(rendered):
    result = rendered["digest"]
    assert result.ok and result.version == "1.4"
    assert "Zone outage in westeurope: 12 servers failed over together" in result.text
    for name in ("billing", "catalog", "checkout", "inventory", "ledger", "loyalty", "orders", "payments"):
        assert f"pg-{name}-prod: unplanned" in result.text
    assert "pg-users-prod: unplanned, opened (open)" in result.text
    assert result.actions == ["Open the digest"]


def test_the_digest_card_screenshot_is_written(tmp_path):
    shot = tmp_path / "card-digest.png"
    result = cardrender.render(cardrender.sample_digest_card(), screenshot=shot, scale=2.0)
    data = shot.read_bytes()
    assert result.ok and data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 2 * (cardrender.CARD_WIDTH + 32) and height >= 2 * result.height
