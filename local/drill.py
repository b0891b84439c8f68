"""The failover drill: the whole product, for real, on one machine (or against a real server).

Layer: local tooling, never deployed. `python -m local.drill` (`make drill`):
1. starts Azurite, Redis, a PostgreSQL primary and synchronous standby, the management API
   emulator driven by them, a Teams webhook sink and the app on the local runner;
2. runs a forced failover through the management API (the real SDK) while a client writes every
   50 ms, and feeds the app what Azure sends meanwhile (Resource Health, the activity log restart
   alert, the Event Grid resource action, `is_db_alive` fired and resolved) through the runner's
   HTTP endpoints, shuffled and with duplicates; `--unplanned` kills the primary instead and sends
   nothing at all: the probes must see it alone;
3. lets the probes and the sweeper run, prints the incident next to what the drill measured itself,
   with a verdict per check, and stops everything it started. Exit 0 only if every check held.

`--server <resource id> --app-url <url>` is the game day: a planned or forced failover of a real
server through the management API, followed through the deployed app's lookup API.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

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

    def incident(self, incident_id: str) -> dict[str, Any]:
        response = self.get(f"incidents/{quote(incident_id, safe='')}")
        response.raise_for_status()
        return dict(response.json())


def _z(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


# --- local drill ---------------------------------------------------------------------------------


def local_drill(*, unplanned: bool, mode: str, port: int, progress: Progress) -> Report:
    from local.clients import WritingClient
    from local.stack import SERVER, start_stack

    report = Report()
    stack = start_stack({}, port=port, settings=APP_SETTINGS, progress=progress)
    client: WritingClient | None = None
    try:
        app = AppClient(stack.base_url, stack.function_key)
        client = WritingClient(stack.pair.conninfo(include_password=True)).start()
        progress("a client writes every 50 ms through the server's single endpoint")
        probe = threading.Thread(target=stack.host.run_timer_now, args=("probe_servers",), daemon=True)
        probe.start()
        progress("the probe timer is running (management API every 0.5 s, database every 0.5 s)")
        time.sleep(3)
        started = now()
        if unplanned:
            _kill_primary(stack, progress)
        else:
            report.deliveries = _forced_failover(stack, app, mode, started, progress)
        probe.join(timeout=120)
        client.stop()
        report.client_gap = client.longest_gap()
        progress(f"the drill's own client saw writes fail for {report.client_gap:.2f} s")
        incident_id = _await_resolution(stack, app, SERVER, started - timedelta(minutes=1), progress)
        _collect(stack, app, incident_id, report)
        _verify(report, expected_cause="unplanned" if unplanned else mode_cause(mode), drill=True)
    finally:
        if client is not None:
            client.stop()
        progress("stopping everything the drill started")
        stack.stop()
    return report


def mode_cause(mode: str) -> str:
    return "forced" if mode.lower().startswith("forced") else "planned"


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
    fired = azure.is_db_alive(
        resource_id=rid, alert_id=alert_id, fired=started + timedelta(seconds=2), resolved=None
    )
    sender.send([degraded, fired, degraded])
    failover.join(timeout=180)
    done = now()
    progress("the management API reports the failover done; sending the alerts that follow it")
    sender.send(
        [
            azure.activity_log("Succeeded", resource_id=rid, at=done, mode=mode, operation_id=operation),
            azure.resource_action_success(resource_id=rid, at=done, operation_id=operation),
            azure.is_db_alive(
                resource_id=rid,
                alert_id=alert_id,
                fired=started + timedelta(seconds=2),
                resolved=done + timedelta(seconds=3),
            ),
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
    stack: Any, app: AppClient, server: str, since: datetime, progress: Progress
) -> str | None:
    """Run the sweeper until the incident resolves (its quiet period over), bounded in time."""
    progress("waiting for the quiet period, then the sweeper resolves the incident")
    deadline = time.monotonic() + 90
    incident_id = None
    while time.monotonic() < deadline:
        stack.host.run_timer_now("sweep_outbox")
        found = app.incidents(server, since)
        if found:
            incident_id = found[0]["incident_id"]
            if found[0]["status"] == "resolved":
                progress(f"incident {incident_id} resolved")
                return str(incident_id)
        time.sleep(1)
    progress("the incident did not resolve in time")
    return incident_id


def _collect(stack: Any, app: AppClient, incident_id: str | None, report: Report) -> None:
    import redis

    if incident_id is None:
        return
    report.incident = app.incident(incident_id)
    OUT.mkdir(exist_ok=True)
    page = app.get(f"incidents/{quote(incident_id, safe='')}/timeline")
    report.html_path = OUT / f"timeline-{incident_id.replace('~', '_')}.html"
    report.html_path.write_bytes(page.content)
    client = redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True, socket_timeout=2)
    raw: dict[str, str] = client.hgetall(f"pgha:{report.incident['server']}:topology")  # type: ignore[assignment]
    report.topology = dict(raw)
    report.topology["epoch"] = str(client.get(f"pgha:{report.incident['server']}:epoch"))
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
        report.check(
            "client-observed downtime",
            close,
            f"app measured {_seconds(measured)}, drill client {report.client_gap:.2f} s (tolerance 1 s)",
        )
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
        report.check(
            "Teams cards: one per transition", 1 <= len(report.cards) <= 3, f"{len(report.cards)} cards"
        )
    sent = [n for n in incident.get("notifications", []) if n["status"] == "done"]
    report.check("notifications delivered", bool(sent), ", ".join(n["transition"] for n in sent) or "none")


def _seconds(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f} s"


# --- game day ------------------------------------------------------------------------------------


def game_day(
    *, resource_id: str, app_url: str, key: str, mode: str, timeout: float, progress: Progress
) -> Report:
    """Fail over a real server through the management API and follow what the deployed app records."""
    from failover.adapters.arm import (
        ManagementApiInspector,
        build_client_factory,
        default_credential,
        is_loopback_http,
        static_credential,
    )
    from failover.sources.resources import flexible_server_from_resource_id

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
    progress(f"starting a {mode} through the management API")
    inspector.start_failover(rid, mode, wait=True)
    after = inspector.get_server(rid)
    progress(f"done: primary zone {after.primary_zone}, standby zone {after.standby_zone}")
    deadline = time.monotonic() + timeout
    incident_id = None
    while time.monotonic() < deadline:
        found = app.incidents(server, started - timedelta(minutes=2))
        if found:
            incident_id = found[0]["incident_id"]
            if found[0]["status"] == "resolved":
                break
        time.sleep(5 if not is_loopback_http(endpoint) else 1)
    if incident_id is not None:
        report.incident = app.incident(incident_id)
    _verify(report, expected_cause=mode_cause(mode), drill=False)
    report.check(
        "the app saw the zones the management API reports",
        report.incident is not None and report.incident["primary_zone_after"] == after.primary_zone,
        f"management API now says zone {after.primary_zone}",
    )
    return report


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
    if report.topology:
        out("")
        out("  Redis topology   " + ", ".join(f"{k}={v}" for k, v in sorted(report.topology.items())))
    if report.cards:
        out(f"  Teams cards      {len(report.cards)} received")
        for card in report.cards:
            blocks = [b for b in _blocks(card) if b.get("type") == "TextBlock"]
            texts = [b.get("text", "") for b in sorted(blocks, key=lambda b: b.get("weight") != "Bolder")]
            out(f"    - {texts[0] if texts else '(card)'}")
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


def _blocks(card: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    stack: list[Any] = [card]
    while stack:
        item = stack.pop(0)
        if isinstance(item, dict):
            found.append(item)
            stack.extend(v for k, v in item.items() if k in ("body", "items", "columns"))
        elif isinstance(item, list):
            stack.extend(item)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.drill", description=__doc__.splitlines()[0])
    parser.add_argument("--unplanned", action="store_true", help="kill the primary; send no alert at all")
    parser.add_argument(
        "--mode",
        default="ForcedFailover",
        choices=["ForcedFailover", "PlannedFailover", "ForcedSwitchover", "PlannedSwitchover"],
    )
    parser.add_argument("--port", type=int, default=0, help="runner port (default: a free one)")
    parser.add_argument("--server", help="game day: the resource id of a real flexible server")
    parser.add_argument("--app-url", help="game day: the deployed app's base URL")
    parser.add_argument("--timeout", type=float, default=900, help="game day: seconds to wait for resolution")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    progress = Progress()
    if args.server:
        key = os.environ.get("DRILL_FUNCTION_KEY", "")
        if not args.app_url or not key:
            parser.error("game day needs --app-url and the function key in DRILL_FUNCTION_KEY")
        report = game_day(
            resource_id=args.server,
            app_url=args.app_url,
            key=key,
            mode=args.mode,
            timeout=args.timeout,
            progress=progress,
        )
    else:
        report = local_drill(unplanned=args.unplanned, mode=args.mode, port=args.port, progress=progress)
    print_report(report)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
