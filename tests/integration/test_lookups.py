"""Incident lookups against a real Azurite table through the real SDK: cost, pagination, exact filters.

10,000 incidents across 50 servers are seeded once for the module (incident rows in each server's
partition, copies in the day index), written with entity group transactions of 100 in parallel.
Every lookup must read only the entities it returns (`TableStore.entities_read`), walk every
incident exactly once across pages, and filter exactly like the truth computed here in Python.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from failover import lookups
from failover.adapters import table_codec as codec
from failover.adapters.table_store import TableStore
from failover.config import Secret, Settings
from failover.errors import NotFoundError
from failover.model import (
    Cause,
    EffectName,
    EffectStatus,
    Incident,
    IncidentStatus,
    SignalKind,
    Source,
    Transition,
)
from failover.service import Responder
from failover.timeutil import compact, iso
from tests.builders import T0, signal
from tests.conftest import FakeClock

pytestmark = pytest.mark.integration

UTC = timezone.utc
SERVERS = [f"pg-seed-{n:02d}" for n in range(50)]
COUNT = 10_000
BASE = datetime(2026, 9, 1, tzinfo=UTC)
NOW = datetime(2026, 10, 20, tzinfo=UTC)  # after every seeded incident
SETTINGS = Settings(storage_connection=Secret("UseDevelopmentStorage=true"))
TIMELINE_SERVER = "pg-timeline-01"


@dataclass
class Seeded:
    store: TableStore
    incidents: list[Incident]  # newest first, ties by server name (the day index order)
    seconds: float

    def truth(
        self,
        *,
        server: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[str]:
        return [
            i.incident_id
            for i in self.incidents
            if (server is None or i.server == server)
            and (status is None or i.status.value == status)
            and (since is None or i.opened_at >= since)
            and (until is None or i.opened_at <= until)
        ]


def build_incidents() -> list[Incident]:
    """Deterministic incidents: one every 1-10 minutes, every tenth sharing its second with another server."""
    rng = random.Random(20261125)
    at = BASE
    incidents: list[Incident] = []
    previous = ""
    for n in range(COUNT):
        tie = n % 10 == 9
        if not tie:
            at += timedelta(seconds=rng.randint(60, 600))
        server = rng.choice([s for s in SERVERS if s != previous]) if tie else rng.choice(SERVERS)
        previous = server
        resolved = rng.random() < 0.8
        incidents.append(
            Incident(
                incident_id=f"{server}~{compact(at)}",
                server=server,
                resource_id=f"/subscriptions/x/resourcegroups/rg/providers/microsoft.dbforpostgresql/flexibleservers/{server}",
                status=IncidentStatus.RESOLVED if resolved else IncidentStatus.OPEN,
                cause=rng.choice(list(Cause)),
                cause_confidence=2,
                opened_at=at,
                last_signal_at=at + timedelta(seconds=300),
                primary_restored_at=at + timedelta(seconds=rng.randint(20, 120)),
                resolved_at=at + timedelta(seconds=300) if resolved else None,
                primary_zone_before="1",
                primary_zone_after="2",
                standby_zone_after="1",
                write_downtime_seconds=round(rng.uniform(5, 60), 1),
                signal_count=rng.randint(3, 20),
                transitions=(Transition.OPENED, Transition.PRIMARY_RESTORED),
            )
        )
    return sorted(incidents, key=lambda i: (-i.opened_at.timestamp(), i.server))


def seed(store: TableStore, incidents: list[Incident]) -> None:
    batches: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for incident in incidents:
        for entity in (codec.incident_to_entity(incident), codec.day_entity(incident)):
            batches[entity["PartitionKey"]].append(entity)
    transactions = [
        [("upsert", e) for e in rows[start : start + 100]]
        for rows in batches.values()
        for start in range(0, len(rows), 100)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(store._client.submit_transaction, transactions))


@pytest.fixture(scope="module")
def seeded(azurite: str) -> Iterator[Seeded]:
    store = TableStore.from_connection_string(azurite, f"lookups{uuid.uuid4().hex[:12]}")
    store.ensure_table()
    incidents = build_incidents()
    started = time.monotonic()
    seed(store, incidents)
    seconds = time.monotonic() - started
    print(f"\nseeded {len(incidents)} incidents ({2 * len(incidents)} entities) in {seconds:.1f} s")
    yield Seeded(store, incidents, seconds)
    store._client.delete_table()


@pytest.fixture
def counted(seeded: Seeded) -> Iterator[Any]:
    """Yields a function giving the entities read since the test started."""
    start = seeded.store.entities_read
    yield lambda: seeded.store.entities_read - start


def list_all(store: TableStore, **query: Any) -> tuple[list[str], int]:
    """Walk every page; returns the ids in order and the number of pages."""
    ids: list[str] = []
    token = None
    pages = 0
    while True:
        page = lookups.list_incidents(store, SETTINGS, continuation=token, now=NOW, **query)
        pages += 1
        ids += [i["incident_id"] for i in page["incidents"]]
        token = page["continuation"]
        if token is None:
            return ids, pages
        assert pages < 2000


def test_seeding_is_quick(seeded: Seeded) -> None:
    assert len(seeded.incidents) == COUNT
    assert len({i.server for i in seeded.incidents}) == 50
    assert seeded.seconds < 60


# --- cost: only what is returned is read ----------------------------------------------------------


def test_server_listing_reads_only_what_it_returns(seeded: Seeded, counted: Any) -> None:
    for server, status, limit in (
        ("pg-seed-07", None, 50),
        ("pg-seed-08", "open", 20),
        ("pg-seed-09", None, 200),
    ):
        before = counted()
        page = lookups.list_incidents(
            seeded.store, SETTINGS, server=server, status=status, limit=limit, now=NOW
        )
        assert 0 < len(page["incidents"]) <= limit
        assert counted() - before == len(page["incidents"])


def test_cross_server_listing_reads_only_what_it_returns(seeded: Seeded, counted: Any) -> None:
    since, until = datetime(2026, 9, 10, tzinfo=UTC), datetime(2026, 9, 13, 12, tzinfo=UTC)
    for status, limit in ((None, 200), ("resolved", 150), ("open", 200)):
        before = counted()
        page = lookups.list_incidents(
            seeded.store, SETTINGS, since=iso(since), until=iso(until), status=status, limit=limit, now=NOW
        )
        assert len(page["incidents"]) > 0
        assert counted() - before == len(page["incidents"])
        assert len({i["server"] for i in page["incidents"]}) > 1


def test_cross_server_listing_queries_one_partition_at_a_time(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    filters: list[tuple[str, dict[str, Any]]] = []
    real = seeded.store._query

    def spy(query_filter: str, parameters: Any, **kwargs: Any) -> Any:
        filters.append((query_filter, dict(parameters)))
        return real(query_filter, parameters, **kwargs)

    monkeypatch.setattr(seeded.store, "_query", spy)
    lookups.list_incidents(seeded.store, SETTINGS, limit=200, now=NOW)
    assert filters, "no query ran"
    assert all(f.startswith("PartitionKey eq @pk and ") for f, _ in filters)
    days = [p["pk"] for _, p in filters]
    assert days == sorted(days, reverse=True)  # newest day first
    assert all(d.startswith("~day~") for d in days)
    assert len(days) <= 31


def test_point_read_and_timeline_read_only_what_they_return(seeded: Seeded, counted: Any) -> None:
    incident = seeded.incidents[1234]
    before = counted()
    found = lookups.get_incident(seeded.store, SETTINGS, incident.incident_id)
    assert found["incident_id"] == incident.incident_id
    assert found["timeline"] == []
    assert counted() - before == 1

    before = counted()
    with pytest.raises(NotFoundError):
        lookups.get_incident(seeded.store, SETTINGS, "pg-seed-01~20200101T000000Z")
    assert counted() - before == 0


@pytest.fixture(scope="module")
def recorded(seeded: Seeded) -> dict[str, Any]:
    """A planned failover recorded through the real service, plus failed effects and far-away signals."""
    store = seeded.store
    clock = FakeClock(T0 + timedelta(minutes=20))
    responder = Responder(store=store, clock=clock)
    server = TIMELINE_SERVER
    view = {"primary_zone": "2", "standby_zone": "1", "ha_state": "Healthy"}
    outcomes = responder.record_all(
        [
            signal(SignalKind.REPLICATION_LAG_HIGH, -7200, server=server),  # hours before: not in the range
            signal(
                SignalKind.FAILOVER_STARTED,
                0,
                server=server,
                cause=Cause.PLANNED,
                confidence=3,
                details={"zone_before": "1"},
            ),
            signal(SignalKind.HEALTH_DEGRADED, 6, server=server),
            signal(SignalKind.WRITE_UNAVAILABLE, 14, server=server, source=Source.DB_PROBE),
            signal(
                SignalKind.WRITE_RESTORED,
                26.6,
                server=server,
                source=Source.DB_PROBE,
                details={"downtime_seconds": 12.4},
            ),
            signal(
                SignalKind.FAILOVER_COMPLETED,
                28,
                server=server,
                source=Source.ARM_PROBE,
                details={"view": view, "zone_before": "1"},
            ),
            signal(SignalKind.HEALTH_AVAILABLE, 96, server=server),
            signal(SignalKind.REPLICATION_LAG_NORMAL, 7200, server=server),  # hours after: not in the range
        ]
    )
    incident_id = next(o.incident_id for o in outcomes if o.incident_id)
    _set_effect(
        store,
        incident_id,
        Transition.OPENED,
        EffectName.TEAMS_CARD,
        EffectStatus.DEAD,
        "Teams answered 500",
        8,
    )
    _set_effect(
        store,
        incident_id,
        Transition.OPENED,
        EffectName.REDIS_TOPOLOGY,
        EffectStatus.PENDING,
        "redis timeout",
        2,
    )
    _set_effect(
        store,
        incident_id,
        Transition.RESOLVED,
        EffectName.TEAMS_CARD,
        EffectStatus.SUPPRESSED,
        "maintenance window",
        1,
    )
    return {"incident_id": incident_id}


def _set_effect(
    store: TableStore,
    incident_id: str,
    transition: Transition,
    name: EffectName,
    status: EffectStatus,
    error: str,
    attempts: int,
) -> None:
    from failover.model import Effect

    server, _ = codec.split_incident_id(incident_id)
    found = store.get_effect(server, incident_id, transition, name)
    effect = found[0] if found else Effect(incident_id, server, transition, name, created_at=T0)
    updated = replace(
        effect, status=status, last_error=error, attempts=attempts, updated_at=T0 + timedelta(seconds=40)
    )
    store._client.upsert_entity(codec.effect_to_entity(updated))


def test_timeline_reads_only_its_entries_and_shows_failed_effects(
    seeded: Seeded, recorded: dict[str, Any], counted: Any
) -> None:
    before = counted()
    incident = lookups.get_incident(seeded.store, SETTINGS, recorded["incident_id"])
    timeline = incident["timeline"]
    # the incident, its entries, and the server's state row (its region: the zone-outage digest link)
    assert counted() - before == 2 + len(timeline)
    signals = [e["kind"] for e in timeline if e["source"] != "responder"]
    assert signals == [
        "failover_started",
        "health_degraded",
        "write_unavailable",
        "write_restored",
        "failover_completed",
        "health_available",
    ]  # not the lag signals hours before and after: they are outside the incident's range
    assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)
    responder = {e["kind"]: e for e in timeline if e["source"] == "responder"}
    assert set(responder) == {"effect_dead", "effect_retrying", "card_suppressed"}
    assert "Teams answered 500" in responder["effect_dead"]["summary"]
    assert "8 attempt" in responder["effect_dead"]["summary"]
    assert "maintenance window" in responder["card_suppressed"]["summary"]
    assert incident["cause"] == "planned"
    assert incident["write_downtime_seconds"] == 12.4
    assert (incident["primary_zone_before"], incident["primary_zone_after"]) == ("1", "2")
    assert set(timeline[0]) == {"at", "source", "kind", "summary", "signal_id"}


def test_server_state_is_a_point_read(seeded: Seeded, recorded: dict[str, Any], counted: Any) -> None:
    before = counted()
    server = lookups.get_server(seeded.store, TIMELINE_SERVER)
    assert counted() - before == 1
    assert server["server"] == TIMELINE_SERVER
    assert recorded["incident_id"] in server["recent_incident_ids"]
    assert server["topology_version"] >= 1
    assert server["epoch"] >= 1
    assert server["db_probe"]["last_ok_write_at"] is not None
    with pytest.raises(NotFoundError):
        lookups.get_server(seeded.store, "pg-never-seen")


# --- pagination: every incident exactly once -----------------------------------------------------


def test_server_pagination_walks_every_incident_once(seeded: Seeded) -> None:
    server = "pg-seed-21"
    ids, pages = list_all(seeded.store, server=server, limit=7)
    truth = seeded.truth(server=server)
    assert ids == truth
    assert len(set(ids)) == len(ids)
    assert pages == len(truth) // 7 + 1


def test_cross_server_pagination_walks_every_incident_once(seeded: Seeded) -> None:
    since, until = datetime(2026, 9, 20, 6, tzinfo=UTC), datetime(2026, 9, 22, 18, tzinfo=UTC)
    ids, pages = list_all(seeded.store, since=iso(since), until=iso(until), limit=37)
    truth = seeded.truth(since=since, until=until)
    assert len(truth) > 500
    assert ids == truth
    assert len(set(ids)) == len(ids)
    assert pages >= len(truth) // 37


def test_a_later_page_keeps_the_first_pages_window(seeded: Seeded) -> None:
    """Without `until`, the first page fixes the window; a later `now` does not shift it."""
    first = lookups.list_incidents(seeded.store, SETTINGS, limit=5, now=NOW)
    later = lookups.list_incidents(
        seeded.store, SETTINGS, limit=5, now=NOW + timedelta(days=3), continuation=first["continuation"]
    )
    truth = seeded.truth(since=NOW - timedelta(days=30), until=NOW)
    assert [i["incident_id"] for i in first["incidents"] + later["incidents"]] == truth[:10]


# --- filters: exact ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [None, "open", "resolved"])
def test_server_filters_are_exact(seeded: Seeded, status: str | None) -> None:
    server = "pg-seed-33"
    mine = seeded.truth(server=server)
    # boundaries on exact opening seconds, and a `since` half a second after one
    inside = [i for i in seeded.incidents if i.server == server]
    until = inside[10].opened_at
    since = inside[60].opened_at
    ids, _ = list_all(
        seeded.store, server=server, status=status, since=iso(since), until=iso(until), limit=200
    )
    assert ids == seeded.truth(server=server, status=status, since=since, until=until)
    late = since + timedelta(milliseconds=500)
    ids, _ = list_all(
        seeded.store, server=server, status=status, since=iso(late), until=iso(until), limit=200
    )
    assert inside[60].incident_id not in ids
    assert ids == seeded.truth(server=server, status=status, since=late, until=until)
    assert len(mine) > 100


@pytest.mark.parametrize("status", [None, "open", "resolved"])
def test_cross_server_filters_are_exact(seeded: Seeded, status: str | None) -> None:
    # `since` and `until` fall exactly on seeded opening times (a tie pair included) and inside days.
    ordered = seeded.incidents
    until, since = ordered[4000].opened_at, ordered[4700].opened_at
    ids, _ = list_all(seeded.store, since=iso(since), until=iso(until), status=status, limit=200)
    assert ids == seeded.truth(since=since, until=until, status=status)
    assert len({i.split("~")[0] for i in ids}) > 30


def test_empty_answers_are_well_formed(seeded: Seeded, counted: Any) -> None:
    page = lookups.list_incidents(seeded.store, SETTINGS, server="pg-seed-99", now=NOW)
    assert page == {"incidents": [], "continuation": None}
    page = lookups.list_incidents(
        seeded.store, SETTINGS, since="2026-08-01T00:00:00Z", until="2026-08-20T00:00:00Z", now=NOW
    )
    assert page == {"incidents": [], "continuation": None}
    assert counted() == 0


# --- bounded reads (issue 13, finding 5) ---------------------------------------------------------


@pytest.fixture
def queries(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Table query a lookup runs; more than 100 in one test fails it at once."""
    ran: list[str] = []
    real = seeded.store._query

    def spy(query_filter: str, parameters: Any, **kwargs: Any) -> Any:
        ran.append(str(parameters.get("pk")))
        assert len(ran) <= 100, "a lookup ran more than 100 Table queries"
        return real(query_filter, parameters, **kwargs)

    monkeypatch.setattr(seeded.store, "_query", spy)
    return ran


def test_a_cross_server_listing_spends_at_most_its_query_budget_then_continues(
    seeded: Seeded, queries: list[str]
) -> None:
    since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)  # 304 days
    ids: list[str] = []
    token = None
    pages = 0
    while True:
        before = len(queries)
        page = lookups.list_incidents(
            seeded.store, SETTINGS, since=iso(since), until=iso(until), limit=200, continuation=token, now=NOW
        )
        assert len(queries) - before <= lookups.MAX_DAY_QUERIES
        ids += [i["incident_id"] for i in page["incidents"]]
        token, pages = page["continuation"], pages + 1
        if token is None:
            break
        queries.clear()
    assert pages > 304 // lookups.MAX_DAY_QUERIES  # empty stretches of days cost pages, not queries
    assert ids == seeded.truth(since=since, until=until)


def test_a_signed_token_whose_window_is_too_wide_is_refused(seeded: Seeded, queries: list[str]) -> None:
    """The development key is public: a token made with it must not buy 36,525 day queries."""
    query = lookups.parse_query(limit=10)
    cursor = {
        "m": "day",
        "day": "2099-12-31",
        "since": "2000-01-01T00:00:00Z",
        "until": "2099-12-31T00:00:00Z",
    }
    token = lookups.ContinuationSigner(SETTINGS).sign(query, cursor)
    with pytest.raises(lookups.BadLookupError, match="continuation"):
        lookups.list_incidents(seeded.store, SETTINGS, limit=10, continuation=token, now=NOW)
    asked = lookups.parse_query(since="2026-09-01T00:00:00Z", limit=10)
    moved = {**cursor, "day": "2026-09-30", "since": "2026-09-02T00:00:00Z", "until": "2026-09-30T00:00:00Z"}
    token = lookups.ContinuationSigner(SETTINGS).sign(asked, moved)  # a window other than the one asked
    with pytest.raises(lookups.BadLookupError, match="continuation"):
        lookups.list_incidents(
            seeded.store, SETTINGS, since="2026-09-01T00:00:00Z", limit=10, continuation=token, now=NOW
        )
    assert queries == []


LONG_SERVER = "pg-long-01"
LONG_ENTRIES = 1_234


@pytest.fixture(scope="module")
def long_incident(seeded: Seeded) -> str:
    """An incident with 1,234 timeline entries, written straight into its partition."""
    from failover.model import Incident

    opened = T0 + timedelta(days=2)
    signals = [
        signal(SignalKind.WRITE_UNAVAILABLE, n, server=LONG_SERVER, at=opened, signal_id=f"long:{n}")
        for n in range(LONG_ENTRIES)
    ]
    incident = Incident(
        incident_id=f"{LONG_SERVER}~{compact(opened)}",
        server=LONG_SERVER,
        resource_id=signals[0].resource_id,
        status=IncidentStatus.OPEN,
        cause=Cause.UNKNOWN,
        cause_confidence=0,
        opened_at=opened,
        last_signal_at=signals[-1].observed_at,
    )
    rows = [codec.incident_to_entity(incident)] + [codec.signal_to_entity(s) for s in signals]
    for start in range(0, len(rows), 100):
        seeded.store._client.submit_transaction([("upsert", e) for e in rows[start : start + 100]])
    return incident.incident_id


def test_a_long_timeline_is_answered_in_capped_parts(seeded: Seeded, long_incident: str) -> None:
    seen: list[str] = []
    start: int | None = 0
    while start is not None:
        part = lookups.get_incident(seeded.store, SETTINGS, long_incident, start=str(start))
        assert len(part["timeline"]) <= lookups.MAX_TIMELINE
        assert (part["timeline_start"], part["timeline_total"]) == (start, LONG_ENTRIES)
        seen += [e["signal_id"] for e in part["timeline"]]
        start = part["timeline_next"]
    assert seen == [f"long:{n}" for n in range(LONG_ENTRIES)]
    with pytest.raises(lookups.BadLookupError, match="start"):
        lookups.get_incident(seeded.store, SETTINGS, long_incident, start="-1")


def test_the_timeline_page_of_a_long_incident_is_capped_with_a_more_link(
    seeded: Seeded, long_incident: str
) -> None:
    from failover.timeline_html import render_timeline_page

    page = render_timeline_page(lookups.incident_view(seeded.store, SETTINGS, long_incident), now=NOW)
    assert page.count("long:") == lookups.MAX_TIMELINE
    assert f'href="?start={lookups.MAX_TIMELINE}"' in page
    assert f"of {LONG_ENTRIES:,}" in page
    last = render_timeline_page(
        lookups.incident_view(seeded.store, SETTINGS, long_incident, start=1000), now=NOW
    )
    assert last.count("long:") == LONG_ENTRIES - 1000 and "?start=" not in last


def test_a_zone_outage_incident_links_to_its_digest_and_the_digest_lists_its_servers(azurite: str) -> None:
    """On Azurite: the digest's own rows (`~digest~{day}`) answer both the link and the digest."""
    from failover.digest import DigestPolicy
    from failover.digesting import ChannelPacer, ZoneDigest

    store = TableStore.from_connection_string(azurite, f"digest{uuid.uuid4().hex[:12]}")
    store.ensure_table()
    clock = FakeClock(T0 + timedelta(minutes=1))
    responder = Responder(store=store, clock=clock)
    rows = store.side_rows()
    digest = ZoneDigest(rows, {}, ChannelPacer(rows, clock), DigestPolicy(), clock)
    zone = ["pg-zone-a", "pg-zone-b", "pg-zone-c"]
    try:
        for n, server in enumerate([*zone, "pg-alone"]):
            region = "northeurope" if server == "pg-alone" else "westeurope"
            responder.save_probe_facts(server, view={"location": region}, observed_at=T0)
            opened = responder.record(signal(SignalKind.FAILOVER_STARTED, 10 * n, server=server))
            incident = store.get_incident(str(opened.incident_id))
            assert incident is not None
            digest.note(incident, region)
        ids = {s: f"{s}~{compact(T0 + timedelta(seconds=10 * n))}" for n, s in enumerate(zone)}
        linked = lookups.get_incident(store, SETTINGS, ids["pg-zone-b"])["digest"]
        alone = lookups.get_incident(store, SETTINGS, f"pg-alone~{compact(T0 + timedelta(seconds=30))}")
        whole = lookups.get_digest(store, SETTINGS, linked["id"])
        with pytest.raises(NotFoundError):
            lookups.get_digest(store, SETTINGS, f"westeurope~{compact(T0 + timedelta(days=3))}")
        with pytest.raises(lookups.BadLookupError):
            lookups.get_digest(store, SETTINGS, "westeurope~20261399T000000Z")
    finally:
        store._client.delete_table()

    assert linked["id"] == f"westeurope~{compact(T0)}" and linked["url"] == f"/api/digests/{linked['id']}"
    assert [m["incident_id"] for m in linked["servers"]] == [ids[s] for s in zone]
    assert alone["digest"] is None  # another region, on its own: it kept its own cards
    assert whole["servers"] == 3 and not whole["over"]
    assert [m["server"] for m in whole["windows"][0]["servers"]] == zone
