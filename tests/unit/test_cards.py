"""Adaptive Card rendering (pure): content, Teams constraints, size bound, markdown neutralised."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.model import Cause, Incident, Transition
from failover.notify.teams.card import CARD_CONTENT_TYPE, MAX_CARD_BYTES, envelope, plain, render_card
from failover.presentation import IncidentView, format_duration, portal_url
from tests.builders import RESOURCE, T0
from tests.builders import incident as make_incident

RID = RESOURCE.format(server="pg-prod-01")
TIMELINE = "https://pgfo.azurewebsites.net/api/incidents/pg-prod-01~20261125T071602Z/timeline"
MARKDOWN_CHARS = set("*_[]`<>|\\")


def card_for(transition: Transition, incident: Incident | None = None, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"timeline_url": TIMELINE, "portal_url": portal_url(RID)}
    options.update(kwargs)
    return render_card(IncidentView.of(incident or make_incident(transition)), transition, **options)


def walk(node: Any):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def text_blocks(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in walk(card) if n.get("type") == "TextBlock"]


def facts(card: dict[str, Any]) -> dict[str, str]:
    [fact_set] = [n for n in walk(card) if n.get("type") == "FactSet"]
    return {f["title"]: f["value"] for f in fact_set["facts"]}


def shown_text(card: dict[str, Any]) -> str:
    """Everything a person reads on the card (TextBlocks, facts, fallback text)."""
    parts = [b["text"] for b in text_blocks(card)]
    parts += [f"{k} {v}" for k, v in facts(card).items()]
    parts.append(card.get("fallbackText", ""))
    return "\n".join(parts)


def size(card: dict[str, Any]) -> int:
    env = envelope(card)
    return max(len(json.dumps(env).encode()), len(json.dumps(env, ensure_ascii=False).encode()))


@pytest.mark.parametrize(
    "transition, headline, style",
    [
        (
            Transition.OPENED,
            "Failover in progress on pg-prod-01 \u2014 writes may fail; "
            "clients reconnect to the same host name",
            "attention",
        ),
        (
            Transition.PRIMARY_RESTORED,
            "pg-prod-01 is accepting writes again in zone 2 \u2014 standby being rebuilt",
            "warning",
        ),
        (Transition.RESOLVED, "pg-prod-01 failover resolved \u2014 HA healthy", "good"),
    ],
)
def test_headline_says_what_happened_and_what_it_means(transition, headline, style):
    card = card_for(transition)
    container = card["body"][0]
    assert container["type"] == "Container"
    assert container["style"] == style
    assert container["items"][0]["text"] == headline
    assert container["items"][0]["weight"] == "Bolder"
    assert card["fallbackText"] == headline
    assert "pg-prod-01~20261125T071602Z" in container["items"][1]["text"]


def test_opened_card_facts():
    f = facts(card_for(Transition.OPENED))
    assert f == {
        "Server": "pg-prod-01",
        "Cause": "planned failover",
        "Primary zone": "1 \u2192 pending",
        "Standby zone": "unknown",
        "HA state": "FailingOver",
        "Client write downtime": "not measured",
        "Started": "2026-11-25 07:16:02 UTC",
        "Detected": "unknown",
        "Primary restored": "not yet",
        "Resolved": "not yet",
    }


def test_resolved_card_facts():
    f = facts(card_for(Transition.RESOLVED))
    assert f["Primary zone"] == "1 \u2192 2"
    assert f["Standby zone"] == "1"
    assert f["HA state"] == "Healthy"
    assert f["Client write downtime"] == "12.4 s"
    assert f["Primary restored"] == "2026-11-25 07:16:43 UTC"
    assert f["Resolved"] == "2026-11-25 07:25:02 UTC"


def test_ha_state_argument_wins_over_the_incident():
    assert (
        facts(card_for(Transition.RESOLVED, make_incident(Transition.RESOLVED, ha_state="Healthy ")))[
            "HA state"
        ]
        == "Healthy"
    )
    assert facts(card_for(Transition.OPENED, incident=make_incident(ha_state=None)))["HA state"] == "unknown"


def test_teams_constraints_hold_for_every_transition():
    for transition in Transition:
        card = card_for(transition)
        assert card["type"] == "AdaptiveCard"
        assert card["version"] == "1.4"
        assert tuple(int(p) for p in card["version"].split(".")) <= (1, 4)
        assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
        blocks = text_blocks(card)
        assert blocks and all(b["wrap"] is True for b in blocks)
        action_types = {n["type"] for n in walk(card) if str(n.get("type", "")).startswith("Action.")}
        assert action_types == {"Action.OpenUrl"}
        assert not any("selectAction" in n for n in walk(card))
        assert [a["title"] for a in card["actions"]] == ["Open timeline", "Open in Azure portal"]
        assert size(card) < MAX_CARD_BYTES
        json.dumps(card, allow_nan=False)  # strict JSON


def test_portal_url_and_link_filtering():
    assert portal_url(RID) == f"https://portal.azure.com/#@/resource{RID}/overview"
    assert portal_url("pg-prod-01") is None
    assert portal_url("/subscriptions/x/../#evil") is None
    card = card_for(Transition.OPENED, timeline_url="javascript:alert(1)", portal_url="ftp://x/y")
    assert "actions" not in card
    local = card_for(Transition.OPENED, timeline_url="http://127.0.0.1:7071/api/incidents/x/timeline")
    assert local["actions"][0]["url"] == "http://127.0.0.1:7071/api/incidents/x/timeline"
    remote_http = card_for(Transition.OPENED, timeline_url="http://example.com/t", portal_url=None)
    assert "actions" not in remote_http


@pytest.mark.parametrize(
    "value, shown",
    [
        (None, "not measured"),
        (0, "0 s"),
        (12.43, "12.4 s"),
        (125, "2 min 5 s"),
        (7300, "2 h 01 min"),
        (float("nan"), "not measured"),
        (float("inf"), "not measured"),
        (-1, "not measured"),
    ],
)
def test_downtime_format(value, shown):
    assert format_duration(value) == shown


@pytest.mark.parametrize(
    "hostile",
    [
        "[click me](https://evil.example/login)",
        "**urgent** __now__ *x* _y_",
        "<at>everyone</at> <script>alert(1)</script>",
        "`code` ~~gone~~ | table |",
        "- list item",
        "1. numbered",
        "visit www.evil.example or https://evil.example",
        "line1\nline2\r\n\tline3",
        "back\\slash \\*escaped\\*",
    ],
)
def test_markdown_and_links_from_payload_values_are_neutralised(hostile):
    incident = make_incident(
        Transition.RESOLVED,
        server=hostile,
        incident_id=hostile,
        primary_zone_before=hostile,
        primary_zone_after=hostile,
        standby_zone_after=hostile,
    )
    card = card_for(Transition.RESOLVED, incident=replace(incident, ha_state=hostile))
    text = shown_text(card)
    assert not MARKDOWN_CHARS & set(text)
    assert "](" not in text
    assert "://" not in text
    assert "www." not in text
    assert "~~" not in text
    for block in text_blocks(card):
        assert "\n" not in block["text"]
        assert not block["text"].lstrip().startswith(("- ", "1. "))
    for value in facts(card).values():
        assert not value.startswith(("- ", "1. ", "+ ", "# "))


def test_plain_keeps_ordinary_names_intact():
    assert plain("pg-prod-01~20261125T071602Z") == "pg-prod-01~20261125T071602Z"
    assert plain("FailingOver") == "FailingOver"
    assert plain("x" * 500, 10) == "xxxxxxxxx\u2026"


def test_envelope_is_the_workflows_message():
    card = card_for(Transition.OPENED)
    assert envelope(card) == {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }
    assert CARD_CONTENT_TYPE == "application/vnd.microsoft.card.adaptive"


def test_render_is_pure_and_deterministic():
    incident = make_incident(Transition.RESOLVED)
    assert card_for(Transition.RESOLVED, incident=incident) == card_for(
        Transition.RESOLVED, incident=incident
    )


def test_huge_values_stay_under_the_size_limit():
    huge = "\U0001f525" * 50_000  # 4 UTF-8 bytes, 12 bytes once JSON-escaped
    incident = make_incident(
        Transition.RESOLVED,
        server=huge,
        incident_id=huge,
        primary_zone_before=huge,
        primary_zone_after=huge,
        standby_zone_after=huge,
        resource_id="/subscriptions/" + "a" * 5000,
    )
    card = card_for(
        Transition.RESOLVED,
        incident=replace(incident, ha_state=huge),
        timeline_url="https://example.com/" + "b" * 2000,
        portal_url="https://portal.azure.com/#@/resource/" + "c" * 2000,
    )
    assert size(card) < MAX_CARD_BYTES
    assert facts(card)["Server"].endswith("\u2026")


values = st.one_of(
    st.none(), st.text(max_size=3000), st.text(alphabet="*_[]()<>`~|\\-#!:/w.1 \n", max_size=400)
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    transition=st.sampled_from(list(Transition)),
    server=st.text(min_size=1, max_size=3000),
    incident_id=st.text(max_size=3000),
    zones=st.tuples(values, values, values),
    ha_state=values,
    downtime=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    url=st.one_of(st.none(), st.text(max_size=3000), st.just("https://example.com/" + "u" * 2040)),
)
def test_any_values_give_a_small_valid_plain_text_card(
    transition, server, incident_id, zones, ha_state, downtime, url
):
    incident = make_incident(
        transition,
        server=server,
        incident_id=incident_id,
        primary_zone_before=zones[0],
        primary_zone_after=zones[1],
        standby_zone_after=zones[2],
        write_downtime_seconds=downtime,
    )
    card = render_card(
        IncidentView.of(replace(incident, ha_state=ha_state)), transition, timeline_url=url, portal_url=url
    )
    assert size(card) < MAX_CARD_BYTES
    json.dumps(card, allow_nan=False)
    assert all(b["wrap"] is True for b in text_blocks(card))
    assert {n["type"] for n in walk(card) if str(n.get("type", "")).startswith("Action.")} <= {
        "Action.OpenUrl"
    }
    text = shown_text(card)
    assert not MARKDOWN_CHARS & set(text)
    assert "://" not in text
    for action in card.get("actions", []):
        assert action["url"].startswith("https://")


def test_primary_restored_names_a_zone_only_after_the_move():
    incident = make_incident(cause=Cause.UNPLANNED, resource_id="", primary_zone_after="1")

    def headline(i: Incident) -> str:
        return json.dumps(
            render_card(IncidentView.of(i), Transition.PRIMARY_RESTORED, timeline_url=None, portal_url=None)
        )

    assert "in zone" not in headline(incident)
    assert "in zone 2" in headline(replace(incident, primary_zone_after="2"))


# --------------------------------------------------------------------------- issue 11


def test_same_zone_failover_says_same_zone_not_a_move():
    incident = make_incident(
        Transition.PRIMARY_RESTORED, primary_zone_before="1", primary_zone_after="1", standby_zone_after="1"
    )
    for transition in (Transition.PRIMARY_RESTORED, Transition.RESOLVED):
        card = card_for(transition, incident)
        assert facts(card)["Primary zone"] == "zone 1, same zone"
        text = shown_text(card)
        assert "1 \u2192 1" not in text and "\u2192" not in facts(card)["Primary zone"]
        assert "in zone" not in card["fallbackText"]
    # A zone-redundant move still reads as a move.
    assert facts(card_for(Transition.RESOLVED))["Primary zone"] == "1 \u2192 2"


def test_scaling_cause_is_named():
    card = card_for(
        Transition.OPENED, make_incident(cause=Cause.SCALING, ha_state="ComputeUpdatingByFailover")
    )
    assert facts(card)["Cause"] == "compute scaling by failover"
    assert facts(card)["HA state"] == "ComputeUpdatingByFailover"
    assert facts(card_for(Transition.OPENED, make_incident(cause=Cause.MAINTENANCE)))["Cause"] == (
        "planned maintenance"
    )


@pytest.mark.parametrize(
    "alert_after, figure",
    [
        (timedelta(minutes=4, seconds=12), "Detected 4 min 12 s before Azure's alert"),
        (timedelta(seconds=37.4), "Detected 37 s before Azure's alert"),
        (timedelta(hours=1, minutes=5, seconds=3), "Detected 1 h 05 min before Azure's alert"),
        (timedelta(seconds=-12), "Azure's alert came 12 s before the app detected it"),
        (timedelta(0), "Detected at the same time as Azure's alert"),
    ],
)
def test_headline_detection_figure(alert_after, figure):
    detected = T0 + timedelta(seconds=3)
    incident = make_incident(Transition.RESOLVED, detected_at=detected, azure_alert_at=detected + alert_after)
    for transition in Transition:
        card = card_for(transition, incident)
        figures = [b for b in text_blocks(card) if b["text"] == figure]
        assert len(figures) == 1 and figures[0]["wrap"] is True and figures[0]["weight"] == "Bolder"
        assert facts(card)["Detected"] == "2026-11-25 07:16:05 UTC"
        assert card["version"] == "1.4" and size(card) < MAX_CARD_BYTES


def test_detection_figure_before_any_azure_alert_and_without_detection():
    detected = T0 + timedelta(seconds=3)
    card = card_for(Transition.OPENED, make_incident(detected_at=detected))
    assert "Detected at 2026-11-25 07:16:05 UTC; no Azure alert yet" in [b["text"] for b in text_blocks(card)]
    plain_card = card_for(Transition.OPENED)
    assert not any(
        "Azure's alert" in b["text"] or "no Azure alert" in b["text"] for b in text_blocks(plain_card)
    )


def test_the_stale_card_says_closed_without_recovery_evidence():
    card = card_for(Transition.STALE, make_incident(Transition.STALE))
    headline = text_blocks(card)[0]
    assert headline["text"] == "pg-prod-01 failover closed without recovery evidence"
    assert headline["color"] == "Warning"
    assert "HA healthy" not in json.dumps(card)


def test_a_bare_scheme_separator_is_broken_too():
    assert "://" not in plain("://") and "://" not in plain("see ://x and 1://y")
