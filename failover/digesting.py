"""The zone-outage digest use case: keep who opened when, fold their cards, post digest cards.

Layer: application. Storage through `SideRows` only (one table, beside the incident rows):
- partition `~digest~{YYYYMMDD}` (the opening's UTC day): a row `m~{region}~{incident_id}` per
  incident (region, server, cause, status, latest transition) and a row `p~{post}~{channel}~{target
  hash}` per digest card claimed (insert-if-absent: a card goes out once per channel target,
  whatever the number of workers; a failed post is marked and retried by the next flush);
- partition `~pace`: a row per channel target with its last post time, moved forward by
  compare-and-swap (`ChannelPacer`): at most one post per second per channel target, shared by
  every worker and by the per-incident cards (the notify pipeline asks the same pacer).
Lookups read the same rows (`window_of`: an incident's digest window; `outage_windows`: one
outage's). Decisions are `failover.digest`'s (pure). It never sleeps (a post not yet allowed waits for the
next flush), never logs a target (targets are secrets; rows keep only a hash).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from failover import digest as dg
from failover.errors import ConcurrencyConflictError, NotifierError, NotifierUnavailableError
from failover.model import Incident
from failover.notify.channel import Channel
from failover.notify.teams.card import envelope
from failover.ports import Clock, SideRows, swap_row
from failover.timeutil import iso, parse_iso

log = logging.getLogger(__name__)

PACE_PARTITION = "~pace"
_SENDING_FOR = timedelta(seconds=60)  # a claim still "sending" after this long belongs to a dead worker


def _day_partition(day: datetime) -> str:
    return f"~digest~{day:%Y%m%d}"


def _target_hash(channel: str, target: str) -> str:
    return hashlib.sha256(f"{channel}\n{target}".encode()).hexdigest()[:16]


@dataclass
class ChannelPacer:
    """At most one post per `digest.MIN_POST_GAP` per channel target, across workers."""

    rows: SideRows
    clock: Clock

    def claim(self, channel: str, target: str) -> datetime | None:
        """Take the channel's next slot now (None), or say when it frees up (nothing taken)."""
        key = _target_hash(channel, target)
        now = self.clock()
        found = self.rows.get(PACE_PARTITION, key)
        last = parse_iso(found[0]["last"]) if found else None
        allowed = dg.next_post_at(last, now)
        if allowed > now:
            return allowed
        entity = {"PartitionKey": PACE_PARTITION, "RowKey": key, "last": iso(now)}
        try:
            swap_row(self.rows, entity, found)
        except ConcurrencyConflictError:
            return now + dg.MIN_POST_GAP  # another worker took this slot
        return None


@dataclass
class ZoneDigest:
    """`channels`: the channels that take a Teams Workflows message (the digest card's envelope)."""

    rows: SideRows
    channels: Mapping[str, Channel]
    pacer: ChannelPacer
    policy: dg.DigestPolicy
    clock: Clock
    base_url: str | None = None  # PUBLIC_BASE_URL: the card links to the digest's lookup

    def note(self, incident: Incident, region: str) -> None:
        """Keep the incident's latest state (call after every transition, before its cards)."""
        latest = incident.transitions[-1].value if incident.transitions else "opened"
        self.rows.upsert(
            {
                "PartitionKey": _day_partition(incident.opened_at),
                "RowKey": f"m~{region}~{incident.incident_id}",
                "region": region,
                "server": incident.server,
                "incident_id": incident.incident_id,
                "opened_at": iso(incident.opened_at),
                "cause": incident.cause.value,
                "status": incident.status.value,
                "stage": latest,
            }
        )

    def holds(self, incident: Incident, region: str) -> str | None:
        """The digest window key an incident's cards are folded into, or None: it sends its own."""
        window = dg.folded(incident.incident_id, self._windows(f"m~{region}~"))
        if window is not None:
            log.info("incident %s: cards folded into zone digest %s", incident.incident_id, window.key)
        return None if window is None else window.key

    def flush(self) -> int:
        """Post every due digest card this worker may post now; returns how many went out."""
        now = self.clock()
        sent = 0
        for post in dg.due_posts(self._windows("m~"), now):
            for name, channel in sorted(self.channels.items()):
                by_target: dict[str, list[dg.Opening]] = {}
                for member in post.members:
                    target = channel.target_for(member.server)
                    if target is not None:
                        by_target.setdefault(target, []).append(member)
                for target, members in by_target.items():
                    part = dg.Post(post.key, post.kind, post.outage_id, tuple(members))
                    sent += self._post(name, channel, target, part, now)
        return sent

    def _windows(self, prefix: str) -> list[dg.Window]:
        now = self.clock()
        return dg.windows(_openings(self.rows, (now - timedelta(days=1), now), prefix), self.policy)

    def _post(self, name: str, channel: Channel, target: str, post: dg.Post, now: datetime) -> int:
        stamp = post.outage_id.split("~", 1)[1]
        partition = f"~digest~{stamp[:8]}"
        key = f"p~{post.key}~{name}~{_target_hash(name, target)}"
        claim: dict[str, Any] = {
            "PartitionKey": partition,
            "RowKey": key,
            "status": "sending",
            "at": iso(now),
        }
        found = self.rows.get(partition, key)
        if found is not None:
            row, etag = found
            stuck = row["status"] == "sending" and parse_iso(row["at"]) + _SENDING_FOR < now
            if row["status"] != "failed" and not stuck:
                return 0
        if self.pacer.claim(name, target) is not None:
            return 0  # this channel posted within the last second: the next flush sends it
        try:
            etag = swap_row(self.rows, claim, found)
        except ConcurrencyConflictError:
            return 0  # another worker claimed this card
        try:
            link = f"{self.base_url}/api/digests/{post.outage_id}" if self.base_url else None
            channel.send(target, envelope(dg.digest_card(post, digest_url=link)))
        except (NotifierError, NotifierUnavailableError) as error:
            log.warning(
                "zone digest %s (%s) to %s failed: %s", post.key, post.kind, name, type(error).__name__
            )
            self.rows.replace({**claim, "status": "failed"}, etag)
            return 0
        self.rows.replace({**claim, "status": "done"}, etag)
        log.info("zone digest %s (%s, %d servers) sent to %s", post.key, post.kind, len(post.members), name)
        return 1


def _openings(rows: SideRows, days: Iterable[datetime], prefix: str) -> list[dg.Opening]:
    """The openings kept in the partitions of `days` (each once) whose row key starts with `prefix`."""
    partitions = sorted({_day_partition(day) for day in days})
    return [
        dg.Opening(
            region=str(r["region"]),
            server=str(r["server"]),
            incident_id=str(r["incident_id"]),
            opened_at=parse_iso(r["opened_at"]),
            cause=str(r["cause"]),
            status=str(r["status"]),
            stage=str(r["stage"]),
        )
        for partition in partitions
        for r in rows.query(partition, prefix, limit=5000)
    ]


def window_of(rows: SideRows, incident: Incident, region: str, policy: dg.DigestPolicy) -> dg.Window | None:
    """The digest window an incident's cards were folded into, or None (lookups link to it).

    Reads the region's openings of the days a window around the opening can touch (one or two
    day partitions)."""
    span = policy.window * 2
    days = (incident.opened_at - span, incident.opened_at, incident.opened_at + span)
    return dg.folded(incident.incident_id, dg.windows(_openings(rows, days, f"m~{region}~"), policy))


def outage_windows(rows: SideRows, outage_id: str, policy: dg.DigestPolicy) -> list[dg.Window]:
    """The digest windows of one zone outage (`{region}~{YYYYMMDDTHHMMSSZ}`), in time order; empty
    when there is no such digest. The caller validates the id."""
    region, stamp = outage_id.split("~", 1)
    first = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    found = dg.windows(_openings(rows, (first, first + timedelta(days=1)), f"m~{region}~"), policy)
    return [w for w in found if w.digest and w.outage_id == outage_id]
