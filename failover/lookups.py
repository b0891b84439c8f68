"""Incident lookups: validated, bounded reads of the incident record for the HTTP API and the CLI.

Layer: application. It validates every input before anything reaches storage (server names,
incident ids, ISO 8601 times, status, limit, continuation tokens), turns the values into the
store's parameterised single-partition queries, and shapes the public JSON of design section 5.
It must not import `azure.functions`, must not build a filter string from raw input, must not
scan the table (a server listing is one partition; a cross-server listing walks the day index,
newest day first, at most `MAX_DAY_QUERIES` day partitions per request, then answers what it found
with a continuation) and must not reveal the key that signs continuation tokens. An incident's
timeline is answered `MAX_TIMELINE` entries at a time (`start`, `timeline_next`). An incident whose
cards a zone-outage digest told names that digest (`digest`), and `get_digest` answers one digest
(`GET /api/digests/{id}`): both read the digest's own rows, one or two day partitions by prefix.

Time filters apply to the incident's opening time as its id records it (to the second):
`since <= opening <= until`.

Continuation tokens are opaque to callers: base64url of a small JSON (where to resume, and the
effective time window) and an HMAC-SHA256 over it and the query it belongs to, so a forged,
altered or borrowed token is refused with 400 instead of steering a query.

Size: over 400 lines because every read the HTTP API and the CLI make is validated and bounded here
(query grammar, signed continuations, budgets): one place to audit the read side.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from failover.adapters import table_codec as codec
from failover.config import Settings
from failover.digest import DigestPolicy, Window
from failover.digesting import outage_windows, window_of
from failover.errors import InvalidPayloadError, NotFoundError
from failover.incidents import KnownTopology, ServerState
from failover.model import Effect, EffectStatus, Incident, IncidentStatus, TimelineEntry
from failover.presentation import DigestLink, DigestMember, IncidentView, TimelinePart
from failover.sources.resources import (
    SERVER_NAME,
    SERVER_NAME_RULE,
    flexible_server_from_resource_id,
    is_server_name,
)
from failover.timeutil import iso, parse_iso
from failover.verifying import with_steps

if TYPE_CHECKING:
    from failover.ports import IncidentStore

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=366)
MAX_TIMELINE = 500  # timeline entries in one answer (JSON or page); `start` pages through the rest
MAX_DAY_QUERIES = 31  # day partitions one cross-server listing request may read; then a continuation
RESPONDER = "responder"

_DIGITS = re.compile(r"[0-9]{1,7}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,600}\.[A-Za-z0-9_-]{43}")
_SERVER_ROW = re.compile(r"incident~[0-9]{14}")
_DAY_ROW = re.compile(rf"[0-9]{{14}}~{SERVER_NAME}")
_DIGEST_ID = re.compile(r"[a-z0-9-]{1,60}~[0-9]{8}T[0-9]{6}Z")
_MAX_TIME_TEXT = 40
_EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)
_KEY_LABEL = b"pg-failover-responder/continuation-token/v1\x00"
_TOKEN_VERSION = 1
_SERVER_MODE = "server"
_DAY_MODE = "day"


class BadLookupError(InvalidPayloadError):
    """A lookup input that is malformed or out of bounds; `reason` is safe to show the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- input validation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentQuery:
    """A validated incident listing request (before defaults are applied)."""

    server: str | None
    status: IncidentStatus | None
    since: datetime | None
    until: datetime | None
    limit: int

    def binding(self) -> bytes:
        """What a continuation token is bound to: the query as the caller asked it."""
        fields = [self.server or "", self.status.value if self.status else "", iso(self.since) or ""]
        fields.append(iso(self.until) or "")
        return json.dumps(fields, separators=(",", ":")).encode("utf-8")


def valid_server(raw: object) -> str:
    """A server's name, given its name or its full resource id (the name is globally unique)."""
    if isinstance(raw, str) and raw.lower().startswith("/subscriptions/"):
        try:
            found = flexible_server_from_resource_id(raw)
        except InvalidPayloadError as exc:
            raise BadLookupError(f"server: {SERVER_NAME_RULE}") from exc
        if found is None:
            raise BadLookupError("server: not a flexible server resource id")
        return found[1]
    if not is_server_name(raw):
        raise BadLookupError(f"server: {SERVER_NAME_RULE}")
    return raw


def valid_incident_id(raw: object) -> str:
    """An id of the shape `{server}~YYYYMMDDTHHMMSSZ` naming a real UTC second."""
    reason = "incident_id: must look like {server}~YYYYMMDDTHHMMSSZ"
    if not isinstance(raw, str) or len(raw) > 80:
        raise BadLookupError(reason)
    try:
        server, time_part = codec.split_incident_id(raw)
        datetime.strptime(time_part, "%Y%m%dT%H%M%SZ")  # noqa: DTZ007 - digits only; the Z says UTC
    except ValueError as exc:
        raise BadLookupError(reason) from exc
    if f"{server}~{time_part}" != raw:  # `$` in a regex also matches before a trailing newline
        raise BadLookupError(reason)
    return raw


def valid_time(name: str, raw: object) -> datetime | None:
    """An ISO 8601 time with a zone, between 2000 and 2100; None when not given."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) > _MAX_TIME_TEXT:
        raise BadLookupError(f"{name}: an ISO 8601 time with a time zone, e.g. 2026-11-25T07:16:02Z")
    try:
        value = parse_iso(raw)
    except (ValueError, OverflowError) as exc:
        raise BadLookupError(f"{name}: an ISO 8601 time with a time zone, e.g. 2026-11-25T07:16:02Z") from exc
    if not _EARLIEST <= value < _LATEST:
        raise BadLookupError(f"{name}: must be between 2000 and 2100")
    return value


def valid_limit(raw: object) -> int:
    return _whole_number("limit", raw, default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)


def valid_start(raw: object) -> int:
    """Where a part of a timeline starts: a whole number from 0 (the default)."""
    return _whole_number("start", raw, default=0, low=0, high=9_999_999)


def _whole_number(name: str, raw: object, *, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if not isinstance(text, str) or _DIGITS.fullmatch(text) is None or not low <= int(text) <= high:
        raise BadLookupError(f"{name}: a whole number from {low} to {high}")
    return int(text)


def valid_status(raw: object) -> IncidentStatus | None:
    if raw is None or raw == "":
        return None
    if raw not in ("open", "resolved"):
        raise BadLookupError("status: 'open' or 'resolved'")
    return IncidentStatus(raw)


def parse_query(
    *,
    server: object = None,
    since: object = None,
    until: object = None,
    status: object = None,
    limit: object = None,
) -> IncidentQuery:
    query = IncidentQuery(
        server=None if server in (None, "") else valid_server(server),
        status=valid_status(status),
        since=valid_time("since", since),
        until=valid_time("until", until),
        limit=valid_limit(limit),
    )
    if query.since and query.until and query.since > query.until:
        raise BadLookupError("since: must not be after until")
    return query


# --- continuation tokens -------------------------------------------------------------------------


class ContinuationSigner:
    """Signs and checks continuation tokens; the key never leaves this object."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.continuation_secret or settings.storage_connection
        assert secret is not None  # Settings refuses identity-based storage without CONTINUATION_SECRET
        self._key = hashlib.sha256(_KEY_LABEL + secret.reveal().encode("utf-8")).digest()

    def __repr__(self) -> str:
        return "ContinuationSigner(key='***')"

    def sign(self, query: IncidentQuery, cursor: Mapping[str, Any]) -> str:
        body = json.dumps({"v": _TOKEN_VERSION, **cursor}, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(body)}.{_b64(self._mac(query, body))}"

    def open(self, query: IncidentQuery, token: object) -> dict[str, Any]:
        """The cursor in a token made by `sign` for this same query, or BadLookupError."""
        refused = BadLookupError("continuation: not a token issued for this query")
        if not isinstance(token, str) or _TOKEN.fullmatch(token) is None:
            raise refused
        body_text, mac_text = token.split(".")
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (binascii.Error, ValueError) as exc:
            raise refused from exc
        if not hmac.compare_digest(mac, self._mac(query, body)):
            log.info("continuation token refused: signature does not match the query")
            raise refused
        cursor = json.loads(body)
        if not isinstance(cursor, dict) or cursor.get("v") != _TOKEN_VERSION:
            raise refused
        return cursor

    def _mac(self, query: IncidentQuery, body: bytes) -> bytes:
        return hmac.new(self._key, query.binding() + b"\n" + body, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- use cases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentPage:
    """One page of an incident listing: the views, newest first, and where the next page starts."""

    incidents: tuple[IncidentView, ...]
    continuation: str | None

    def to_json(self) -> dict[str, Any]:
        return {"incidents": [v.public() for v in self.incidents], "continuation": self.continuation}


def list_incidents(
    store: IncidentStore, settings: Settings, *, now: datetime, **query: object
) -> dict[str, Any]:
    """`{"incidents": [...], "continuation": str | None}`, newest first. Raises BadLookupError."""
    return incident_page(store, settings, now=now, **query).to_json()


def incident_page(
    store: IncidentStore,
    settings: Settings,
    *,
    server: object = None,
    since: object = None,
    until: object = None,
    status: object = None,
    limit: object = None,
    continuation: object = None,
    now: datetime,
) -> IncidentPage:
    """The incidents a listing asks for (server, time window, status, limit, continuation)."""
    query = parse_query(server=server, since=since, until=until, status=status, limit=limit)
    signer = ContinuationSigner(settings)
    cursor = None if continuation in (None, "") else signer.open(query, continuation)
    if query.server is not None:
        incidents, next_cursor = _server_page(store, query, cursor)
    else:
        incidents, next_cursor = _day_page(store, query, cursor, now)
    return IncidentPage(
        tuple(IncidentView.of(i) for i in incidents),
        signer.sign(query, next_cursor) if next_cursor else None,
    )


def get_incident(
    store: IncidentStore, settings: Settings, incident_id: object, *, start: object = None
) -> dict[str, Any]:
    """One incident with `MAX_TIMELINE` of its timeline entries from `start` (signals and failed
    effects, in time order); `timeline_next` is the `start` of the next part, or None. 404: NotFoundError.
    """
    return incident_view(store, settings, incident_id, start=start).to_json()


def incident_view(
    store: IncidentStore, settings: Settings, incident_id: object, *, start: object = None
) -> IncidentView:
    """The presentation view of one incident: every timeline entry (signals and failed effects, in
    time order) for its phases and HA states, `MAX_TIMELINE` of them shown from `start`."""
    first = valid_start(start)
    incident = with_steps(store.side_rows(), _incident(store, valid_incident_id(incident_id)))
    entries = store.timeline(incident)
    entries += [effect_entry(e) for e in store.troubled_effects(incident.incident_id)]
    entries.sort(key=lambda e: e.at)
    digest = digest_link(store, settings, incident)
    return IncidentView.of(incident, entries, part=TimelinePart(first, MAX_TIMELINE), digest=digest)


def get_server(store: IncidentStore, server: object) -> dict[str, Any]:
    """The server's `state` row: last known topology, versions, incidents, probe bookkeeping."""
    name = valid_server(server)
    state, _ = store.read_state(name)
    asked_id = server.lower() if isinstance(server, str) and server.startswith("/") else None
    if state is None or (asked_id and state.resource_id and state.resource_id.lower() != asked_id):
        raise NotFoundError(f"no server {name} is known under that id")
    return {**server_json(state), "upcoming_maintenance": upcoming_maintenance(store, name)}


def upcoming_maintenance(store: IncidentStore, server: str) -> list[dict[str, Any]]:
    """The maintenance Azure announced for a server (`maintenanceEvents`, kept by the probe)."""
    from failover.probe_notices import upcoming_from_row

    row = next((r for r in store.probe_health() if r.get("server") == server), None)
    return upcoming_from_row(row) if row is not None else []


# --- server listing: one partition ---------------------------------------------------------------


def _server_page(
    store: IncidentStore, query: IncidentQuery, cursor: dict[str, Any] | None
) -> tuple[list[Incident], dict[str, Any] | None]:
    assert query.server is not None
    after = None
    if cursor is not None:
        after = cursor.get("rk")
        if cursor.get("m") != _SERVER_MODE or not isinstance(after, str) or not _SERVER_ROW.fullmatch(after):
            raise BadLookupError("continuation: not a token issued for this query")
    page = store.incidents_of_server(
        query.server,
        since=query.since,
        until=query.until,
        status=query.status,
        limit=query.limit,
        after=after,
    )
    next_cursor = {"m": _SERVER_MODE, "rk": page.next_key[1]} if page.next_key else None
    return list(page.incidents), next_cursor


# --- cross-server listing: the day index, newest day first ----------------------------------------


@dataclass(frozen=True)
class _Window:
    since: datetime
    until: datetime

    def days(self, start: date) -> list[date]:
        """The days from `start` back to the window's first day, newest first."""
        first = self.since.date()
        return [start - timedelta(days=n) for n in range((start - first).days + 1)]


def _window(query: IncidentQuery, cursor: dict[str, Any] | None, now: datetime) -> _Window:
    if cursor is not None:  # a later page keeps the window of the first one, whatever `now` is
        return _token_window(query, cursor)
    until = query.until or now
    since = query.since or until - DEFAULT_WINDOW
    if since > until:
        raise BadLookupError("since: must not be after until")
    if until - since > MAX_WINDOW:
        raise BadLookupError("since/until: a listing across servers covers at most 366 days; add server=")
    return _Window(since, until)


def _token_window(query: IncidentQuery, cursor: dict[str, Any]) -> _Window:
    """The window a token carries, checked again: a signature proves who made it, not that it is sane."""
    refused = BadLookupError("continuation: not a token issued for this query")
    try:
        window = _Window(parse_iso(cursor.get("since")), parse_iso(cursor.get("until")))
    except (TypeError, ValueError) as exc:
        raise refused from exc
    if not _EARLIEST <= window.since <= window.until < _LATEST or window.until - window.since > MAX_WINDOW:
        raise refused
    if (query.since and window.since != query.since) or (query.until and window.until != query.until):
        raise refused
    return window


def _day_page(
    store: IncidentStore, query: IncidentQuery, cursor: dict[str, Any] | None, now: datetime
) -> tuple[list[Incident], dict[str, Any] | None]:
    window = _window(query, cursor, now)
    start, after = _resume_point(window, cursor)
    found: list[Incident] = []
    for queried, day in enumerate(window.days(start)):
        if queried == MAX_DAY_QUERIES:  # the budget is spent: the caller resumes at this day
            return found, {"m": _DAY_MODE, "day": day.isoformat(), **_window_json(window)}
        rows = store.incidents_of_day(
            day,
            since=window.since,
            until=window.until,
            after=after if day == start else None,
            status=query.status,
            limit=query.limit - len(found),
        )
        found.extend(incident for _, incident in rows)
        if len(found) == query.limit:
            return found, {"m": _DAY_MODE, "day": day.isoformat(), "rk": rows[-1][0], **_window_json(window)}
    return found, None


def _resume_point(window: _Window, cursor: dict[str, Any] | None) -> tuple[date, str | None]:
    if cursor is None:
        return window.until.date(), None
    refused = BadLookupError("continuation: not a token issued for this query")
    after, day_text = cursor.get("rk"), cursor.get("day")  # no "rk": resume at the top of that day
    if cursor.get("m") != _DAY_MODE or not (
        after is None or (isinstance(after, str) and _DAY_ROW.fullmatch(after))
    ):
        raise refused
    try:
        day = date.fromisoformat(str(day_text))
    except ValueError as exc:
        raise refused from exc
    if not window.since.date() <= day <= window.until.date():
        raise refused
    return day, after


def _window_json(window: _Window) -> dict[str, str | None]:
    return {"since": iso(window.since), "until": iso(window.until)}


# --- one incident --------------------------------------------------------------------------------


def _incident(store: IncidentStore, incident_id: str) -> Incident:
    incident = store.get_incident(incident_id)
    if incident is None:
        raise NotFoundError(f"no incident {incident_id}")
    return incident


_EFFECT_TITLES = {
    "redis_topology": "Redis topology refresh",
    "teams_card": "Teams card",
    "notify_teams": "Teams card",
    "day_index": "Day index",
}


def effect_entry(effect: Effect) -> TimelineEntry:
    """A failed or held-back effect as a timeline entry from the responder itself."""
    default = f"{effect.name.channel} notification" if effect.name.channel else effect.name.value
    title = f"{_EFFECT_TITLES.get(effect.name.value, default)} ({effect.transition.value})"
    error = effect.last_error or "no error recorded"
    if effect.status is EffectStatus.SUPPRESSED:
        kind, summary = "card_suppressed", f"{title} suppressed: {error}"
    elif effect.status is EffectStatus.DEAD:
        kind, summary = "effect_dead", f"{title} gave up after {effect.attempts} attempt(s): {error}"
    else:
        kind, summary = "effect_retrying", f"{title} failed {effect.attempts} time(s), retrying: {error}"
    at = effect.updated_at or effect.created_at or effect.next_attempt_at
    return TimelineEntry(
        at=at or datetime.min.replace(tzinfo=timezone.utc),
        source=RESPONDER,
        kind=kind,
        summary=summary,
        signal_id=f"effect:{effect.incident_id}:{effect.transition.value}:{effect.name.value}",
        details={"status": effect.status.value, "attempts": effect.attempts, "last_error": effect.last_error},
    )


# --- zone-outage digests -------------------------------------------------------------------------


def _digest_policy(settings: Settings) -> DigestPolicy:
    return DigestPolicy(min_servers=settings.digest_min_servers, window=settings.digest_window)


def _link(window: Window) -> DigestLink:
    members = tuple(
        DigestMember(m.server, m.incident_id, m.cause, m.status)
        for m in sorted(window.members, key=lambda m: m.server)
    )
    return DigestLink(window.outage_id, window.key, window.start, window.end, members)


def digest_link(store: IncidentStore, settings: Settings, incident: Incident) -> DigestLink | None:
    """The zone-outage digest window the incident's cards were folded into (None: it had its own).

    The region is the one the notify pipeline filed the incident under: the management API's
    location, as the server's state row keeps it."""
    state, _ = store.read_state(incident.server)
    location = state.topology.location if state is not None and state.topology is not None else None
    if not location:
        return None
    window = window_of(store.side_rows(), incident, location.lower(), _digest_policy(settings))
    return None if window is None else _link(window)


def valid_digest_id(raw: object) -> str:
    """A digest (zone outage) id: `{region}~YYYYMMDDTHHMMSSZ` naming a real UTC second."""
    reason = "digest_id: must look like {region}~YYYYMMDDTHHMMSSZ"
    if not isinstance(raw, str) or _DIGEST_ID.fullmatch(raw) is None:
        raise BadLookupError(reason)
    try:
        datetime.strptime(raw.split("~", 1)[1], "%Y%m%dT%H%M%SZ")  # noqa: DTZ007 - digits only; Z says UTC
    except ValueError as exc:
        raise BadLookupError(reason) from exc
    return raw


def get_digest(store: IncidentStore, settings: Settings, digest_id: object) -> dict[str, Any]:
    """One zone outage's digest: its windows (one card each) with their servers. 404: NotFoundError."""
    outage = valid_digest_id(digest_id)
    found = outage_windows(store.side_rows(), outage, _digest_policy(settings))
    if not found:
        raise NotFoundError(f"no zone-outage digest {outage}")
    members = [m for w in found for m in w.members]
    return {
        "id": outage,
        "region": outage.split("~", 1)[0],
        "started_at": iso(found[0].start),
        "servers": len({m.server for m in members}),
        "over": all(m.status != "open" for m in members),
        "windows": [_digest_window_json(_link(w)) for w in found],
    }


def _digest_window_json(link: DigestLink) -> dict[str, Any]:
    return {
        "window": link.window,
        "window_start": iso(link.start),
        "window_end": iso(link.end),
        "servers": [{**m.to_public(), "timeline": m.timeline_path} for m in link.members],
    }


# --- one server ----------------------------------------------------------------------------------


def server_json(state: ServerState) -> dict[str, Any]:
    topology = state.topology
    open_incident = state.open_record()
    return {
        "server": state.server,
        "resource_id": state.resource_id or (topology.resource_id if topology else ""),
        "topology": _public_topology(topology),
        "epoch": state.epoch,
        "topology_version": state.topology_version,
        "open_incident_id": open_incident.incident_id if open_incident else None,
        "recent_incident_ids": [r.incident_id for r in reversed(state.records)],
        "db_probe": {
            "failing_since": iso(state.db.failing_since),
            "last_ok_write_at": iso(state.db.last_ok_write_at),
            "postmaster_started_at": iso(state.db.postmaster_started_at),
        },
        "maintenance": [
            {"tracking_id": m.tracking_id, "starts_at": iso(m.starts_at), "ends_at": iso(m.ends_at)}
            for m in state.maintenance
        ],
        "signals_recorded": state.signals_recorded,
    }


def _public_topology(topology: KnownTopology | None) -> dict[str, Any] | None:
    known = codec.topology_dict(topology)
    if known is not None:
        known.pop("resource_id")  # stated once, at the top of the answer
    return known
