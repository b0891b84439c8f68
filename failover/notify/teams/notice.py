"""Adaptive Cards for server notices that are not incidents: a probe that cannot check, an
upcoming maintenance.

Layer: pure core. Values in, a card `content` dict out; no I/O, no clock. The same contract as the
incident cards (`failover.notify.teams.card`): version 1.4, `wrap: true`, plain text only (values
pass through `plain`), no actions, well under the size limit (every text is bounded).
"""

from __future__ import annotations

from typing import Any

from failover.notify.teams.card import adaptive_card, plain


def notice_card(headline: str, text: str, facts: list[tuple[str, str]], *, style: str) -> dict[str, Any]:
    """A one-container card: a bold headline, one sentence, a few facts (each bounded)."""
    items: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": plain(headline, 160),
            "wrap": True,
            "weight": "Bolder",
            "size": "Medium",
        },
        {"type": "TextBlock", "text": plain(text, 400), "wrap": True},
    ]
    if facts:
        items.append(
            {
                "type": "FactSet",
                "facts": [{"title": plain(k, 40), "value": plain(v, 200)} for k, v in facts[:8]],
            }
        )
    return adaptive_card(plain(headline, 160), [{"type": "Container", "style": style, "items": items}])
