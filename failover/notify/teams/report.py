"""The failover drill's scored report, as words and as one Adaptive Card for the channel.

Layer: pure core. Takes the incident's public JSON (what the lookup API answers) and the drill's
checks, and returns the scored lines (`score`) the drill prints and the card `content`
(`report_card`) the drill posts: the detection lead over Azure's alert, the write downtime
against the 60 to 120 s Microsoft states for an HA failover, the verification steps and every
check with its verdict. It must not do I/O, read the clock or post anything (the drill posts
through the Teams channel). The card keeps the incident cards' contract (`card.py`): version 1.4,
`wrap: true`, plain text only, `Action.OpenUrl` only, under `MAX_CARD_BYTES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from failover.notify.teams.card import MAX_CARD_BYTES, adaptive_card, card_size, plain
from failover.presentation import detection_figure, format_duration
from failover.timeutil import parse_iso

# Microsoft: "The overall failover time is typically 60 to 120 seconds" (HA concepts, Flexible Server).
MICROSOFT_FAILOVER_SECONDS = (60, 120)
_MAX_FACTS = 30  # checks shown on the card; the rest are counted


def _when(value: object) -> datetime | None:
    try:
        return parse_iso(value)
    except (ValueError, OverflowError):
        return None


def detection_line(incident: Mapping[str, Any]) -> str:
    """The detection lead over Azure's first alert, in the words the incident cards use."""
    figure = detection_figure(_when(incident.get("detected_at")), _when(incident.get("azure_alert_at")))
    return figure or "not detected by the app"


def downtime_line(seconds: object) -> str:
    """The measured write downtime against the 60 to 120 s Microsoft states."""
    low, high = MICROSOFT_FAILOVER_SECONDS
    measured = format_duration(seconds)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or measured == "not measured":
        return f"not measured (Microsoft states {low} to {high} s)"
    if seconds < low:
        verdict = "shorter than"
    elif seconds <= high:
        verdict = "within"
    else:
        verdict = "longer than"
    return f"{measured}, {verdict} the {low} to {high} s Microsoft states"


def score(incident: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The scored lines of a drill: (title, words), in the order the drill prints them."""
    if incident is None:
        return [("Incident", "none recorded")]
    lines = [
        (
            "Incident",
            f"{incident.get('incident_id')} ({incident.get('status')}, cause {incident.get('cause')})",
        ),
        ("Detection", detection_line(incident)),
        ("Write downtime", downtime_line(incident.get("write_downtime_seconds"))),
    ]
    for step in incident.get("verification") or []:
        lines.append(
            (f"Verification {step.get('check')}", f"{step.get('status')}: {step.get('detail') or ''}")
        )
    return lines


def report_card(
    *,
    server: str,
    incident: Mapping[str, Any] | None,
    checks: Sequence[tuple[str, bool, str]],
    timeline_url: str | None = None,
) -> dict[str, Any]:
    """The drill's report as one card `content`: headline with the verdict, scored facts, checks."""
    failed = [name for name, ok, _ in checks if not ok]
    passed = bool(checks) and not failed
    headline = plain(f"Failover drill {'passed' if passed else 'failed'}: {server}", 160)
    summary = f"{len(checks) - len(failed)} of {len(checks)} checks passed"
    if failed:
        summary += "; failed: " + ", ".join(failed)
    body: list[dict[str, Any]] = [
        {
            "type": "Container",
            "style": "good" if passed else "attention",
            "bleed": True,
            "items": [
                {"type": "TextBlock", "text": headline, "wrap": True, "weight": "Bolder", "size": "Medium"},
                {"type": "TextBlock", "text": plain(summary, 400), "wrap": True, "spacing": "Small"},
            ],
        },
        _facts([(title, words) for title, words in score(incident)]),
        {"type": "TextBlock", "text": "Checks", "wrap": True, "weight": "Bolder", "spacing": "Medium"},
        _facts(
            [(("PASS" if ok else "FAIL"), f"{name}: {detail}") for name, ok, detail in checks[:_MAX_FACTS]]
        ),
    ]
    if len(checks) > _MAX_FACTS:
        body.append({"type": "TextBlock", "text": f"and {len(checks) - _MAX_FACTS} more", "wrap": True})
    card = adaptive_card(headline, body, [("Open timeline", timeline_url)])
    if card_size(card) > MAX_CARD_BYTES:
        card.pop("actions", None)
        card["body"] = body[:1]  # the verdict always fits; the details are on the drill's console
    return card


def _facts(rows: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "FactSet",
        "spacing": "Small",
        "facts": [{"title": plain(title, 60), "value": plain(value, 300)} for title, value in rows],
    }
