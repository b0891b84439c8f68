"""The failover drill: the whole product, for real, on one machine (or against a real server).

Layer: local tooling, never deployed. `python -m local.drill` (`make drill`):
1. starts Azurite, Redis, a PostgreSQL primary and synchronous standby, the management API
   emulator driven by them, a Teams webhook sink and the app on the local runner;
2. runs a forced failover through the management API (the real SDK) while a client writes every
   50 ms, and feeds the app what Azure sends meanwhile (Resource Health, the activity log restart
   alert, the Event Grid resource action, `is_db_alive` fired and resolved) through the runner's
   HTTP endpoints, shuffled and with duplicates; `--unplanned` kills the primary instead and sends
   nothing at all: the probes must see it alone; `--mode maintenance` has the emulator put a
   maintenance event InProgress and the platform fail the server over (the cause must come from
   the `maintenanceEvents` API), `--mode scaling` a compute scale done by failing over (HA state
   `ComputeUpdatingByFailover`); neither sends an alert;
3. lets the probes and the sweeper run, prints the incident next to what the drill measured itself,
   with a verdict per check, and stops everything it started. Exit 0 only if every check held.

`--server <resource id> --app-url <url>` is the game day: a planned or forced failover of a real
server through the management API, followed through the deployed app's lookup API.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from failover.notify.teams.report import score
from failover.timeutil import parse_iso
from local import azure_payloads as azure

log = logging.getLogger("local.drill")
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".drill"
DOWNTIME_TOLERANCE = 1.0  # seconds between the app's measurement and the drill's own client
APP_SETTINGS = {
    "PROBE_WINDOW_SECONDS": "40",
    "PROBE_ARM_INTERVAL_SECONDS": "0.5",
    "INCIDENT_QUIET_SECONDS": "8",
    "EFFECT_BACKOFF_BASE_SECONDS": "1",
}


def now() -> datetime:
    return datetime.now(timezone.utc)


class Progress:
    def __init__(self, stream: Any = sys.stdout) -> None:
        self.stream = stream
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=self.stream, flush=True)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    incident: dict[str, Any] | None = None
    checks: list[Check] = field(default_factory=list)
    client_gap: float | None = None
    topology: dict[str, str] = field(default_factory=dict)
    cards: list[dict[str, Any]] = field(default_factory=list)
    html_path: Path | None = None
    deliveries: dict[str, int] = field(default_factory=dict)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, bool(ok), detail))

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


class AppClient:
    """The app's HTTP API as Azure and people reach it: function key in a header."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["x-functions-key"] = key

    def post_alert(self, payload: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(f"{self.base_url}/api/alerts", json=payload, timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def post_event(self, event: dict[str, Any]) -> int:
        response = self.session.post(
            f"{self.base_url}/runtime/webhooks/eventgrid",
            params={"functionName": "on_resource_event"},
            headers={"aeg-event-type": "Notification"},
            json=[event],
            timeout=30,
        )
        return response.status_code

    def get(self, path: str, **params: str) -> requests.Response:
        return self.session.get(f"{self.base_url}/api/{path}", params=params, timeout=30)

    def incidents(self, server: str, since: datetime) -> list[dict[str, Any]]:
        response = self.get("incidents", server=server, since=_z(since), limit="20")
        response.raise_for_status()
        return list(response.json()["incidents"])

    def timeline_url(self, incident_id: str | None) -> str | None:
        if incident_id is None:
            return None
        return f"{self.base_url}/api/incidents/{quote(incident_id, safe='')}/timeline"

    def incident(self, incident_id: str) -> dict[str, Any]:
        response = self.get(f"incidents/{quote(incident_id, safe='')}")
        response.raise_for_status()
        return dict(response.json())


def _z(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


# --- back-to-back guard --------------------------------------------------------------------------

LAST_FAILOVERS = OUT / "last-failovers.json"  # resource id (lower-case) -> when the drill last failed it over


def guard(last_failover_at: datetime | None, at: datetime, interval: timedelta) -> str | None:
    """None when a failover may run now; else why not and when it may run again (pure).

    Microsoft asks to wait 15 to 20 minutes between test failovers: the standby is still being
    rebuilt, and a second failover before it is healthy is an outage, not a drill.
    """
    if last_failover_at is None or at - last_failover_at >= interval:
        return None
    again = last_failover_at + interval
    minutes = interval.total_seconds() / 60
    return (
        f"this server failed over at {_z(last_failover_at)}, less than {minutes:g} minutes ago"
        f" (DRILL_MIN_INTERVAL_MINUTES); it may run again at {_z(again)}; --force overrides"
    )


def _recorded_failovers() -> dict[str, str]:
    try:
        return dict(json.loads(LAST_FAILOVERS.read_text()))
    except (OSError, ValueError):
        return {}


def last_failover(
    resource_id: str, app: AppClient | None = None, server: str | None = None
) -> datetime | None:
    """The latest failover the drill ran or the app recorded for this server (None: none known)."""
    known = [parse_iso(v) for k, v in _recorded_failovers().items() if k == resource_id.lower()]
    if app is not None and server is not None:
        for incident in app.incidents(server, now() - timedelta(days=1))[:1]:
            known.append(parse_iso(incident.get("primary_restored_at") or incident["opened_at"]))
    return max(known, default=None)


def remember_failover(resource_id: str, at: datetime) -> None:
    recorded = _recorded_failovers()
    recorded[resource_id.lower()] = _z(at)
    LAST_FAILOVERS.parent.mkdir(parents=True, exist_ok=True)
    LAST_FAILOVERS.write_text(json.dumps(recorded, indent=2, sort_keys=True))


def refuse_back_to_back(
    resource_id: str, *, force: bool, app: AppClient, server: str, remember: bool
) -> None:
    """Exit with the guard's reason unless the server may fail over now (or --force); with
    `remember`, note this failover on this machine (the app records it only once it sees it)."""
    from failover.config import drill_interval_from_env

    at = now()
    reason = guard(last_failover(resource_id, app, server), at, drill_interval_from_env())
    if reason is not None and not force:
        raise SystemExit(f"refusing the drill: {reason}")
    if remember:
        remember_failover(resource_id, at)


# --- local drill ---------------------------------------------------------------------------------


def local_drill(
    *,
    unplanned: bool,
    mode: str,
    port: int,
    progress: Progress,
    redis: str = "standalone",
    force: bool = False,
) -> Report:
    from local.clients import WritingClient
    from local.stack import LOCAL_REDIS_SETTING, SERVER, start_stack

    report = Report()
    given = {LOCAL_REDIS_SETTING: redis}
    stack = start_stack(given, port=port, settings=APP_SETTINGS, progress=progress)
    client: WritingClient | None = None
    try:
        app = AppClient(stack.base_url, stack.function_key)
        client = WritingClient(stack.pair.conninfo(include_password=True)).start()
        progress("a client writes every 50 ms through the server's single endpoint")
        probe = threading.Thread(target=stack.host.run_timer_now, args=("probe_servers",), daemon=True)
        probe.start()
        progress("the probe timer is running (management API every 0.5 s, database every 0.5 s)")
        time.sleep(3)
        # The local pair is new for every drill: its own app's record is the only history.
        refuse_back_to_back(str(stack.resource_id), force=force, app=app, server=SERVER, remember=False)
        started = now()
        if unplanned:
            _kill_primary(stack, progress)
        elif mode in PLATFORM_MODES:
            _platform_failover(stack, mode, progress)
        else:
            report.deliveries = _forced_failover(stack, app, mode, started, progress)
        _sweep_while(probe, stack, seconds=120)
        client.stop()
        report.client_gap = client.longest_gap()
        progress(f"the drill's own client saw writes fail for {report.client_gap:.2f} s")
        progress("waiting for the quiet period, then the sweeper resolves the incident")
        sweep = partial(stack.host.run_timer_now, "sweep_outbox")
        incident_id = _await_resolution(
            app, SERVER, started - timedelta(minutes=1), timeout=90, every=1, sweep=sweep
        )
        progress(f"incident {incident_id}: done waiting for its resolution")
        _await_verification(stack, app, incident_id, progress)
        _collect(stack, app, incident_id, report)
        _verify(report, expected_cause="unplanned" if unplanned else mode_cause(mode), drill=True)
        _post_report_to_sink(report, stack, app.timeline_url(incident_id), progress)
    finally:
        if client is not None:
            client.stop()
        progress("stopping everything the drill started")
        stack.stop()
    return report


def _post_report_to_sink(report: Report, stack: Any, timeline_url: str | None, progress: Progress) -> None:
    """Post the scored report as a card; the drill checks that the local Teams sink received it."""
    from local.stack import SERVER

    progress(post_report(report, SERVER, stack.env, timeline_url))
    if stack.sink is not None:  # a webhook given in the environment is not ours to read back
        cards = [r.card for r in stack.sink.accepted]
        told = [c for c in cards if c and c.get("fallbackText", "").startswith(REPORT_HEADLINE)]
        report.check("report card posted to the channel", len(told) == 1, f"{len(told)} report card(s)")


REQUESTED_MODES = ("ForcedFailover", "PlannedFailover", "ForcedSwitchover", "PlannedSwitchover")
PLATFORM_MODES = ("maintenance", "scaling")  # failovers Azure starts itself, driven through the emulator


def mode_cause(mode: str) -> str:
    if mode in PLATFORM_MODES:
        return mode
    return "forced" if mode.lower().startswith("forced") else "planned"


def _platform_failover(stack: Any, mode: str, progress: Progress) -> None:
    """A failover the platform starts: no restart request, no alert sent by the drill."""
    from local.stack import RESOURCE_GROUP, SERVER

    emulator = stack.emulator
    if mode == "maintenance":
        event_id = emulator.schedule_maintenance(RESOURCE_GROUP, SERVER, start=now() + timedelta(minutes=1))
        emulator.run_maintenance(RESOURCE_GROUP, SERVER, event_id)
        progress(f"maintenance {event_id} is InProgress; the platform fails the server over (no alert sent)")
    else:
        emulator.run_scaling(RESOURCE_GROUP, SERVER)
        progress("compute scaling by failover (HA state ComputeUpdatingByFailover); no alert sent")
    emulator.wait_for(RESOURCE_GROUP, SERVER, lambda s: s.ha_state == "Healthy" and not s.busy, timeout=120)
    progress("the management API reports the server healthy again")


def _kill_primary(stack: Any, progress: Progress) -> None:
    from local import pgpair

    progress("unplanned failover: the primary is killed; no alert, no Event Grid event will be sent")
    pgpair.kill_primary(stack.pair)


def _forced_failover(
    stack: Any, app: AppClient, mode: str, started: datetime, progress: Progress
) -> dict[str, int]:
    """Start the failover through the management API and send what Azure sends meanwhile."""
    from failover.adapters.arm import ManagementApiInspector, build_client_factory, static_credential

    rid = stack.resource_id
    inspector = ManagementApiInspector(
        build_client_factory(static_credential(), base_url=stack.emulator.base_url, polling_interval=0.2)
    )
    operation = str(uuid.uuid4())
    alert_id = (
        f"/subscriptions/{rid.split('/')[2]}/providers/Microsoft.AlertsManagement/alerts/{uuid.uuid4()}"
    )
    counts = {"recorded": 0, "duplicate": 0, "ignored": 0, "event_grid": 0}
    sender = _Sender(app, counts, random.Random(20261125))
    sender.send(
        [azure.activity_log("Started", resource_id=rid, at=started, mode=mode, operation_id=operation)]
    )
    progress(f"{mode}: restart with failover requested through the management API")
    failover = threading.Thread(target=inspector.start_failover, args=(rid, mode), kwargs={"wait": True})
    failover.start()
    title = "Forced Failover Initiated" if mode.startswith("Forced") else "Planned Failover Initiated"
    degraded = azure.resource_health(
        "Degraded", resource_id=rid, at=started + timedelta(seconds=1), cause="UserInitiated", title=title
    )
    alive = partial(
        azure.is_db_alive, resource_id=rid, alert_id=alert_id, fired=started + timedelta(seconds=2)
    )
    fired = alive(resolved=None)
    sender.send([degraded, fired, degraded])
    failover.join(timeout=180)
    done = now()
    progress("the management API reports the failover done; sending the alerts that follow it")
    sender.send(
        [
            azure.activity_log("Succeeded", resource_id=rid, at=done, mode=mode, operation_id=operation),
            azure.resource_action_success(resource_id=rid, at=done, operation_id=operation),
            alive(resolved=done + timedelta(seconds=3)),
            azure.resource_health(
                "Available", resource_id=rid, at=done + timedelta(seconds=4), cause=None, title="Available"
            ),
            fired,  # a late duplicate of the fired notification
        ],
        duplicates=True,
    )
    progress(
        f"sent alerts and events: {counts['recorded']} recorded, {counts['duplicate']} duplicates,"
        f" {counts['event_grid']} Event Grid deliveries"
    )
    return counts


@dataclass
class _Sender:
    app: AppClient
    counts: dict[str, int]
    rng: random.Random

    def send(self, payloads: list[dict[str, Any]], *, duplicates: bool = False) -> None:
        batch = list(payloads) + (
            self.rng.sample(payloads, k=max(1, len(payloads) // 2)) if duplicates else []
        )
        self.rng.shuffle(batch)
        for payload in batch:
            if "eventType" in payload:
                self.app.post_event(payload)
                self.counts["event_grid"] += 1
            else:
                answer = self.app.post_alert(payload)
                self.counts[answer["status"]] = self.counts.get(answer["status"], 0) + 1


def _await_resolution(
    app: AppClient, server: str, since: datetime, *, timeout: float, every: float, sweep: Callable[[], None]
) -> str | None:
    """Until the server's latest incident since `since` resolves (bounded): its id, or the open one's."""
    deadline = time.monotonic() + timeout
    incident_id = None
    while time.monotonic() < deadline:
        sweep()
        found = app.incidents(server, since)
        if found:
            incident_id = str(found[0]["incident_id"])
            if found[0]["status"] == "resolved":
                return incident_id
        time.sleep(every)
    return incident_id


def _sweep_while(probe: threading.Thread, stack: Any, *, seconds: float) -> None:
    """Run the sweeper every second while the probe samples (in Azure both timers run every minute,
    side by side): verification follows its own schedule (every 2 s at first), bounded in time."""
    deadline = time.monotonic() + seconds
    while probe.is_alive() and time.monotonic() < deadline:
        stack.host.run_timer_now("sweep_outbox")
        probe.join(timeout=1)


VERIFICATION_CARD = "failed after the failover"  # the headline of the one verification failure card
VERIFY_WITHIN = timedelta(seconds=60)  # every verification step decided this soon after primary restored


def _await_verification(stack: Any, app: AppClient, incident_id: str | None, progress: Progress) -> None:
    """Run the sweeper until every verification step is decided, bounded in time."""
    if incident_id is None:
        return
    progress("the sweeper verifies the new topology step by step")
    deadline = time.monotonic() + VERIFY_WITHIN.total_seconds()
    while time.monotonic() < deadline:
        steps = app.incident(incident_id).get("verification") or []
        if steps and all(s["status"] != "pending" for s in steps):
            progress(
                "every verification step decided: " + ", ".join(f"{s['check']} {s['status']}" for s in steps)
            )
            return
        stack.host.run_timer_now("sweep_outbox")
        time.sleep(1)
    progress("verification did not finish in time")


def _verification_checks(report: Report, incident: dict[str, Any]) -> None:
    """One check per step: decided (not pending) within `VERIFY_WITHIN` of primary restored."""
    steps = incident.get("verification") or []
    report.check("verification steps recorded", bool(steps), f"{len(steps)} steps")
    restored = incident.get("primary_restored_at")
    for step in steps:
        after = (parse_iso(step["at"]) - parse_iso(restored)).total_seconds() if restored else None
        report.check(
            f"verification {step['check']}",
            step["status"] != "pending" and after is not None and after <= VERIFY_WITHIN.total_seconds(),
            f"{step['status']} {_seconds(after)} after primary restored",
        )


def _collect(stack: Any, app: AppClient, incident_id: str | None, report: Report) -> None:
    from failover.adapters.redis_cache import RedisTopologyCache, redis_client_factory

    if incident_id is None:
        return
    report.incident = app.incident(incident_id)
    OUT.mkdir(exist_ok=True)
    page = app.get(f"incidents/{quote(incident_id, safe='')}/timeline")
    report.html_path = OUT / f"timeline-{incident_id.replace('~', '_')}.html"
    report.html_path.write_bytes(page.content)
    cache = RedisTopologyCache(
        redis_client_factory(stack.env["REDIS_URL"], entra_identity=None, cluster="auto"),
        prefix=stack.env.get("REDIS_PREFIX", "pgha:"),
    )
    report.topology = dict(cache.read(report.incident["server"]))
    report.topology["epoch"] = str(cache.read_epoch(report.incident["server"]))
    if stack.sink is not None:
        report.cards = [r.card for r in stack.sink.accepted if r.card]


def _verify(report: Report, *, expected_cause: str, drill: bool) -> None:
    incident = report.incident
    report.check(
        "one incident recorded", incident is not None, incident["incident_id"] if incident else "none"
    )
    if incident is None:
        return
    report.check(
        "cause", incident["cause"] == expected_cause, f"{incident['cause']} (expected {expected_cause})"
    )
    before, after = incident["primary_zone_before"], incident["primary_zone_after"]
    report.check("primary zone swapped", bool(before and after and before != after), f"{before} -> {after}")
    report.check("resolved", incident["status"] == "resolved", incident["status"])
    timeline = incident.get("timeline", [])
    ordered = [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)
    report.check("timeline in time order", ordered, f"{len(timeline)} entries")
    measured = incident.get("write_downtime_seconds")
    if drill and report.client_gap is not None:
        close = measured is not None and abs(measured - report.client_gap) <= DOWNTIME_TOLERANCE
        detail = f"app measured {_seconds(measured)}, drill client {report.client_gap:.2f} s (tolerance 1 s)"
        report.check("client-observed downtime", close, detail)
    else:
        report.check("client-observed downtime measured", measured is not None, _seconds(measured))
    if drill:
        topology = report.topology
        report.check(
            "Redis topology refreshed",
            topology.get("primary_zone") == after and topology.get("incident_id") == incident["incident_id"],
            f"primary zone {topology.get('primary_zone')}, version {topology.get('version')},"
            f" epoch {topology.get('epoch')}",
        )
        failed = [s for s in incident.get("verification") or [] if s["status"] == "failed"]
        told = [c for c in report.cards if VERIFICATION_CARD in json.dumps(c)]
        cards = len(report.cards) - len(told)
        report.check("Teams cards: one per transition", 1 <= cards <= 3, f"{cards} cards")
        detail = f"{len(told)} card(s) for {len(failed)} failed step(s)"
        report.check("verification failures: one card", len(told) == (1 if failed else 0), detail)
    sent = [n for n in incident.get("notifications", []) if n["status"] == "done"]
    report.check("notifications delivered", bool(sent), ", ".join(n["transition"] for n in sent) or "none")
    if drill:  # Azure rebuilds a real standby in minutes: a game day prints the steps, as decided so far
        _verification_checks(report, incident)


def _seconds(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f} s"


# --- game day ------------------------------------------------------------------------------------


def game_day(
    *,
    resource_id: str,
    app_url: str,
    key: str,
    mode: str,
    timeout: float,
    progress: Progress,
    force: bool = False,
) -> Report:
    """Fail over a real server through the management API and follow what the deployed app records."""
    from failover.adapters.arm import (
        ManagementApiInspector,
        build_client_factory,
        default_credential,
        static_credential,
    )
    from failover.sources.resources import flexible_server_from_resource_id
    from failover.urls import is_loopback_http

    parsed = flexible_server_from_resource_id(resource_id)
    if parsed is None:
        raise SystemExit("--server must be a Microsoft.DBforPostgreSQL/flexibleServers resource id")
    rid, server = parsed
    endpoint = os.environ.get("ARM_ENDPOINT")
    credential: Any = static_credential() if is_loopback_http(endpoint) else default_credential()
    inspector = ManagementApiInspector(
        build_client_factory(credential, base_url=endpoint, polling_interval=2)
    )
    app = AppClient(app_url, key)
    report = Report()
    before = inspector.get_server(rid)
    zones = f"primary zone {before.primary_zone}, standby zone {before.standby_zone}"
    progress(f"{server}: {zones}, HA {before.ha_state}")
    started = now()
    refuse_back_to_back(rid, force=force, app=app, server=server, remember=True)
    progress(f"starting a {mode} through the management API")
    inspector.start_failover(rid, mode, wait=True)
    after = inspector.get_server(rid)
    progress(f"done: primary zone {after.primary_zone}, standby zone {after.standby_zone}")
    every = 1 if is_loopback_http(endpoint) else 5
    since = started - timedelta(minutes=2)
    incident_id = _await_resolution(app, server, since, timeout=timeout, every=every, sweep=lambda: None)
    if incident_id is not None:
        report.incident = app.incident(incident_id)
    _verify(report, expected_cause=mode_cause(mode), drill=False)
    report.check(
        "the app saw the zones the management API reports",
        report.incident is not None and report.incident["primary_zone_after"] == after.primary_zone,
        f"management API now says zone {after.primary_zone}",
    )
    progress(post_report(report, server, os.environ, app.timeline_url(incident_id)))
    return report


# --- the report card ------------------------------------------------------------------------------

REPORT_HEADLINE = "Failover drill "  # how every report card's headline (and fallback text) starts


def post_report(report: Report, server: str, env: Mapping[str, str], timeline_url: str | None) -> str:
    """Post the scored report as one card through the Teams channel the app posts with (TEAMS_ROUTES,
    else TEAMS_WEBHOOK_URL, from `env`); returns what happened, in words (never the URL)."""
    from failover.notify.channel import ChannelRefusedError, ChannelUnavailableError
    from failover.notify.http import JsonPoster
    from failover.notify.teams import TeamsChannel
    from failover.notify.teams.card import envelope
    from failover.notify.teams.report import report_card
    from failover.notify_policy import parse_routes

    routes = parse_routes(env.get("TEAMS_ROUTES"), setting="TEAMS_ROUTES")
    with requests.Session() as session:
        channel = TeamsChannel(JsonPoster(session), default_url=env.get("TEAMS_WEBHOOK_URL"), routes=routes)
        target = channel.target_for(server)
        if target is None:
            return (
                "report card not posted: no Teams webhook for this server (TEAMS_WEBHOOK_URL, TEAMS_ROUTES)"
            )
        checks = [(c.name, c.ok, c.detail) for c in report.checks]
        card = report_card(server=server, incident=report.incident, checks=checks, timeline_url=timeline_url)
        try:
            channel.send(target, envelope(card))
        except (ChannelRefusedError, ChannelUnavailableError) as exc:
            return f"report card not posted: {exc}"
    return "report card posted to the Teams channel"


# --- output --------------------------------------------------------------------------------------


def print_report(report: Report, out: Callable[[str], None] = print) -> None:
    incident = report.incident
    out("")
    out("=" * 78)
    if incident is None:
        out("No incident was recorded.")
    else:
        out(f"Incident {incident['incident_id']}  ({incident['status']}, cause {incident['cause']})")
        out(
            f"  primary zone     {incident['primary_zone_before']} -> {incident['primary_zone_after']}"
            f"   standby zone now {incident['standby_zone_after']}"
        )
        out(f"  opened           {incident['opened_at']}")
        out(f"  primary restored {incident['primary_restored_at']}")
        out(f"  resolved         {incident['resolved_at']}")
        gap = f"{report.client_gap:.2f} s" if report.client_gap is not None else "n/a"
        out(f"  write downtime   app {_seconds(incident['write_downtime_seconds'])}   drill client {gap}")
        out(f"  signals          {incident['signal_count']}")
        out("")
        out("  Timeline")
        for entry in incident.get("timeline", []):
            out(
                f"    {entry['at'][11:23]}  {entry['source']:<13} {entry['kind']:<22} {entry['summary'][:70]}"
            )
        out("")
        out("  Notifications")
        for note in incident.get("notifications", []):
            out(f"    {note['transition']:<17} {note['status']:<10} {note['at']}")
        out("")
        out("  Score")
        for title, words in score(incident)[1:]:
            out(f"    {title:<32} {words[:100]}")
    if report.topology:
        out("")
        out("  Redis topology   " + ", ".join(f"{k}={v}" for k, v in sorted(report.topology.items())))
    if report.cards:
        out(f"  Teams cards      {len(report.cards)} received")
        for card in report.cards:
            out(f"    - {card.get('fallbackText') or '(card)'}")
    if report.deliveries:
        out("  Deliveries       " + ", ".join(f"{k} {v}" for k, v in report.deliveries.items()))
    if report.html_path:
        out(f"  HTML timeline    {report.html_path}")
    out("")
    out("  Checks")
    for check in report.checks:
        out(f"    [{'PASS' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    out("=" * 78)
    out("DRILL PASSED" if report.passed else "DRILL FAILED")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.drill", description=__doc__.splitlines()[0])
    parser.add_argument("--unplanned", action="store_true", help="kill the primary; send no alert at all")
    parser.add_argument(
        "--mode",
        default="ForcedFailover",
        choices=[*REQUESTED_MODES, *PLATFORM_MODES],
        help="a failover requested through the management API, or one the platform starts "
        "(maintenance, scaling: local drill only)",
    )
    parser.add_argument("--port", type=int, default=0, help="runner port (default: a free one)")
    parser.add_argument(
        "--redis",
        choices=["standalone", "cluster"],
        default=os.environ.get("LOCAL_REDIS") or "standalone",
        help="local Redis: one redis-server, or a 3-primary Redis Cluster (default: $LOCAL_REDIS)",
    )
    parser.add_argument("--server", help="game day: the resource id of a real flexible server")
    parser.add_argument("--app-url", help="game day: the deployed app's base URL")
    parser.add_argument("--timeout", type=float, default=900, help="game day: seconds to wait for resolution")
    parser.add_argument(
        "--force",
        action="store_true",
        help="fail over even within DRILL_MIN_INTERVAL_MINUTES of the last failover",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    common: Any = {"mode": args.mode, "progress": Progress(), "force": args.force}
    if args.server:
        key = os.environ.get("DRILL_FUNCTION_KEY", "")
        if not args.app_url or not key:
            parser.error("game day needs --app-url and the function key in DRILL_FUNCTION_KEY")
        if args.mode in PLATFORM_MODES:
            parser.error(f"--mode {args.mode} is a platform failover: the local drill only")
        report = game_day(
            resource_id=args.server, app_url=args.app_url, key=key, timeout=args.timeout, **common
        )
    else:
        report = local_drill(unplanned=args.unplanned, port=args.port, redis=args.redis, **common)
    print_report(report)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
