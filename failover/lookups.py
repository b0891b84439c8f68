"""Incident lookups: validated, bounded reads of the incident record for the HTTP API and the CLI.

Layer: application. It validates every input before anything reaches storage (server names,
incident ids, ISO 8601 times, status, limit, continuation tokens), turns the values into the
store's parameterised single-partition queries, and shapes the public JSON of design section 5.
It must not import `azure.functions`, must not build a filter string from raw input, must not
scan the table (a server listing is one partition; a cross-server listing walks the day index,
newest day first) and must not reveal the key that signs continuation tokens.

Time filters apply to the incident's opening time as its id records it (to the second):
`since <= opening <= until`.

Continuation tokens are opaque to callers: base64url of a small JSON (where to resume, and the
effective time window) and an HMAC-SHA256 over it and the query it belongs to, so a forged,
altered or borrowed token is refused with 400 instead of steering a query.
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
from failover.errors import InvalidPayloadError, NotFoundError
from failover.incidents import KnownTopology, ServerState
from failover.model import Effect, EffectStatus, Incident, IncidentStatus, TimelineEntry
from failover.timeutil import iso, parse_iso

if TYPE_CHECKING:
    from failover.adapters.table_store import TableStore

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=366)
RESPONDER = "responder"

_SERVER = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_LIMIT = re.compile(r"[0-9]{1,4}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,600}\.[A-Za-z0-9_-]{43}")
_SERVER_ROW = re.compile(r"incident~[0-9]{14}")
_DAY_ROW = re.compile(r"[0-9]{14}~[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
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
    if not isinstance(raw, str) or _SERVER.fullmatch(raw) is None:
        raise BadLookupError(
            "server: 3-63 lower-case letters, digits and '-', not starting or ending with '-'"
        )
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
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if not isinstance(text, str) or _LIMIT.fullmatch(text) is None or not 1 <= int(text) <= MAX_LIMIT:
        raise BadLookupError(f"limit: a whole number from 1 to {MAX_LIMIT}")
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


def list_incidents(
    store: TableStore,
    settings: Settings,
    *,
    server: object = None,
    since: object = None,
    until: object = None,
    status: object = None,
    limit: object = None,
    continuation: object = None,
    now: datetime,
) -> dict[str, Any]:
    """`{"incidents": [...], "continuation": str | None}`, newest first. Raises BadLookupError."""
    query = parse_query(server=server, since=since, until=until, status=status, limit=limit)
    signer = ContinuationSigner(settings)
    cursor = None if continuation in (None, "") else signer.open(query, continuation)
    if query.server is not None:
        incidents, next_cursor = _server_page(store, query, cursor)
    else:
        incidents, next_cursor = _day_page(store, query, cursor, now)
    return {
        "incidents": [i.to_public() for i in incidents],
        "continuation": signer.sign(query, next_cursor) if next_cursor else None,
    }


def get_incident(store: TableStore, settings: Settings, incident_id: object) -> dict[str, Any]:
    """One incident with its timeline (signals and failed effects, in time order). 404: NotFoundError."""
    incident = _incident(store, valid_incident_id(incident_id))
    entries = store.timeline(incident, settings.policy.quiet)
    entries += [effect_entry(e) for e in troubled_effects(store, incident.incident_id)]
    entries.sort(key=lambda e: e.at)
    return {**incident.to_public(), "timeline": [e.to_public() for e in entries]}


def get_server(store: TableStore, server: object) -> dict[str, Any]:
    """The server's `state` row: last known topology, versions, incidents, probe bookkeeping."""
    name = valid_server(server)
    state, _ = store.read_state(name)
    if state is None:
        raise NotFoundError(f"no server {name} is known")
    return server_json(state)


# --- server listing: one partition ---------------------------------------------------------------


def _server_page(
    store: TableStore, query: IncidentQuery, cursor: dict[str, Any] | None
) -> tuple[list[Incident], dict[str, Any] | None]:
    assert query.server is not None
    after = None
    if cursor is not None:
        after = cursor.get("rk")
        if cursor.get("m") != _SERVER_MODE or not isinstance(after, str) or not _SERVER_ROW.fullmatch(after):
            raise BadLookupError("continuation: not a token issued for this query")
    page = store.incidents_of_server(
        query.server,
        since=_ceil_second(query.since) if query.since else None,
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
        try:
            return _Window(parse_iso(cursor.get("since")), parse_iso(cursor.get("until")))
        except ValueError as exc:
            raise BadLookupError("continuation: not a token issued for this query") from exc
    until = query.until or now
    since = query.since or until - DEFAULT_WINDOW
    if since > until:
        raise BadLookupError("since: must not be after until")
    if until - since > MAX_WINDOW:
        raise BadLookupError("since/until: a listing across servers covers at most 366 days; add server=")
    return _Window(since, until)


def _day_page(
    store: TableStore, query: IncidentQuery, cursor: dict[str, Any] | None, now: datetime
) -> tuple[list[Incident], dict[str, Any] | None]:
    window = _window(query, cursor, now)
    low = codec.inverted_at(window.until)
    high = f"{codec.inverted_at(_ceil_second(window.since))}~~"
    start, after = _resume_point(window, cursor)
    found: list[Incident] = []
    for day in window.days(start):
        partition = f"{codec.DAY_PREFIX}{day.isoformat()}"
        day_low = max(low, after + " ") if after and day == start else low  # " " sorts below key chars
        rows = store.incidents_of_day(
            partition, low=day_low, high=high, status=query.status, limit=query.limit - len(found)
        )
        found.extend(incident for _, incident in rows)
        if len(found) == query.limit:
            return found, {"m": _DAY_MODE, "day": day.isoformat(), "rk": rows[-1][0], **_window_json(window)}
    return found, None


def _resume_point(window: _Window, cursor: dict[str, Any] | None) -> tuple[date, str | None]:
    if cursor is None:
        return window.until.date(), None
    refused = BadLookupError("continuation: not a token issued for this query")
    after, day_text = cursor.get("rk"), cursor.get("day")
    if cursor.get("m") != _DAY_MODE or not isinstance(after, str) or not _DAY_ROW.fullmatch(after):
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


def _ceil_second(value: datetime) -> datetime:
    """Opening times are kept to the second: `since` 07:16:02.5 starts at 07:16:03."""
    if not value.microsecond:
        return value
    return value.replace(microsecond=0) + timedelta(seconds=1)


# --- one incident --------------------------------------------------------------------------------


def _incident(store: TableStore, incident_id: str) -> Incident:
    incident = store.get_incident(incident_id)
    if incident is None:
        raise NotFoundError(f"no incident {incident_id}")
    return incident


def troubled_effects(store: TableStore, incident_id: str) -> list[Effect]:
    """Effects a person must see: dead, suppressed, or failing and waiting for a retry.

    Like `TableStore.effects_of`, but the status filter runs in the service, so only the rows shown
    are read (a healthy incident reads none).
    """
    server, _ = codec.split_incident_id(incident_id)
    prefix = codec.effect_prefix(incident_id)
    rows = store._query(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and"
        " ( status eq @dead or status eq @suppressed or ( status eq @pending and last_error ne @empty ) )",
        {
            "pk": server,
            "low": prefix,
            "high": prefix + "~",
            "dead": EffectStatus.DEAD.value,
            "suppressed": EffectStatus.SUPPRESSED.value,
            "pending": EffectStatus.PENDING.value,
            "empty": "",
        },
    )
    return [codec.effect_from_entity(r) for r in rows]


_EFFECT_TITLES = {
    "redis_topology": "Redis topology refresh",
    "teams_card": "Teams card",
    "day_index": "Day index",
}


def effect_entry(effect: Effect) -> TimelineEntry:
    """A failed or held-back effect as a timeline entry from the responder itself."""
    title = f"{_EFFECT_TITLES.get(effect.name.value, effect.name.value)} ({effect.transition.value})"
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


# --- one server ----------------------------------------------------------------------------------


def server_json(state: ServerState) -> dict[str, Any]:
    topology = state.topology
    open_incident = state.open_incident()
    return {
        "server": state.server,
        "resource_id": state.resource_id or (topology.resource_id if topology else ""),
        "topology": _public_topology(topology),
        "epoch": state.epoch,
        "topology_version": state.topology_version,
        "open_incident_id": open_incident.incident_id if open_incident else None,
        "recent_incident_ids": [i.incident_id for i in reversed(state.incidents)],
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
