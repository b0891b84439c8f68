"""Zone-outage digests: when many servers of one region fail over together, one story per window.

Layer: pure core. Openings in, windows and due posts out; no I/O, no clock, no logging.

When at least `DIGEST_MIN_SERVERS` servers of one region open incidents within
`DIGEST_WINDOW_SECONDS`, the openings of that window form a digest: each channel gets one card
for the window (listing every server, its cause and state) once the window has ended, and one
card at the end of the outage, when every incident in it is closed. Openings that continue within
a window of the previous digest window's end belong to the same outage (a next window, its own
card). Servers of a digest window get no cards of their own from then on; a server that opened
alone keeps its own cards. Independently of all this, a channel posts at most once per
`MIN_POST_GAP` (`next_post_at`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from failover.notify.teams.card import adaptive_card, plain
from failover.timeutil import iso

MIN_POST_GAP = timedelta(seconds=1)
_MAX_LINES = 200  # servers listed on one card (60 lines of ~60 characters is ~4 KB; the card stays < 14 KB)


@dataclass(frozen=True)
class DigestPolicy:
    min_servers: int = 3  # DIGEST_MIN_SERVERS
    window: timedelta = timedelta(seconds=120)  # DIGEST_WINDOW_SECONDS


@dataclass(frozen=True)
class Opening:
    """One incident as the digest sees it."""

    region: str
    server: str
    incident_id: str
    opened_at: datetime
    cause: str
    status: str  # open / resolved / stale
    stage: str  # the incident's latest transition: opened / primary_restored / resolved / stale


@dataclass(frozen=True)
class Window:
    outage_id: str  # {region}~{first opening, YYYYMMDDTHHMMSSZ}
    index: int  # 0 for the first window of the outage
    start: datetime
    end: datetime
    members: tuple[Opening, ...]
    digest: bool  # enough servers (or a continuation of a digest window): folded into cards

    @property
    def key(self) -> str:
        return f"{self.outage_id}~w{self.index}"


@dataclass(frozen=True)
class Post:
    key: str  # stable: a post is claimed once per channel under this key
    kind: str  # window | end
    outage_id: str
    members: tuple[Opening, ...]


def _stamp(when: datetime) -> str:
    return when.strftime("%Y%m%dT%H%M%SZ")


def windows(openings: Iterable[Opening], policy: DigestPolicy) -> list[Window]:
    """The windows of every region, in time order (pure; the same openings give the same windows)."""
    found: list[Window] = []
    by_region: dict[str, list[Opening]] = {}
    for given in openings:
        by_region.setdefault(given.region, []).append(given)
    for region, items in sorted(by_region.items()):
        items.sort(key=lambda o: (o.opened_at, o.server))
        outage, index, continues = "", 0, False
        start = end = items[0].opened_at
        current: list[Opening] = []
        ends: list[Opening | None] = [*items, None]
        for opening in ends:
            if opening is not None and current and opening.opened_at < end:
                current.append(opening)
                continue
            if current:
                # Servers, not incidents: one server failing over three times is not a zone outage.
                is_digest = continues or len({o.server for o in current}) >= policy.min_servers
                found.append(Window(outage, index, start, end, tuple(current), is_digest))
                continues = is_digest and opening is not None and opening.opened_at < end + policy.window
                index = index + 1 if continues else 0
            if opening is None:
                break
            if not continues:
                outage = f"{region}~{_stamp(opening.opened_at)}"
            start, end, current = opening.opened_at, opening.opened_at + policy.window, [opening]
    return found


def folded(incident_id: str, found: Iterable[Window]) -> Window | None:
    """The digest window an incident belongs to, or None: it keeps its own cards."""
    return next((w for w in found if w.digest and any(m.incident_id == incident_id for m in w.members)), None)


def due_posts(found: Iterable[Window], now: datetime) -> list[Post]:
    """Every digest card due at `now` (callers drop the ones a channel already claimed)."""
    posts: list[Post] = []
    outages: dict[str, list[Window]] = {}
    for window in found:
        if window.digest:
            outages.setdefault(window.outage_id, []).append(window)
    for outage_id, parts in outages.items():
        for window in parts:
            if window.end <= now:
                posts.append(Post(window.key, "window", outage_id, window.members))
        members = tuple(m for w in parts for m in w.members)
        last_end = max(w.end for w in parts)
        if last_end <= now and all(m.status != "open" for m in members):
            posts.append(Post(f"{outage_id}~end", "end", outage_id, members))
    return posts


def next_post_at(last_post_at: datetime | None, now: datetime) -> datetime:
    """When a channel may post next: never twice within `MIN_POST_GAP`."""
    return now if last_post_at is None else max(now, last_post_at + MIN_POST_GAP)


def _line(member: Opening) -> str:
    return plain(f"{member.server}: {member.cause}, {member.stage.replace('_', ' ')} ({member.status})", 120)


def digest_card(post: Post, *, digest_url: str | None = None) -> dict[str, Any]:
    """The Adaptive Card (1.4, plain text, `wrap: true`) for one digest post."""
    region = post.outage_id.split("~", 1)[0]
    members = sorted(post.members, key=lambda m: m.server)
    count = len(members)
    if post.kind == "end":
        resolved = sum(1 for m in members if m.status == "resolved")
        headline = f"Zone outage in {region} is over: {resolved} of {count} servers resolved"
        style = "good" if resolved == count else "warning"
    else:
        headline = f"Zone outage in {region}: {count} servers failed over together"
        style = "attention"
    started = min(m.opened_at for m in members)
    lines = [_line(m) for m in members[:_MAX_LINES]]
    if count > _MAX_LINES:
        lines.append(f"and {count - _MAX_LINES} more")
    body: list[dict[str, Any]] = [
        {
            "type": "Container",
            "style": style,
            "bleed": True,
            "items": [
                {
                    "type": "TextBlock",
                    "text": plain(headline, 200),
                    "wrap": True,
                    "weight": "Bolder",
                    "size": "Medium",
                },
                {
                    "type": "TextBlock",
                    "text": f"Outage {plain(post.outage_id, 120)} since {iso(started)}",
                    "wrap": True,
                    "isSubtle": True,
                },
            ],
        },
        {"type": "TextBlock", "text": "\n\n".join(lines), "wrap": True, "spacing": "Medium"},
    ]
    # The digest's lookup lists its servers, each linking to its own timeline.
    return adaptive_card(plain(headline, 200), body, [("Open the digest", digest_url)])
