"""Incident lookups from a terminal: `python -m failover incidents|incident|timeline|server`.

Layer: edge (beside HTTP). It parses arguments, builds a `TableStore` from the environment
(`AzureWebJobsStorage`, `FAILOVER_TABLE`, optionally `CONTINUATION_SECRET`; other settings are not
needed and not read), calls `failover.lookups`, and prints aligned plain-text tables with times in
UTC, or with `--json` exactly the JSON the HTTP API answers. It must not do anything at import,
must not print a traceback, and strips control characters from stored text before printing it.
Exit codes: 0 done, 1 not found or storage unavailable, 2 bad input or settings.

    python -m failover incidents --server pg-prod-01 --status open --since 2026-11-01T00:00:00Z
    python -m failover incident 'pg-prod-01~20261125T071602Z' --json
    python -m failover timeline 'pg-prod-01~20261125T071602Z' --html timeline.html
    python -m failover server pg-prod-01
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from failover import lookups
from failover.config import Settings
from failover.errors import ConfigError, FailoverError, InvalidPayloadError, NotFoundError
from failover.presentation import EntryView, IncidentView, channel_name, format_duration, phase_note
from failover.secrets import redact
from failover.timeline_html import render_timeline_page, stamp
from failover.timeutil import parse_iso

if TYPE_CHECKING:
    from failover.adapters.table_store import TableStore

log = logging.getLogger(__name__)

OK, FAILED, BAD_INPUT = 0, 1, 2
_CLI_SETTINGS = (
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__tableServiceUri",
    "FAILOVER_TABLE",
    "CONTINUATION_SECRET",
    "INCIDENT_QUIET_SECONDS",
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class _UsageError(Exception):
    """Bad command line arguments (argparse would exit; we answer 2 instead)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m failover", description="Look up failover incidents (times in UTC).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("incidents", help="list incidents, newest first")
    listing.add_argument("--server", help="one server (else every server, from the day index)")
    listing.add_argument("--status", help="open or resolved")
    listing.add_argument("--since", help="ISO 8601 time with a zone, e.g. 2026-11-01T00:00:00Z")
    listing.add_argument("--until", help="ISO 8601 time with a zone (default: now)")
    listing.add_argument("--limit", help=f"1-{lookups.MAX_LIMIT} (default {lookups.DEFAULT_LIMIT})")
    listing.add_argument("--continuation", help="the token printed under the previous page")
    one = commands.add_parser("incident", help="one incident with its timeline")
    one.add_argument("incident_id")
    timeline = commands.add_parser("timeline", help="an incident's timeline as a table or an HTML page")
    timeline.add_argument("incident_id")
    timeline.add_argument("--html", metavar="FILE", help="write the HTML page to FILE")
    server = commands.add_parser("server", help="a server's last known state and topology")
    server.add_argument("name")
    for command in (listing, one, timeline, server):
        command.add_argument("--json", action="store_true", help="print the API JSON")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    store: TableStore | None = None,
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one command; returns the exit code. Tests pass `store`/`settings` or `env`, and streams."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        with contextlib.redirect_stdout(out):  # --help goes to `out`
            args = build_parser().parse_args(argv)
    except _UsageError as exc:
        err.write(f"{exc}\n")
        return BAD_INPUT
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        settings = settings or cli_settings(os.environ if env is None else env)
        store = store or _store(settings)
        return _COMMANDS[args.command](args, store, settings, out, clock or _utc_now)
    except (InvalidPayloadError, ConfigError) as exc:
        err.write(f"error: {redact(str(exc), limit=500)}\n")
        return BAD_INPUT
    except NotFoundError as exc:
        err.write(f"not found: {exc}\n")
        return FAILED
    except FailoverError as exc:
        err.write(f"error: {redact(str(exc))}\n")
        return FAILED
    except OSError as exc:
        err.write(f"error: {exc.strerror or type(exc).__name__}: {exc.filename or ''}\n")
        return FAILED
    except Exception as exc:  # never a traceback in a terminal
        log.debug("unexpected failure", exc_info=True)
        err.write(f"error: unexpected {type(exc).__name__}; nothing was changed\n")
        return FAILED


def cli_settings(env: Mapping[str, str]) -> Settings:
    """Only what lookups need: unrelated (probe, Redis, Teams) settings are neither needed nor checked."""
    return Settings.from_env({key: env[key] for key in _CLI_SETTINGS if key in env})


def _store(settings: Settings) -> TableStore:
    from failover.wiring import build_store

    return build_store(settings)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


# --- commands ------------------------------------------------------------------------------------

_Command = Callable[[argparse.Namespace, "TableStore", Settings, TextIO, Callable[[], datetime]], int]


def _incidents(
    args: argparse.Namespace,
    store: TableStore,
    settings: Settings,
    out: TextIO,
    clock: Callable[[], datetime],
) -> int:
    page = lookups.incident_page(
        store,
        settings,
        server=args.server,
        since=args.since,
        until=args.until,
        status=args.status,
        limit=args.limit,
        continuation=args.continuation,
        now=clock(),
    )
    if args.json:
        return _json(out, page.to_json())
    out.write(incident_table(page.incidents))
    count = len(page.incidents)
    out.write(f"\n{count} incident{'s' if count != 1 else ''}\n")
    if page.continuation:
        out.write(f"more: --continuation {page.continuation}\n")
    return OK


def _incident(
    args: argparse.Namespace,
    store: TableStore,
    settings: Settings,
    out: TextIO,
    clock: Callable[[], datetime],
) -> int:
    view = lookups.incident_view(store, settings, args.incident_id)
    if args.json:
        return _json(out, view.to_json())
    out.write(incident_text(view))
    return OK


def _timeline(
    args: argparse.Namespace,
    store: TableStore,
    settings: Settings,
    out: TextIO,
    clock: Callable[[], datetime],
) -> int:
    view = lookups.incident_view(store, settings, args.incident_id)
    if args.html:
        upcoming = lookups.upcoming_maintenance(store, view.incident.server)
        page = render_timeline_page(view, now=clock(), upcoming=upcoming)
        Path(args.html).write_text(page, encoding="utf-8")
        out.write(f"wrote {args.html}\n")
        return OK
    if args.json:
        return _json(out, view.to_json()["timeline"])
    out.write(timeline_table(view.rows))
    return OK


def _server(
    args: argparse.Namespace,
    store: TableStore,
    settings: Settings,
    out: TextIO,
    clock: Callable[[], datetime],
) -> int:
    server = lookups.get_server(store, args.name)
    if args.json:
        return _json(out, server)
    out.write(server_text(server))
    return OK


_COMMANDS: dict[str, _Command] = {
    "incidents": _incidents,
    "incident": _incident,
    "timeline": _timeline,
    "server": _server,
}


def _json(out: TextIO, body: Any) -> int:
    out.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    return OK


# --- text rendering (pure) -----------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Aligned plain-text columns; the last column is not padded (it may be long)."""
    cells = [[clean(h) for h in headers], *([clean(c) for c in row] for row in rows)]
    widths = [max(len(row[n]) for row in cells) for n in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)) + "  " + row[-1]
        for row in cells
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def key_values(pairs: Sequence[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "".join(f"{k.ljust(width)}  {clean(v)}\n" for k, v in pairs)


def incident_table(views: Sequence[IncidentView]) -> str:
    headers = ("INCIDENT", "STATUS", "CAUSE", "OPENED (UTC)", "RESTORED", "RESOLVED", "WRITES DOWN", "ZONES")
    rows = [
        (
            v.incident.incident_id,
            v.incident.status,
            v.incident.cause,
            utc(v.incident.opened_at),
            _after(v.restored_after),
            _after(v.closed_after),
            v.downtime_text,
            zones(v),
        )
        for v in views
    ]
    return table(headers, rows)


def incident_text(view: IncidentView) -> str:
    incident = view.incident
    pairs: list[tuple[str, object]] = [
        ("Incident", incident.incident_id),
        ("Server", incident.server),
        ("Status", view.status_text),
        ("Cause", view.cause_text),
        ("Opened", f"{utc(incident.opened_at)} UTC"),
        ("Primary restored", _moment(incident.primary_restored_at, view.restored_after)),
        ("Resolved" if incident.stale_at is None else "Closed", _moment(view.closed_at, view.closed_after)),
        ("Write downtime", view.downtime_text),
        ("Detection", view.detection_text or "-"),
        ("Zones", zones(view)),
        ("HA state", incident.ha_state or "-"),
        ("Signals", incident.signal_count),
        ("Resource", incident.resource_id),
    ]
    phases = table(
        ("PHASE", "FROM (UTC)", "LASTED"),
        [(p.label, utc(p.start), phase_note(p)) for p in view.phases],
    )
    sent = (
        table(
            ("CHANNEL", "TRANSITION", "STATUS", "AT (UTC)"),
            [(channel_name(n.channel), n.transition, n.status, utc(n.at)) for n in incident.notifications],
        )
        if incident.notifications
        else "none recorded\n"
    )
    text = f"{key_values(pairs)}\nPhases\n{phases}\nNotifications\n{sent}"
    if view.verification:
        steps = [(s.check, s.status, utc(s.at), s.detail) for s in view.verification]
        text += f"\nVerification\n{table(('CHECK', 'STATUS', 'AT (UTC)', 'DETAIL'), steps)}"
    return f"{text}\nTimeline\n{timeline_table(view.rows)}"


def timeline_table(rows: Sequence[EntryView]) -> str:
    if not rows:
        return "no entries\n"
    lines = [
        (r.number, utc(r.entry.at, millis=True), r.entry.source, r.entry.kind, r.entry.summary) for r in rows
    ]
    return table(("#", "TIME (UTC)", "SOURCE", "KIND", "SUMMARY"), lines)


def server_text(server: Mapping[str, Any]) -> str:
    topology = server.get("topology") or {}
    db = server.get("db_probe") or {}
    recent = server.get("recent_incident_ids") or []
    pairs: list[tuple[str, object]] = [
        ("Server", server.get("server")),
        ("Resource", server.get("resource_id") or "-"),
        ("State", topology.get("state") or "-"),
        ("HA mode / state", f"{topology.get('ha_mode') or '-'} / {topology.get('ha_state') or '-'}"),
        ("Primary zone", topology.get("primary_zone") or "-"),
        ("Standby zone", topology.get("standby_zone") or "-"),
        ("FQDN", topology.get("fqdn") or "-"),
        ("Read replicas", ", ".join(str(r) for r in topology.get("replicas") or []) or "none"),
        (
            "Topology seen at",
            f"{utc(topology.get('observed_at'))} UTC" if topology.get("observed_at") else "-",
        ),
        ("Epoch", server.get("epoch")),
        ("Topology version", server.get("topology_version")),
        ("Open incident", server.get("open_incident_id") or "none"),
        ("Recent incidents", ", ".join(str(r) for r in recent) or "none"),
        ("DB writes failing since", _optional_utc(db.get("failing_since"))),
        ("DB last good write", _optional_utc(db.get("last_ok_write_at"))),
        ("Signals recorded", server.get("signals_recorded")),
    ]
    return key_values(pairs)


def clean(value: object) -> str:
    """Text safe for a terminal: no escape sequences or other control characters."""
    return _CONTROL.sub("?", "-" if value is None else str(value))


def utc(value: object, *, millis: bool = False) -> str:
    """A time (or an ISO 8601 text) as `2026-11-25 07:16:02`; `-` when there is none."""
    try:
        when = value if isinstance(value, datetime) else parse_iso(value)
    except (ValueError, OverflowError):
        return "-" if value in (None, "") else str(value)
    return stamp(when, millis=millis)


def zones(view: IncidentView) -> str:
    """The primary's zones and where the standby went: `1 → 2 (standby 1)`."""
    text = view.zones_text
    standby = view.incident.standby_zone_after
    return f"{text} (standby {standby})" if standby else text


def _after(seconds: float | None) -> str:
    return "-" if seconds is None else "+" + format_duration(seconds)


def _moment(when: datetime | None, seconds: float | None) -> str:
    return f"{utc(when)} UTC ({_after(seconds)})" if when else "-"


def _optional_utc(value: object) -> str:
    return f"{utc(value)} UTC" if value else "-"
