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
It must not fail a server over within DRILL_MIN_INTERVAL_MINUTES of its last failover (unless
`--force`), wait without a bound, or leave anything it started running.
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
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

import requests

from failover.adapters import arm
from failover.cli import key_values, table, utc
from failover.config import drill_interval_from_env
from failover.notify.channel import ChannelRefusedError, ChannelUnavailableError
from failover.notify.http import JsonPoster
from failover.notify.teams import TeamsChannel
from failover.notify.teams.card import envelope
from failover.notify.teams.report import report_card, score
from failover.notify_policy import parse_routes
from failover.presentation import format_duration
from failover.sources.resources import flexible_server_from_resource_id
from failover.timeutil import iso, parse_iso
from failover.urls import is_loopback_http
from failover.wiring import utc_now as now
from local import azure_payloads as azure
from local import pgpair
from local.clients import WritingClient
from local.stack import LOCAL_REDIS_SETTING, RESOURCE_GROUP, SERVER, start_stack

OUT = Path(__file__).resolve().parent.parent / ".drill"
LAST_FAILOVERS = OUT / "last-failovers.json"  # resource id (lower-case) -> when the drill last failed it over
DOWNTIME_TOLERANCE = 1.0  # seconds between the app's measurement and the drill's own client
VERIFICATION_CARD = "failed after the failover"  # the headline of the one verification failure card
VERIFY_WITHIN = timedelta(seconds=60)  # every verification step decided this soon after primary restored
REPORT_HEADLINE = "Failover drill "  # how every report card's headline (and fallback text) starts
REQUESTED_MODES = ("ForcedFailover", "PlannedFailover", "ForcedSwitchover", "PlannedSwitchover")
PLATFORM_MODES = ("maintenance", "scaling")  # failovers Azure starts itself, driven through the emulator
APP_SETTINGS = {
    "PROBE_WINDOW_SECONDS": "40",
    "PROBE_ARM_INTERVAL_SECONDS": "0.5",
    "INCIDENT_QUIET_SECONDS": "8",
    "EFFECT_BACKOFF_BASE_SECONDS": "1",
}
Incident = dict[str, Any]  # the incident's public JSON, as the lookup API answers it
T = TypeVar("T")
Sweep = Callable[[], object]  # runs the sweeper timer now (a game day: nothing, the app's own timer runs)


def mode_cause(mode: str) -> str:
    if mode in REQUESTED_MODES:
        return "forced" if mode.startswith("Forced") else "planned"
    return mode  # unplanned, or a failover the platform starts


class Progress:
    """Prints each step with the seconds since the drill started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)


class Check(NamedTuple):
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    cause: str  # the cause the incident must have
    incident: Incident | None = None
    checks: list[Check] = field(default_factory=list)
    client_gap: float | None = None  # local drill: the longest write outage its own client saw
    arm_zone: str | None = None  # game day: the primary zone the management API reports after
    topology: dict[str, str] = field(default_factory=dict)
    cards: list[dict[str, Any]] = field(default_factory=list)
    html_path: Path | None = None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


class AppClient:
    """The app's HTTP API as Azure and people reach it: function key in a header."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["x-functions-key"] = key

    def post(self, payload: dict[str, Any]) -> str:
        """Deliver what Azure sends: an Event Grid event as its webhook does ("event_grid"), or an alert
        as an action group does (then the app's answer: recorded, duplicate or ignored)."""
        if "eventType" in payload:
            url = f"{self.base_url}/runtime/webhooks/eventgrid?functionName=on_resource_event"
            self.session.post(url, headers={"aeg-event-type": "Notification"}, json=[payload], timeout=30)
            return "event_grid"
        response = self.session.post(f"{self.base_url}/api/alerts", json=payload, timeout=30)
        response.raise_for_status()
        return str(response.json()["status"])

    def get(self, path: str, **params: str | None) -> requests.Response:
        response = self.session.get(f"{self.base_url}/api/{path}", params=params, timeout=30)
        response.raise_for_status()
        return response

    def latest(self, server: str, since: datetime) -> Incident | None:
        """The server's latest incident since `since`, in full (None: none)."""
        found = self.get("incidents", server=server, since=iso(since), limit="1").json()["incidents"]
        return dict(self.get(_path(found[0])).json()) if found else None

    def settled(self, server: str, since: datetime, *, verified: bool, **wait: Any) -> Incident | None:
        """The server's latest incident since `since` once resolved (with `verified`, once every step
        verifying the new topology is decided too); else as `_poll`, which bounds the wait, last saw it."""

        def done(incident: Incident | None) -> bool:
            steps = (incident or {}).get("verification") or []
            decided = bool(steps) and all(s["status"] != "pending" for s in steps)
            return incident is not None and incident["status"] == "resolved" and (decided or not verified)

        return _poll(partial(self.latest, server, since), done, **wait)

    def timeline_url(self, incident: Incident | None) -> str | None:
        return f"{self.base_url}/api/{_path(incident)}/timeline" if incident else None


def _path(incident: Incident) -> str:
    return f"incidents/{quote(incident['incident_id'], safe='')}"


def _poll(
    look: Callable[[], T], done: Callable[[T], object], *, timeout: float, every: float, sweep: Sweep
) -> T:
    """The drill's one wait: `sweep()` (the sweeper, or nothing), then `look()`, every `every` s
    until `done` holds for what it saw or `timeout` seconds pass; returns the last look."""
    deadline = time.monotonic() + timeout
    while True:
        sweep()
        seen = look()
        if done(seen) or time.monotonic() >= deadline:
            return seen
        time.sleep(every)


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
        f"this server failed over at {iso(last_failover_at)}, less than {minutes:g} minutes ago"
        f" (DRILL_MIN_INTERVAL_MINUTES); it may run again at {iso(again)}; --force overrides"
    )


def refuse_back_to_back(resource_id: str, *, app: AppClient, force: bool, remember: bool) -> None:
    """Exit with the guard's reason unless the server may fail over now (or --force). Its last
    failover is the latest this machine ran (LAST_FAILOVERS) or the app recorded; with `remember`,
    note this one in LAST_FAILOVERS (the app records it only once it sees it)."""
    try:
        recorded = dict(json.loads(LAST_FAILOVERS.read_text()))
    except (OSError, ValueError):
        recorded = {}
    key, at = resource_id.lower(), now()
    known = [parse_iso(recorded[key])] if key in recorded else []
    latest = app.latest(resource_id.rsplit("/", 1)[-1], at - timedelta(days=1))  # the server's name
    known += [parse_iso(latest.get("primary_restored_at") or latest["opened_at"])] if latest else []
    reason = guard(max(known, default=None), at, drill_interval_from_env())
    if reason is not None and not force:
        raise SystemExit(f"refusing the drill: {reason}")
    if remember:
        recorded[key] = iso(at)
        LAST_FAILOVERS.parent.mkdir(parents=True, exist_ok=True)
        LAST_FAILOVERS.write_text(json.dumps(recorded, indent=2, sort_keys=True))


def local_drill(*, mode: str, port: int, redis: str, force: bool, progress: Progress) -> Report:
    report = Report(cause=mode_cause(mode))
    stack = start_stack({LOCAL_REDIS_SETTING: redis}, port=port, settings=APP_SETTINGS, progress=progress)
    client = WritingClient(stack.pair.conninfo(include_password=True))
    try:
        app = AppClient(stack.base_url, stack.function_key)
        sweep = partial(stack.host.run_timer_now, "sweep_outbox")  # the sweeper timer, run now
        client.start()
        probe = threading.Thread(target=stack.host.run_timer_now, args=("probe_servers",), daemon=True)
        probe.start()
        progress("a client writes every 50 ms through the server's single endpoint; the probe timer runs")
        time.sleep(3)
        # The local pair is new for every drill: its own app's record is the only history.
        refuse_back_to_back(str(stack.resource_id), app=app, force=force, remember=False)
        started = now()
        if mode == "unplanned":
            progress("unplanned failover: the primary is killed; no alert, no Event Grid event will be sent")
            pgpair.kill_primary(stack.pair)
        elif mode in PLATFORM_MODES:
            _platform_failover(stack, mode, progress)
        else:
            _requested_failover(stack, app, mode, started, progress)
        # In Azure both timers run every minute, side by side: the sweeper runs while the probe samples.
        _poll(probe.is_alive, lambda alive: not alive, timeout=120, every=1, sweep=sweep)
        client.stop()
        report.client_gap, _, _ = client.gap_within()
        progress(f"the drill's own client saw writes fail for {report.client_gap:.2f} s")
        progress("waiting for the quiet period: the sweeper resolves the incident, verifies the topology")
        wait = {"timeout": 90 + VERIFY_WITHIN.total_seconds(), "every": 1, "sweep": sweep}
        report.incident = app.settled(SERVER, started - timedelta(minutes=1), verified=True, **wait)
        if report.incident is not None:
            _collect(stack, app, report, progress)
        _verify(report)
        progress(post_report(report, SERVER, stack.env, app.timeline_url(report.incident)))
        cards = [r.card for r in stack.sink.accepted if r.card]  # the incident's, then the report's
        posted = sum(c.get("fallbackText", "").startswith(REPORT_HEADLINE) for c in cards)
        report.checks.append(Check("report card posted to the channel", posted == 1, f"{posted} card(s)"))
    finally:
        client.stop()
        progress("stopping everything the drill started")
        stack.stop()
    return report


def _platform_failover(stack: Any, mode: str, progress: Progress) -> None:
    """A failover the platform starts: no restart request, no alert sent by the drill."""
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


def _requested_failover(stack: Any, app: AppClient, mode: str, started: datetime, progress: Progress) -> None:
    """Start the failover through the management API and send what Azure sends meanwhile."""
    rid, operation, second = stack.resource_id, str(uuid.uuid4()), timedelta(seconds=1)
    restart = partial(azure.activity_log, resource_id=rid, mode=mode, operation_id=operation)
    alive = partial(azure.is_db_alive, resource_id=rid, fired=started + 2 * second)
    health = partial(azure.resource_health, resource_id=rid)
    title = "Forced Failover Initiated" if mode.startswith("Forced") else "Planned Failover Initiated"
    degraded = health("Degraded", at=started + second, cause="UserInitiated", title=title)
    fired = alive(resolved=None)
    counts, rng = Counter[str](), random.Random(20261125)

    def send(batch: list[Any], duplicates: bool = False) -> None:
        """In a shuffled order, and half of them twice with `duplicates`."""
        batch += rng.sample(batch, k=max(1, len(batch) // 2)) if duplicates else []
        rng.shuffle(batch)
        counts.update(app.post(payload) for payload in batch)

    send([restart("Started", at=started)])
    progress(f"{mode}: restart with failover requested through the management API")
    failover = threading.Thread(target=_arm(stack.emulator.base_url, 0.2).start_failover, args=(rid, mode))
    failover.start()
    send([degraded, fired, degraded])
    failover.join(timeout=180)
    done = now()
    progress("the management API reports the failover done; sending the alerts that follow it")
    action = azure.resource_action_success(resource_id=rid, at=done, operation_id=operation)
    resolved = alive(resolved=done + 3 * second)
    available = health("Available", at=done + 4 * second, cause=None, title="Available")
    send([restart("Succeeded", at=done), action, resolved, available, fired], duplicates=True)  # fired: late
    progress(f"sent alerts and events, counted by the app's answer: {dict(counts)}")


def _arm(endpoint: str | None, polling_interval: float) -> Any:
    """The product's management API client (the real SDK): a static token for the loopback
    emulator, Azure's default credential anywhere else."""
    credential = arm.static_credential() if is_loopback_http(endpoint) else arm.default_credential()
    factory = arm.build_client_factory(credential, base_url=endpoint, polling_interval=polling_interval)
    return arm.ManagementApiInspector(factory)


def _collect(stack: Any, app: AppClient, report: Report, progress: Progress) -> None:
    """What the drill shows next to the incident: its HTML timeline (saved under .drill/), the
    Redis topology and the Teams cards received."""
    from failover.adapters.redis_cache import RedisTopologyCache, redis_client_factory

    incident = report.incident or {}
    steps = ", ".join(f"{s['check']} {s['status']}" for s in incident.get("verification") or [])
    progress(f"incident {incident['incident_id']} {incident['status']}; verification: {steps or 'none'}")
    OUT.mkdir(exist_ok=True)
    report.html_path = OUT / f"timeline-{incident['incident_id'].replace('~', '_')}.html"
    report.html_path.write_bytes(app.get(f"{_path(incident)}/timeline").content)
    cache = RedisTopologyCache(
        redis_client_factory(stack.env["REDIS_URL"], entra_identity=None, cluster="auto"),
        prefix=stack.env.get("REDIS_PREFIX", "pgha:"),
    )
    report.topology = {**cache.read(incident["server"]), "epoch": str(cache.read_epoch(incident["server"]))}
    report.cards = [r.card for r in stack.sink.accepted if r.card]


def _verify(r: Report) -> None:
    """Check the incident against a table of rules (name, verdict, detail) that one loop records: those
    of both drills, then the game day's or the local drill's (its own client, Redis, the Teams sink,
    verification in time; Azure rebuilds a real standby in minutes: a game day prints the steps)."""
    i = r.incident
    if i is None:
        return r.checks.append(Check("one incident recorded", False, "none"))
    before, after, cause, status = i["primary_zone_before"], i["primary_zone_after"], i["cause"], i["status"]
    times = [e["at"] for e in i.get("timeline", [])]
    sent = [n["transition"] for n in i.get("notifications", []) if n["status"] == "done"]
    measured = i.get("write_downtime_seconds")
    rules: list[tuple[str, object, str]] = [
        ("one incident recorded", True, i["incident_id"]),
        ("cause", cause == r.cause, f"{cause} (expected {r.cause})"),
        ("primary zone swapped", before and after and before != after, f"{before} -> {after}"),
        ("resolved", status == "resolved", status),
        ("timeline in time order", times == sorted(times), f"{len(times)} entries"),
        ("notifications delivered", sent, ", ".join(sent) or "none"),
    ]
    if r.client_gap is None:  # a game day: the app's own measurement, and the management API's word
        rules.append(("client-observed downtime measured", measured is not None, format_duration(measured)))
        arm = f"management API now says zone {r.arm_zone}"
        rules.append(("the app saw the zones the management API reports", after == r.arm_zone, arm))
    else:  # the local drill: what it measured and collected itself
        gap, steps, redis = r.client_gap, i.get("verification") or [], r.topology
        told = sum(VERIFICATION_CARD in json.dumps(c) for c in r.cards)  # verification failure cards
        failed, cards = sum(s["status"] == "failed" for s in steps), len(r.cards) - told
        close = measured is not None and abs(measured - gap) <= DOWNTIME_TOLERANCE
        seen = f"app measured {format_duration(measured)}, drill client {gap:.2f} s (tolerance 1 s)"
        fresh = (redis.get("primary_zone"), redis.get("incident_id")) == (after, i["incident_id"])
        for_failures = f"{told} card(s) for {failed} failed step(s)"
        version = ", ".join(f"{k} {redis.get(k)}" for k in ("primary_zone", "version", "epoch"))
        rules += [
            ("client-observed downtime", close, seen),
            ("Redis topology refreshed", fresh, version),
            ("Teams cards: one per transition", 1 <= cards <= 3, f"{cards} cards"),
            ("verification failures: one card", told == min(1, failed), for_failures),
            ("verification steps recorded", steps, f"{len(steps)} steps"),
        ]
        restored = i.get("primary_restored_at")
        for step in steps:  # each decided (not pending) within VERIFY_WITHIN of primary restored
            took = (parse_iso(step["at"]) - parse_iso(restored)).total_seconds() if restored else None
            in_time = took is not None and took <= VERIFY_WITHIN.total_seconds()
            detail = f"{step['status']} {format_duration(took)} after primary restored"
            rules.append((f"verification {step['check']}", step["status"] != "pending" and in_time, detail))
    r.checks += [Check(name, bool(verdict), detail) for name, verdict, detail in rules]


def game_day(
    *, resource_id: str, app: AppClient, mode: str, timeout: float, progress: Progress, force: bool = False
) -> Report:
    """Fail over a real server through the management API and follow what the deployed app records."""
    parsed = flexible_server_from_resource_id(resource_id)
    if parsed is None:
        raise SystemExit("--server must be a Microsoft.DBforPostgreSQL/flexibleServers resource id")
    (rid, server), endpoint = parsed, os.environ.get("ARM_ENDPOINT")
    inspector, report = _arm(endpoint, 2), Report(cause=mode_cause(mode))
    before = inspector.get_server(rid)
    zones = f"primary zone {before.primary_zone}, standby zone {before.standby_zone}"
    progress(f"{server}: {zones}, HA {before.ha_state}")
    started = now()
    refuse_back_to_back(rid, app=app, force=force, remember=True)
    progress(f"starting a {mode} through the management API")
    inspector.start_failover(rid, mode, wait=True)
    after = inspector.get_server(rid)
    report.arm_zone = after.primary_zone
    progress(f"done: primary zone {after.primary_zone}, standby zone {after.standby_zone}")
    wait = {"timeout": timeout, "every": 1 if is_loopback_http(endpoint) else 5, "sweep": lambda: None}
    report.incident = app.settled(server, started - timedelta(minutes=2), verified=False, **wait)
    _verify(report)
    progress(post_report(report, server, os.environ, app.timeline_url(report.incident)))
    return report


def post_report(report: Report, server: str, env: Mapping[str, str], url: str | None) -> str:
    """Post the scored report as one card through the Teams channel the app posts with (TEAMS_ROUTES,
    else TEAMS_WEBHOOK_URL, from `env`); returns what happened, in words (never the URL)."""
    routes = parse_routes(env.get("TEAMS_ROUTES"), setting="TEAMS_ROUTES")
    card = report_card(server=server, incident=report.incident, checks=report.checks, timeline_url=url)
    with requests.Session() as session:
        channel = TeamsChannel(JsonPoster(session), default_url=env.get("TEAMS_WEBHOOK_URL"), routes=routes)
        target = channel.target_for(server)
        if target is None:
            return "report card not posted: no webhook for the server (TEAMS_WEBHOOK_URL, TEAMS_ROUTES)"
        try:
            channel.send(target, envelope(card))
        except (ChannelRefusedError, ChannelUnavailableError) as exc:
            return f"report card not posted: {exc}"
    return "report card posted to the Teams channel"


def print_report(report: Report) -> None:
    """The incident next to what the drill measured itself, then every check with its verdict, laid
    out as `python -m failover incident` lays out an incident (`failover.cli`)."""
    i, sections = report.incident, []
    facts: list[tuple[str, object]] = [*score(i)]
    if i is not None:
        facts += [
            ("Primary zone", f"{i['primary_zone_before']} -> {i['primary_zone_after']}"),
            ("Standby zone now", i["standby_zone_after"]),
            ("Opened (UTC)", utc(i["opened_at"])),
            ("Primary restored (UTC)", utc(i["primary_restored_at"])),
            ("Resolved (UTC)", utc(i["resolved_at"])),
            ("Signals", i["signal_count"]),
        ]
        entries = [(utc(e["at"], millis=True), e["source"], e["kind"], e["summary"]) for e in i["timeline"]]
        notes = [(n["transition"], n["status"], utc(n["at"])) for n in i["notifications"]]
        sections += [
            f"Timeline\n{table(('TIME (UTC)', 'SOURCE', 'KIND', 'SUMMARY'), entries)}",
            f"Notifications\n{table(('TRANSITION', 'STATUS', 'AT (UTC)'), notes)}",
        ]
    facts += [(f"Teams card {n}", c.get("fallbackText")) for n, c in enumerate(report.cards, start=1)]
    facts += [("HTML timeline", report.html_path)] if report.html_path else []
    checks = [("PASS" if c.ok else "FAIL", c.name, c.detail) for c in report.checks]
    sections += [f"Checks\n{table(('VERDICT', 'CHECK', 'DETAIL'), checks)}", "=" * 78]
    verdict = "DRILL PASSED" if report.passed else "DRILL FAILED"
    print("\n".join(["", "=" * 78, key_values(facts), *sections, verdict]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.drill", description=__doc__.splitlines()[0])
    parser.add_argument("--unplanned", action="store_true", help="kill the primary; send no alert at all")
    modes, platform = [*REQUESTED_MODES, *PLATFORM_MODES], ", ".join(PLATFORM_MODES)
    text = f"requested through the management API, or started by the platform ({platform}: local drill only)"
    parser.add_argument("--mode", default="ForcedFailover", choices=modes, help=text)
    parser.add_argument("--port", type=int, default=0, help="runner port (default: a free one)")
    text = "local Redis: one redis-server, or a 3-primary Redis Cluster (default: $LOCAL_REDIS)"
    redis = os.environ.get("LOCAL_REDIS") or "standalone"
    parser.add_argument("--redis", choices=["standalone", "cluster"], default=redis, help=text)
    parser.add_argument("--server", help="game day: the resource id of a real flexible server")
    parser.add_argument("--app-url", help="game day: the deployed app's base URL")
    parser.add_argument("--timeout", type=float, default=900, help="game day: seconds to wait for resolution")
    parser.add_argument("--force", action="store_true", help="ignore DRILL_MIN_INTERVAL_MINUTES")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    mode = "unplanned" if args.unplanned else args.mode
    common: Any = {"mode": mode, "progress": Progress(), "force": args.force}
    if args.server:
        key = os.environ.get("DRILL_FUNCTION_KEY", "")
        if not args.app_url or not key:
            parser.error("game day needs --app-url and the function key in DRILL_FUNCTION_KEY")
        if mode not in REQUESTED_MODES:
            parser.error(f"{mode}: a failover only the local drill can run")
        app = AppClient(args.app_url, key)
        report = game_day(resource_id=args.server, app=app, timeout=args.timeout, **common)
    else:
        report = local_drill(port=args.port, redis=args.redis, **common)
    print_report(report)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
