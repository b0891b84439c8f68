"""What one probe run tells people besides incidents: probe outages and upcoming maintenance.

Layer: application service, fed by the probe report (`Prober.on_report`). It keeps one `~probe` row
per server through the store port (what the run could check, since when the probe cannot check,
whether that was announced, the upcoming maintenance and which of it was announced) and posts
notice cards through the `post` callable it is given. It never records a signal: a probe that
cannot check is probe health, never a failover and never an incident (invariant 10).

- Probe outage: the database probe reports a probe fault (login refused, missing grant or table,
  token, DNS or TLS to a private endpoint, `PG_USER` missing). Shown on `/api/health` at once; when
  it has lasted `notify_after` (`PROBE_FAULT_NOTIFY_SECONDS`, default 600), ONE card per outage
  ("cannot check pg-prod-01 since 10:02 UTC: login refused"). The outage ends when the probe can
  check again (any status but `probe_fault`); a later fault is a new outage and gets its own card.
- Upcoming maintenance (from `failover.maintenance.MaintenanceWatch`): kept on the row for
  `/api/servers/{server}` and the timeline page; with `announce_maintenance`, one card per new event.

A card is marked sent only after the post returned, so a failed post is tried again by the next run
(at least once; a crash between the post and the row write may repeat one card).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from failover.errors import FailoverError
from failover.maintenance import MaintenanceWatch
from failover.notify.teams.notice import notice_card
from failover.ports import Clock, IncidentStore
from failover.presentation import format_time
from failover.probing import ProbeReport, ServerHealth
from failover.secrets import redact
from failover.sources.maintenance_events import UpcomingMaintenance
from failover.timeutil import iso, parse_iso

log = logging.getLogger(__name__)

PROBE_FAULT = "probe_fault"
_KEEP_ANNOUNCED = 50  # maintenance event ids remembered per server (bounded row)

# Posts one card about one server; False when no channel is configured for it. Raises FailoverError.
Post = Callable[[str, Mapping[str, Any]], bool]


@dataclass(frozen=True)
class ProbeOutage:
    """The database probe cannot check a server: since when, why, and whether people were told."""

    since: datetime
    fault: str
    reason: str
    notified_at: datetime | None = None

    def to_row(self) -> dict[str, str]:
        return {
            "db_fault_since": iso(self.since) or "",
            "db_fault_notified_at": iso(self.notified_at) or "",
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ProbeOutage | None:
        try:
            since = parse_iso(row.get("db_fault_since"))
        except ValueError:
            return None
        try:
            notified: datetime | None = parse_iso(row.get("db_fault_notified_at"))
        except ValueError:
            notified = None
        return cls(since, str(row.get("db_fault") or ""), str(row.get("db_error") or ""), notified)


def step_outage(
    previous: ProbeOutage | None, health: ServerHealth, *, now: datetime, notify_after: timedelta
) -> tuple[ProbeOutage | None, bool]:
    """The outage after one run, and whether its one card is due now (pure)."""
    if health.db == "not_checked":
        return previous, False  # the run never reached the database: nothing learnt
    if health.db != PROBE_FAULT:
        return None, False
    fault = health.db_fault or "unclassified"
    reason = health.db_error or fault
    outage = (
        replace(previous, fault=fault, reason=reason)
        if previous is not None
        else ProbeOutage(since=now, fault=fault, reason=reason)
    )
    return outage, outage.notified_at is None and now - outage.since >= notify_after


def probe_outage_card(server: str, outage: ProbeOutage) -> dict[str, Any]:
    short = outage.reason.split(":", 1)[0] or outage.fault
    since = format_time(outage.since, missing="unknown")
    return notice_card(
        f"Cannot check {server} since {since}: {short}",
        "The database probe cannot check this server, so a failover would be seen only through the"
        " management API and Azure's alerts. This is the probe's own problem, not a failover: no"
        " incident was opened. Fix the probe's access (login, grants, heartbeat table, network).",
        [("Server", server), ("Since", since), ("Fault", outage.fault), ("Reason", outage.reason)],
        style="warning",
    )


def maintenance_card(server: str, event: UpcomingMaintenance) -> dict[str, Any]:
    starts = format_time(event.start_at, missing="unknown")
    ends = format_time(event.end_at, missing="unknown")
    downtime = event.estimated_downtime_seconds
    facts = [
        ("Server", server),
        ("Window", f"{starts} to {ends}"),
        ("Status", event.status),
        ("Event", event.event_id),
    ]
    if downtime is not None:
        facts.append(("Estimated downtime", f"{downtime:g} s"))
    return notice_card(
        f"Maintenance of {server} planned for {starts}",
        (event.description or "Azure announced a planned maintenance of this server.")
        + " A failover inside the window will be recorded with the cause maintenance.",
        facts,
        style="accent",
    )


def health_row(health: ServerHealth) -> dict[str, Any]:
    """The `~probe` row of one server: what the last probe run could and could not check."""
    return {
        "server": health.server,
        "resource_id": health.resource_id,
        "arm": health.arm,
        "arm_error": health.arm_error or "",
        "db": health.db,
        "db_error": health.db_error or "",
        "db_fault": health.db_fault or "",
        "checked_at": iso(health.checked_at) or "",
        "unchecked": health.unchecked,  # the run's window ended before any check of it
        "unrecorded": health.unrecorded,  # signals left for the next run
    }


def upcoming_from_row(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The upcoming maintenance a `~probe` row keeps (as shown on /api/servers/{server})."""
    return [dict(u) for u in _json_list(row.get("maintenance")) if isinstance(u, dict)]


@dataclass
class ProbeNotices:
    store: IncidentStore
    clock: Clock
    post: Post | None = None
    notify_after: timedelta = timedelta(seconds=600)
    maintenance: MaintenanceWatch | None = None
    announce_maintenance: bool = False

    def on_report(self, report: ProbeReport) -> None:
        """Write every server's row; post the cards that are due. Never raises for one server."""
        now = self.clock()
        try:
            previous = {str(r.get("server")): r for r in self.store.probe_health()}
        except FailoverError as error:
            log.warning("probe rows could not be read, outages restart now: %s", redact(str(error)))
            previous = {}
        rows = [self._row(h, previous.get(h.server, {}), now) for h in report.servers.values()]
        self.store.save_probe_health(rows)

    def _row(self, health: ServerHealth, before: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        row = health_row(health)
        outage, due = step_outage(
            ProbeOutage.from_row(before), health, now=now, notify_after=self.notify_after
        )
        if outage is not None and due and self._send(health.server, probe_outage_card(health.server, outage)):
            log.warning(
                "server %s: probe outage announced (%s since %s)",
                health.server,
                outage.fault,
                iso(outage.since),
            )
            outage = replace(outage, notified_at=now)
        row.update(outage.to_row() if outage else {"db_fault_since": "", "db_fault_notified_at": ""})
        row.update(self._maintenance(health.server, before))
        return row

    def _maintenance(self, server: str, before: Mapping[str, Any]) -> dict[str, str]:
        known = self.maintenance.upcoming(server) if self.maintenance is not None else None
        if known is None:  # not read by this worker yet: keep what the row had
            return {k: str(before.get(k) or "") for k in ("maintenance", "maintenance_announced")}
        announced = [str(i) for i in _json_list(before.get("maintenance_announced"))]
        if self.announce_maintenance:
            for event in known:
                if event.event_id not in announced and self._send(server, maintenance_card(server, event)):
                    announced.append(event.event_id)
        return {
            "maintenance": json.dumps([u.to_dict() for u in known]),
            "maintenance_announced": json.dumps(announced[-_KEEP_ANNOUNCED:]),
        }

    def _send(self, server: str, card: Mapping[str, Any]) -> bool:
        if self.post is None:
            return False
        try:
            return self.post(server, card)
        except FailoverError as error:
            log.warning(
                "server %s: notice card not delivered, next run retries: %s", server, redact(str(error))
            )
            return False


def _json_list(raw: object) -> Iterable[Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []
