"""Adaptive Card rendering for Teams: one card per incident transition.

Layer: pure core. Takes an `Incident` and a `Transition` and returns plain dicts (the card
`content` and the Workflows webhook envelope). It must not do I/O, read the clock, import
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
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from failover.model import Cause, Incident, Transition
from failover.timeutil import ensure_utc

CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
# Teams documents a 28 KB message limit, but 413s were seen near 14-20 KB (azure-facts 6):
# the whole envelope, serialized with either json.dumps setting, stays under this many bytes.
MAX_CARD_BYTES = 14 * 1024
_SIZE_TARGET = MAX_CARD_BYTES - 512  # headroom for the envelope and a webhook's own wrapping
MAX_URL_LENGTH = 2048
PORTAL_BASE = "https://portal.azure.com/#@/resource"

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
}
_CAUSE_TEXT = {
    Cause.PLANNED: "planned failover",
    Cause.FORCED: "forced failover",
    Cause.UNPLANNED: "unplanned failover (platform)",
    Cause.MAINTENANCE: "planned maintenance",
    Cause.UNKNOWN: "cause not known yet",
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
    text = _WWW.sub(lambda m: m.group(0)[:3] + _ZWSP + ".", text)
    text = _LIST_MARKER.sub(lambda m: m.group(1) + _ZWSP + m.group(2), text)
    return text


def portal_url(resource_id: str | None) -> str | None:
    """The Azure portal overview page of an ARM resource id, or None when the id is not one."""
    if not resource_id or not resource_id.startswith("/subscriptions/"):
        return None
    if any(ch.isspace() or ch in "#?\"'<>\\" for ch in resource_id):
        return None
    url = f"{PORTAL_BASE}{resource_id}/overview"
    return url if len(url) <= MAX_URL_LENGTH else None


def safe_link(url: str | None) -> str | None:
    """A URL fit for `Action.OpenUrl`: https (or http on loopback), bounded length; else None."""
    if not url or len(url) > MAX_URL_LENGTH or not url.isascii():
        return None
    if any(ch.isspace() or ord(ch) < 0x20 or ch in '"<>\\' for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}:
        return url
    return None


def format_time(value: datetime | None, *, missing: str) -> str:
    if value is None:
        return missing
    return ensure_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_downtime(seconds: float | None) -> str:
    """Client-observed write downtime, e.g. `12.4 s`, `2 min 5.0 s`, or `not measured`."""
    if seconds is None or isinstance(seconds, bool):
        return "not measured"
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return "not measured"
    if not math.isfinite(value) or value < 0 or value > 10 * 365 * 86400:
        return "not measured"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(value, 60)
    if minutes < 60:
        return f"{int(minutes)} min {rest:.1f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} min"


def _zone(value: str | None, *, missing: str = "unknown") -> str:
    return plain(value, 16) if value else missing


def _headline(transition: Transition, server: str, zone_after: str | None) -> str:
    if transition is Transition.OPENED:
        return (
            f"Failover in progress on {server} \u2014 writes may fail; "
            "clients reconnect to the same host name"
        )
    if transition is Transition.PRIMARY_RESTORED:
        where = f" in zone {zone_after}" if zone_after else ""
        return f"{server} is accepting writes again{where} \u2014 standby being rebuilt"
    return f"{server} failover resolved \u2014 HA healthy"


def _advice(transition: Transition) -> str:
    if transition is Transition.OPENED:
        return (
            "Applications should retry failed writes and reconnect; the server keeps its host name. "
            "No action is needed unless writes stay down."
        )
    if transition is Transition.PRIMARY_RESTORED:
        return (
            "Writes succeed again. High availability is reduced until the standby is rebuilt; "
            "another failover now would take longer."
        )
    return "The server is whole again: primary serving, standby in sync. No action is needed."


def _text(text: str, **extra: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "TextBlock", "text": text, "wrap": True}
    block.update(extra)
    return block


def _build(
    incident: Incident,
    transition: Transition,
    *,
    timeline_url: str | None,
    portal_url: str | None,
    ha_state: str | None,
    suppressed_note: str | None,
    limit: int,
) -> dict[str, Any]:
    server = plain(incident.server, min(limit, 63)) or "unknown server"
    zone_before = plain(incident.primary_zone_before, 16) if incident.primary_zone_before else None
    zone_after = plain(incident.primary_zone_after, 16) if incident.primary_zone_after else None
    style, color = _STYLE.get(transition, ("default", "Default"))
    # Name the new zone only once the management API has shown the primary move there.
    headline = _headline(transition, server, zone_after if zone_after != zone_before else None)

    cause = _CAUSE_TEXT.get(incident.cause, plain(incident.cause, 40))
    if zone_before or zone_after:
        pending = "pending" if transition is Transition.OPENED else "unknown"
        primary = f"{zone_before or 'unknown'} \u2192 {zone_after or pending}"
    else:
        primary = "unknown"
    state = ha_state if ha_state is not None else incident.ha_state
    facts = [
        ("Server", server),
        ("Cause", cause),
        ("Primary zone", primary),
        ("Standby zone", _zone(incident.standby_zone_after)),
        ("HA state", plain(state, min(limit, 60)) if state else "unknown"),
        ("Client write downtime", format_downtime(incident.write_downtime_seconds)),
        ("Started", format_time(incident.opened_at, missing="unknown")),
        ("Primary restored", format_time(incident.primary_restored_at, missing="not yet")),
        ("Resolved", format_time(incident.resolved_at, missing="not yet")),
    ]

    header: list[dict[str, Any]] = [
        _text(headline, size="Medium", weight="Bolder", color=color),
        _text(f"Incident {plain(incident.incident_id, min(limit, 120))}", isSubtle=True, spacing="Small"),
    ]
    body: list[dict[str, Any]] = [
        {"type": "Container", "style": style, "bleed": True, "items": header},
        _text(_advice(transition)),
    ]
    if suppressed_note:
        body.append(_text(plain(suppressed_note, min(limit, 300)), isSubtle=True, spacing="Small"))
    body.append(
        {
            "type": "FactSet",
            "spacing": "Medium",
            "facts": [{"title": title, "value": value} for title, value in facts],
        }
    )

    actions: list[dict[str, Any]] = []
    for title, url in (("Open timeline", timeline_url), ("Open in Azure portal", portal_url)):
        link = safe_link(url)
        if link is not None:
            actions.append({"type": "Action.OpenUrl", "title": title, "url": link})

    card: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "fallbackText": headline,
        "body": body,
    }
    if actions:
        card["actions"] = actions
    card["msteams"] = {"width": "Full"}
    return card


def card_size(card: Mapping[str, Any]) -> int:
    """Bytes of the envelope around `card`, the larger of the ASCII-escaped and raw UTF-8 forms."""
    env = envelope(card)
    escaped = len(json.dumps(env).encode("utf-8"))
    raw = len(json.dumps(env, ensure_ascii=False).encode("utf-8"))
    return max(escaped, raw)


def render_card(
    incident: Incident,
    transition: Transition,
    *,
    timeline_url: str | None,
    portal_url: str | None,
    ha_state: str | None,
    suppressed_note: str | None = None,
) -> dict[str, Any]:
    """The Adaptive Card `content` for one transition of one incident (pure; always < 14 KB)."""
    limit = 200
    while True:
        card = _build(
            incident,
            transition,
            timeline_url=timeline_url,
            portal_url=portal_url,
            ha_state=ha_state,
            suppressed_note=suppressed_note,
            limit=limit,
        )
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
