"""Adaptive Card rendering for Teams: one card per incident transition.

Layer: pure core. Takes an `IncidentView` (`failover.presentation`: the words every channel
shares) and a `Transition` and returns plain dicts (the card `content` and the Workflows webhook
envelope). It must not do I/O, read the clock, import
HTTP clients or Azure SDKs, or put anything but display text and `Action.OpenUrl` links in a card.

Contract (design section 5, Teams): Adaptive Card version 1.4, `wrap: true` on every TextBlock,
`Action.OpenUrl` only (the Workflows webhook does not support `Action.Submit`), and the serialized
envelope stays under `MAX_CARD_BYTES` whatever the incident holds. Values that come from payloads
are shown as plain text: characters the Teams markdown subset reacts to (`*`, `_`, `[`, `]`,
backticks, `<`, `>`, list markers, `~~`) are replaced by look-alike characters or broken with a
zero-width space, and URL-like text is de-linkified. Backslash escapes are not used because
Teams mobile clients show the backslash (MicrosoftDocs/msteams-docs#5793).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from failover.model import Transition
from failover.presentation import IncidentView, format_time
from failover.urls import https_or_loopback

CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
# Teams documents a 28 KB message limit, but 413s were seen near 14-20 KB (azure-facts 6):
# the whole envelope, serialized with either json.dumps setting, stays under this many bytes.
MAX_CARD_BYTES = 14 * 1024
_SIZE_TARGET = MAX_CARD_BYTES - 512  # headroom for the envelope and a webhook's own wrapping

_ZWSP = "\u200b"
# Look-alikes for the characters the Teams markdown subset reacts to. They read the same to people
# but no markdown processor (Teams, markdown-it) treats them as syntax.
_LOOKALIKES = str.maketrans(
    {
        "*": "\u2217",  # ASTERISK OPERATOR
        "_": "\u02cd",  # MODIFIER LETTER LOW MACRON
        "[": "\uff3b",  # FULLWIDTH LEFT SQUARE BRACKET
        "]": "\uff3d",
        "`": "\u02cb",  # MODIFIER LETTER GRAVE ACCENT
        "<": "\u2039",  # SINGLE LEFT-POINTING ANGLE QUOTATION MARK
        ">": "\u203a",
        "|": "\u2223",  # DIVIDES
        "\\": "\u29f5",  # REVERSE SOLIDUS OPERATOR
    }
)
_WHITESPACE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_LIST_MARKER = re.compile(r"^(\s*)([-+#>]|\d+[.)])(?=\s|$)")
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{1,20}):/{1,2}")
_WWW = re.compile(r"(?i)\bwww\.")

# Container style and headline colour per transition.
_STYLE = {
    Transition.OPENED: ("attention", "Attention"),
    Transition.PRIMARY_RESTORED: ("warning", "Warning"),
    Transition.RESOLVED: ("good", "Good"),
    Transition.STALE: ("warning", "Warning"),
}


def plain(value: object, limit: int = 200) -> str:
    """Display text for a value from a payload: one line, at most `limit` characters, no markdown.

    The result never contains `*`, `_`, `[`, `]`, backticks, `<`, `>`, `|`, backslashes, a leading
    list marker, `~~`, `scheme://` or `www.` in a form a markdown processor or linkifier acts on.
    """
    text = "" if value is None else str(value)
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: max(limit - 1, 0)].rstrip() + "\u2026"
    text = text.translate(_LOOKALIKES)
    text = text.replace("~~", "~" + _ZWSP + "~")
    text = _SCHEME.sub(lambda m: m.group(1) + ":" + _ZWSP + "//", text)
    text = text.replace("://", ":" + _ZWSP + "//")  # a bare "://" (no scheme letters before it)
    text = _WWW.sub(lambda m: m.group(0)[:3] + _ZWSP + ".", text)
    text = _LIST_MARKER.sub(lambda m: m.group(1) + _ZWSP + m.group(2), text)
    return text


def safe_link(url: str | None) -> str | None:
    """A URL fit for `Action.OpenUrl`: https (or http on loopback), ASCII, bounded length; else None."""
    if not url or not url.isascii() or any(ch in '"<>\\' for ch in url):
        return None
    return url if https_or_loopback(url) else None


def _zone(value: str | None, *, missing: str = "unknown") -> str:
    return plain(value, 16) if value else missing


def _text(text: str, **extra: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "TextBlock", "text": text, "wrap": True}
    block.update(extra)
    return block


def _facts(view: IncidentView, transition: Transition, server: str, limit: int) -> list[tuple[str, str]]:
    incident = view.incident
    state = incident.ha_state
    return [
        ("Server", server),
        ("Cause", plain(view.cause_text, 40)),
        ("Primary zone", plain(view.primary_zones(transition), 40)),
        ("Standby zone", _zone(incident.standby_zone_after)),
        ("HA state", plain(state, min(limit, 60)) if state else "unknown"),
        ("Client write downtime", view.downtime_text),
        ("Started", format_time(incident.opened_at, missing="unknown")),
        ("Detected", format_time(incident.detected_at, missing="unknown")),
        ("Primary restored", format_time(incident.primary_restored_at, missing="not yet")),
        ("Resolved", format_time(incident.resolved_at, missing="not yet")),
    ]


def _build(
    view: IncidentView, transition: Transition, *, links: tuple[str | None, str | None], limit: int
) -> dict[str, Any]:
    incident = view.incident
    server = plain(incident.server, min(limit, 63)) or "unknown server"
    style, color = _STYLE.get(transition, ("default", "Default"))
    headline = plain(view.headline(transition, server), 400)
    header: list[dict[str, Any]] = [
        _text(headline, size="Medium", weight="Bolder", color=color),
        _text(f"Incident {plain(incident.incident_id, min(limit, 120))}", isSubtle=True, spacing="Small"),
    ]
    body: list[dict[str, Any]] = [
        {"type": "Container", "style": style, "bleed": True, "items": header},
        _text(view.advice(transition)),
    ]
    if view.detection_text:
        body.append(_text(view.detection_text, weight="Bolder", spacing="Small"))
    facts = _facts(view, transition, server, limit)
    body.append(
        {"type": "FactSet", "spacing": "Medium", "facts": [{"title": t, "value": v} for t, v in facts]}
    )
    if transition is Transition.RESOLVED and view.verification:
        steps = [
            {"title": plain(s.check, 40), "value": plain(f"{s.status}: {s.detail}", limit)}
            for s in view.verification
        ]
        body.append(_text("Verification after the failover", weight="Bolder", spacing="Medium"))
        body.append({"type": "FactSet", "spacing": "Small", "facts": steps})
    return adaptive_card(
        headline, body, list(zip(("Open timeline", "Open in Azure portal"), links, strict=True))
    )


def adaptive_card(
    fallback: str, body: list[dict[str, Any]], actions: Sequence[tuple[str, str | None]] = ()
) -> dict[str, Any]:
    """The Adaptive Card every Teams message of the app is: full width, a fallback text, and an
    `Action.OpenUrl` per (title, url) whose url is safe to link (the others are left out)."""
    card: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "fallbackText": fallback,
        "body": body,
    }
    buttons = [
        {"type": "Action.OpenUrl", "title": title, "url": link}
        for title, url in actions
        if (link := safe_link(url)) is not None
    ]
    if buttons:
        card["actions"] = buttons
    card["msteams"] = {"width": "Full"}
    return card


def card_size(card: Mapping[str, Any]) -> int:
    """Bytes of the envelope around `card`, the larger of the ASCII-escaped and raw UTF-8 forms."""
    env = envelope(card)
    escaped = len(json.dumps(env).encode("utf-8"))
    raw = len(json.dumps(env, ensure_ascii=False).encode("utf-8"))
    return max(escaped, raw)


def render_card(
    view: IncidentView, transition: Transition, *, timeline_url: str | None, portal_url: str | None
) -> dict[str, Any]:
    """The Adaptive Card `content` for one transition of one incident (pure; always < 14 KB)."""
    limit = 200
    while True:
        card = _build(view, transition, links=(timeline_url, portal_url), limit=limit)
        if card_size(card) <= _SIZE_TARGET:
            return card
        if limit <= 8:
            # Only links can still be this large: drop them rather than exceed the limit.
            card.pop("actions", None)
            return card
        limit //= 2
        timeline_url = timeline_url if timeline_url and len(timeline_url) <= limit * 8 else None
        portal_url = portal_url if portal_url and len(portal_url) <= limit * 8 else None


def envelope(card: Mapping[str, Any]) -> dict[str, Any]:
    """The Power Automate Workflows webhook message around one card (design section 5)."""
    return {
        "type": "message",
        "attachments": [
            {"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": dict(card)},
        ],
    }
