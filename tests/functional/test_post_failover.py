"""Issue 16 wired into the app: a failover's verification steps reach `GET /api/incidents/{id}`
after the sweeper runs, and a 60-server zone outage through the Responder and the notify pipeline
makes a handful of Teams posts instead of 180. In-memory store, fake management API and database,
a recording Teams channel, a simulated clock; the registered HTTP function answers the lookup."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import azure.functions as func

from failover.adapters.memory_store import MemoryStore
from failover.config import Settings
from failover.incidents import Policy
from failover.model import Cause, SignalKind, Source, Transition
from failover.notify.channel import Links
from failover.notify.pipeline import NotifyPipeline
from failover.notify.teams.card import envelope, render_card
from failover.ports import DbObservation, ServerView
from failover.presentation import IncidentView
from failover.service import Integrations, Responder
from failover.verification import VerifyPolicy
from failover.verifying import Verifying
from failover.wiring import Runtime, build_digest
from handlers._runtime import set_runtime
from tests.builders import T0, signal
from tests.conftest import FakeClock
from tests.integration import app_harness as app

SERVER = "pg-prod-01"
SETTINGS = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})


class RebuildingInspector:
    """The management API: the standby rebuilds (HA Healthy) from the second look on; zones 2/1."""

    def __init__(self) -> None:
        self.looks = 0

    def get_server(self, resource_id: str) -> ServerView:
        self.looks += 1
        ha = "Healthy" if self.looks >= 2 else "ReplicatingData"
        return ServerView(
            resource_id, SERVER, "westeurope", "Ready", "ZoneRedundant", ha, "2", "1", None, "Primary"
        )


class WritableDatabase:
    def inspect(self, server: str) -> DbObservation:
        return DbObservation(reachable=True, writable=True, in_recovery=False)


def _get_incident(incident_id: str) -> dict[str, Any]:
    request = func.HttpRequest(
        "GET",
        f"http://localhost:7071/api/incidents/{incident_id}",
        headers={},
        params={},
        route_params={"incident_id": incident_id},
        body=b"",
    )
    response = app.call("get_incident", req=request)
    assert response.status_code == 200, response.get_body()
    body: dict[str, Any] = json.loads(response.get_body())
    return body


def test_a_recorded_failover_gets_its_verification_steps_after_the_sweeper_runs():
    clock = FakeClock(T0 + timedelta(seconds=1))
    store = MemoryStore()
    inspector = RebuildingInspector()
    cards: list[tuple[str, tuple[str, ...]]] = []
    verifying = Verifying(
        inspector=inspector,  # type: ignore[arg-type]  # a fake of the one call verification makes
        database=WritableDatabase(),
        rows=store.side_rows(),
        policy=VerifyPolicy(app_zones=("1",)),  # the new primary is in zone 2: one failed step
        notify=lambda incident, steps: cards.append((incident.incident_id, tuple(s.check for s in steps))),
        clock=clock,
    )
    responder = Responder(store=store, clock=clock, integrations=Integrations(verifying=verifying))
    set_runtime(Runtime(settings=SETTINGS, store=store, responder=responder, clock=clock))  # type: ignore[arg-type]
    try:
        opened = responder.record(signal(SignalKind.FAILOVER_STARTED, 0, cause=Cause.FORCED, confidence=3))
        incident_id = opened.incident_id
        assert incident_id is not None
        assert _get_incident(incident_id)["verification"] == []  # nothing to verify before restored

        clock.now = T0 + timedelta(seconds=12)
        responder.record(signal(SignalKind.WRITE_RESTORED, 9, source=Source.DB_PROBE))
        assert responder.sweep().verified == 1  # the first look: the standby is still rebuilding
        first = {s["check"]: s["status"] for s in _get_incident(incident_id)["verification"]}
        assert first["standby_healthy"] == "pending" and first["writer_writable"] == "passed"

        for _ in range(3):  # the next look is due 2 s later; once complete, no look is scheduled
            clock.advance(3)
            responder.sweep()
        body = _get_incident(incident_id)
    finally:
        set_runtime(None)

    steps = {s["check"]: s for s in body["verification"]}
    assert {c: s["status"] for c, s in steps.items()} == {
        "writer_writable": "passed",
        "standby_healthy": "passed",
        "replicas_following": "skipped",
        "slots_synced": "skipped",
        "statistics": "passed",
        "zone_alignment": "failed",
    }
    assert "standby rebuilt in zone 1" in steps["standby_healthy"]["detail"]
    assert all(s["at"].endswith("Z") for s in steps.values())
    assert inspector.looks == 2  # complete after the second look: the sweeper stopped looking
    assert cards == [(incident_id, ("zone_alignment",))]  # one card for the failures, not one per check
    assert not [r for r in store.entities("~outbox") if r["kind"] == "verify"]
    assert body["digest"] is None  # a failover on its own: no zone-outage digest to link to


@dataclass
class RecordingTeams:
    """The Teams channel with the real card rendering; sends are recorded at the simulated time."""

    clock: FakeClock
    name: str = "teams"
    posts: list[tuple[datetime, Mapping[str, Any]]] = field(default_factory=list)

    def target_for(self, server: str) -> str | None:
        return "https://example.invalid/workflows/ops"

    def render(self, view: IncidentView, transition: Transition, links: Links) -> Mapping[str, Any]:
        return envelope(render_card(view, transition, timeline_url=None, portal_url=None))

    def send(self, target: str, message: Mapping[str, Any]) -> None:
        self.posts.append((self.clock(), message))


def _zone_outage() -> tuple[MemoryStore, RecordingTeams, Responder, list[str]]:
    """60 servers of one region fail over within 90 s and come back; the sweeper runs every second."""
    rng = random.Random(16)
    clock = FakeClock(T0)
    store = MemoryStore()
    teams = RecordingTeams(clock)
    integrations = Integrations(notify=NotifyPipeline(channels={"teams": teams}))
    build_digest(SETTINGS, store, integrations, clock)
    responder = Responder(
        store=store, clock=clock, policy=Policy(quiet=timedelta(seconds=120)), integrations=integrations
    )
    servers = [f"pg-zone-{i:02d}" for i in range(60)]
    plan: list[tuple[datetime, Any]] = []
    for server in servers:  # the region comes from the management API's view, as the probe keeps it
        responder.save_probe_facts(
            server, view={"location": "westeurope"}, observed_at=T0 - timedelta(minutes=5)
        )
        down = rng.uniform(0, 90)
        up = down + rng.uniform(60, 120)
        failed = signal(SignalKind.HEALTH_DEGRADED, down, server=server, cause=Cause.UNPLANNED, confidence=2)
        back = signal(SignalKind.HEALTH_AVAILABLE, up, server=server)
        plan += [(failed.received_at, failed), (back.received_at, back)]
    plan.sort(key=lambda item: item[0])

    end = plan[-1][0] + timedelta(minutes=5)
    while clock.now <= end:  # one simulated second at a time: deliveries, then the sweeper
        while plan and plan[0][0] <= clock.now:
            responder.record(plan.pop(0)[1])
        responder.sweep()
        clock.advance(1)
    return store, teams, responder, servers


def test_a_60_server_zone_outage_through_the_responder_makes_at_most_10_posts_at_1_per_second():
    store, teams, _, servers = _zone_outage()
    per_second: dict[datetime, int] = {}
    named: set[str] = set()
    for at, message in teams.posts:
        per_second[at.replace(microsecond=0)] = per_second.get(at.replace(microsecond=0), 0) + 1
        text = json.dumps(message)
        named.update(s for s in servers if s in text)
    assert len(teams.posts) <= 10  # the old code: 180 cards (one per server per transition)
    assert named == set(servers)
    assert max(per_second.values()) == 1
    states = {i.status.value for s in servers for i in _incidents(store, s)}
    assert states == {"resolved"}
    headlines = [json.dumps(m) for _, m in teams.posts]
    assert sum("Zone outage in westeurope is over" in h for h in headlines) == 1


def _incidents(store: MemoryStore, server: str) -> list[Any]:
    page = store.incidents_of_server(server, since=None, until=None, status=None, limit=10, after=None)
    return list(page.incidents)


def _call(name: str, path: str, route: dict[str, str]) -> func.HttpResponse:
    request = func.HttpRequest(
        "GET", f"http://localhost:7071/api/{path}", headers={}, params={}, route_params=route, body=b""
    )
    response: func.HttpResponse = app.call(name, req=request)
    return response


def test_every_servers_timeline_links_to_the_zone_digest_that_told_its_story():
    store, _, responder, servers = _zone_outage()
    set_runtime(Runtime(settings=SETTINGS, store=store, responder=responder, clock=responder.clock))  # type: ignore[arg-type]
    try:
        links = {}
        for server in servers:
            incident_id = _incidents(store, server)[0].incident_id
            links[incident_id] = _get_incident(incident_id)["digest"]
        some_id = sorted(links)[7]
        page = _call("get_incident_timeline", f"incidents/{some_id}/timeline", {"incident_id": some_id})
        digest_id = links[some_id]["id"]
        found = _call("get_digest", f"digests/{digest_id}", {"digest_id": digest_id})
        unknown = _call("get_digest", "digests/x", {"digest_id": "northeurope~20261125T071600Z"})
        malformed = _call("get_digest", "digests/x", {"digest_id": "../../etc~passwd"})
    finally:
        set_runtime(None)

    assert {link["id"] for link in links.values()} == {digest_id} and digest_id.startswith("westeurope~")
    for incident_id, link in links.items():  # every server's JSON names the digest and the others in it
        assert link["url"] == f"/api/digests/{digest_id}"
        assert link["window"] == f"{digest_id}~w0"
        assert {m["server"] for m in link["servers"]} == set(servers)
        assert incident_id in {m["incident_id"] for m in link["servers"]}
    html = page.get_body().decode()
    assert page.status_code == 200
    assert f'href="../../digests/{digest_id}"' in html  # the page links to the digest ...
    others = [i for i in links if i != some_id]
    assert all(f'href="../{i}/timeline"' in html for i in others)  # ... and to every other server's page
    assert f"{some_id} (this page)" in html
    body = json.loads(found.get_body())
    assert found.status_code == 200 and body["id"] == digest_id and body["servers"] == 60 and body["over"]
    assert [len(w["servers"]) for w in body["windows"]] == [60]
    assert {m["timeline"] for m in body["windows"][0]["servers"]} == {
        f"/api/incidents/{i}/timeline" for i in links
    }
    assert unknown.status_code == 404 and malformed.status_code == 400
