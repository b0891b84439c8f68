"""Zone-outage digest benchmark: 60 servers of one region fail over within a minute and a half.

Layer: benchmark (never deployed). Drives `failover.digesting.ZoneDigest` directly on the
in-memory store with a simulated clock and a recording Teams-like channel: each server's incident
opens, has its primary restored and resolves; its own cards go out unless the digest folds them;
the digest flushes every simulated second. Figures: posts in total, servers named, the peak
number of posts in any one second per channel target (target: at most 10 posts, every server
named, at most 1 post per second). `peak_per_second` and `servers_named` also count the storm
benchmark's zone-outage phase (bench/storm.py), where the posts reach a Teams sink over HTTP.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from bench.common import Result
from failover.adapters.memory_store import MemoryStore
from failover.digest import DigestPolicy
from failover.digesting import ChannelPacer, ZoneDigest
from failover.model import Cause, Incident, IncidentStatus, Transition

START = datetime(2026, 11, 25, 7, 16, tzinfo=timezone.utc)


@dataclass
class RecordingChannel:
    """A channel that records what it would post (one Teams webhook for every server)."""

    name: str = "teams"
    posts: list[tuple[datetime, str, Mapping[str, Any]]] = field(default_factory=list)
    clock: Any = None

    def target_for(self, server: str) -> str | None:
        return "https://example.invalid/workflows/teams"

    def render(self, *args: Any) -> None:
        return None

    def send(self, target: str, message: Mapping[str, Any]) -> None:
        self.posts.append((self.clock(), target, message))


@dataclass
class Outcome:
    posts: int
    servers_named: int
    servers: int
    peak_per_second: int
    own_cards: int


def simulate(servers: int = 60, *, seed: int = 16) -> Outcome:
    rng = random.Random(seed)
    now = [START]
    channel = RecordingChannel(clock=lambda: now[0])
    rows = MemoryStore().side_rows()
    pacer = ChannelPacer(rows, lambda: now[0])
    digest = ZoneDigest(rows, {"teams": channel}, pacer, DigestPolicy(), lambda: now[0])
    plan: list[tuple[datetime, Incident]] = []
    for i in range(servers):
        opened = START + timedelta(seconds=rng.uniform(0, 90))
        base = Incident(
            incident_id=f"pg-{i:03d}~{opened:%Y%m%dT%H%M%SZ}",
            server=f"pg-{i:03d}",
            resource_id=f"/subscriptions/s/resourcegroups/rg/providers/microsoft.dbforpostgresql/flexibleservers/pg-{i:03d}",
            status=IncidentStatus.OPEN,
            cause=Cause.UNPLANNED,
            cause_confidence=2,
            opened_at=opened,
            last_signal_at=opened,
            transitions=(Transition.OPENED,),
        )
        restored = opened + timedelta(seconds=rng.uniform(60, 120))
        resolved = restored + timedelta(seconds=300)
        plan.append((opened, base))
        plan.append((restored, replace(base, transitions=(*base.transitions, Transition.PRIMARY_RESTORED))))
        plan.append(
            (
                resolved,
                replace(
                    base,
                    status=IncidentStatus.RESOLVED,
                    transitions=(Transition.OPENED, Transition.PRIMARY_RESTORED, Transition.RESOLVED),
                ),
            )
        )
    plan.sort(key=lambda item: item[0])
    own_cards = 0
    waiting: list[Incident] = []  # own cards the pacer held back, sent in order
    second = START
    end = max(at for at, _ in plan) + timedelta(seconds=300)
    events = iter(plan)
    upcoming = next(events, None)
    while second <= end:
        now[0] = second
        while upcoming is not None and upcoming[0] <= second:
            at, incident = upcoming
            now[0] = at
            digest.note(incident, "westeurope")
            if digest.holds(incident, "westeurope") is None:
                waiting.append(incident)
            upcoming = next(events, None)
        now[0] = second
        digest.flush()
        while waiting and pacer.claim("teams", "https://example.invalid/workflows/teams") is None:
            incident = waiting.pop(0)
            channel.send("https://example.invalid/workflows/teams", {"own": incident.incident_id})
            own_cards += 1
        second += timedelta(seconds=1)
    names = [f"pg-{i:03d}" for i in range(servers)]
    named = servers_named((json.dumps(message) for _, _, message in channel.posts), names)
    peak = peak_per_second(at for at, _, _ in channel.posts)
    return Outcome(len(channel.posts), len(named), servers, peak, own_cards)


def peak_per_second(times: Iterable[datetime]) -> int:
    """The most posts within any one second: a window [t, t + 1 s) from each post, not clock seconds."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= timedelta(seconds=1):
            first += 1
        best = max(best, last - first + 1)
    return best


def servers_named(texts: Iterable[str], servers: Iterable[str]) -> set[str]:
    """The servers whose name appears in at least one of the posts' texts."""
    posted = list(texts)
    return {server for server in servers if any(server in text for text in posted)}


def run(quick: bool = False) -> Result:
    result = Result(
        "zone_digest", "Zone-outage digest (60 servers, one region)", "python -m bench.run --only zone_digest"
    )
    outcome = simulate(60)
    result.add("Teams posts for a 60-server zone outage", str(outcome.posts), "<= 10", outcome.posts <= 10)
    result.add(
        "servers named in at least one post",
        f"{outcome.servers_named} of {outcome.servers}",
        "all",
        outcome.servers_named == outcome.servers,
    )
    result.add(
        "peak posts in one second per channel",
        str(outcome.peak_per_second),
        "<= 1",
        outcome.peak_per_second <= 1,
    )
    result.notes.append(
        f"{outcome.own_cards} per-server cards went out before the third server made it a zone outage;"
        " the rest are digest cards (one per window, one at the end). Baseline without the digest: "
        f"{outcome.servers * 3} cards (one per server per transition)."
    )
    return result
