"""Table storage layout: keys and entity <-> value conversion (pure, no I/O).

Layer: adapter support for `table_store`. It knows the row layout of design section 4 and nothing
about the SDK's clients; it must not do I/O. Keys avoid `/ \\ # ?` and control characters
(https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model).

Partition `{server}` (server names are 3-63 of a-z, 0-9 and `-`, so they never start with `~`):
  state                                   ServerState (its ETag serialises writers)
  seen~{signal hash}                      dedupe marker (holds the incident id)
  signal~{observed_at}~{signal hash}      timeline entry, sorted by observed time
  incident~{inverted opening time}        incident aggregate, newest first
  effect~{opening time}~{transition}~{name}   outbox entry of one incident
Partition `~day~{YYYY-MM-DD}`: `{inverted opening time}~{server}` copies of incidents, newest first.
Partition `~outbox`: `{due time}~{server}~{effect row key}` pointers to pending work, soonest first.
Partition `~probe`: `{server}` what the last probe run could and could not check (for /api/health).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from failover.incidents import ArchivedIncident, DbProbeState, KnownTopology, MaintenanceNotice, ServerState
from failover.model import (
    Cause,
    Effect,
    EffectName,
    EffectStatus,
    Incident,
    IncidentStatus,
    Notification,
    Signal,
    TimelineEntry,
    Transition,
)
from failover.timeutil import iso, parse_iso, sortable

STATE_KEY = "state"
OUTBOX_PARTITION = "~outbox"
PROBE_PARTITION = "~probe"
DAY_PREFIX = "~day~"
_ID = re.compile(r"^(?P<server>[a-z0-9][a-z0-9-]{1,61}[a-z0-9])~(?P<time>\d{8}T\d{6}Z)$")
_TIME_DIGITS = 14
_MAX = 10**_TIME_DIGITS - 1


class IncidentIdError(ValueError):
    """An incident id that does not have the `{server}~{YYYYMMDDTHHMMSSZ}` shape."""


def split_incident_id(incident_id: str) -> tuple[str, str]:
    match = _ID.match(incident_id)
    if match is None:
        raise IncidentIdError("incident_id must look like {server}~YYYYMMDDTHHMMSSZ")
    return match.group("server"), match.group("time")


def inverted(time_part: str) -> str:
    """`20261125T071602Z` -> a 14-digit key that sorts newest first."""
    digits = time_part.replace("T", "").replace("Z", "")
    return f"{_MAX - int(digits):0{_TIME_DIGITS}d}"


def inverted_at(when: datetime) -> str:
    return inverted(when.strftime("%Y%m%dT%H%M%SZ"))


def seen_key(signal_hash: str) -> str:
    return f"seen~{signal_hash}"


def signal_key(signal: Signal) -> str:
    return f"signal~{sortable(signal.observed_at)}~{signal.key_hash}"


def signal_range(start: datetime, end: datetime | None, *, end_inclusive: bool = True) -> tuple[str, str]:
    """Row keys [low, high) of the timeline entries observed from `start` to `end`."""
    if end is None:
        return f"signal~{sortable(start)}", "signal~~"
    return f"signal~{sortable(start)}", f"signal~{sortable(end)}" + ("~~" if end_inclusive else "")


def incident_signal_range(incident: Incident, quiet: timedelta) -> tuple[str, str]:
    """Row keys of exactly the entries `Incident.covers` accepts (the next opening is excluded)."""
    resolved_end = incident.resolved_at + quiet if incident.resolved_at else None
    bound = incident.covers_until
    if bound is not None and (resolved_end is None or bound <= resolved_end):
        return signal_range(incident.opened_at, bound, end_inclusive=False)
    return signal_range(incident.opened_at, resolved_end)


def incident_key(incident_id: str) -> str:
    return f"incident~{inverted(split_incident_id(incident_id)[1])}"


def effect_key(incident_id: str, transition: Transition, name: EffectName) -> str:
    return f"effect~{split_incident_id(incident_id)[1]}~{transition.value}~{name.value}"


def effect_prefix(incident_id: str) -> str:
    return f"effect~{split_incident_id(incident_id)[1]}~"


def day_partition(incident_id: str) -> str:
    time_part = split_incident_id(incident_id)[1]
    return f"{DAY_PREFIX}{time_part[:4]}-{time_part[4:6]}-{time_part[6:8]}"


def day_key(incident_id: str) -> str:
    server, time_part = split_incident_id(incident_id)
    return f"{inverted(time_part)}~{server}"


def outbox_key(due: datetime, server: str, row_key: str) -> str:
    return f"{sortable(due)}~{server}~{row_key}"


# --- ServerState ---------------------------------------------------------------------------------


def state_to_entity(state: ServerState) -> dict[str, Any]:
    return {
        "PartitionKey": state.server,
        "RowKey": STATE_KEY,
        "resource_id": state.resource_id,
        "incidents": _dumps([incident_to_dict(i) for i in state.incidents]),
        "notes": _dumps([n.to_dict() for n in state.notes]),
        "topology": _dumps(topology_dict(state.topology)),
        "arm_version": state.arm_version,
        "topology_version": state.topology_version,
        "epoch": state.epoch,
        "db": _dumps(
            {
                "failing_since": iso(state.db.failing_since),
                "last_ok_write_at": iso(state.db.last_ok_write_at),
                "postmaster_started_at": iso(state.db.postmaster_started_at),
            }
        ),
        "maintenance": _dumps(
            [
                {"tracking_id": m.tracking_id, "starts_at": iso(m.starts_at), "ends_at": iso(m.ends_at)}
                for m in state.maintenance
            ]
        ),
        "signals_recorded": state.signals_recorded,
        "archive": _dumps([[a.incident_id, iso(a.opened_at), iso(a.ends_at)] for a in state.archive]),
    }


def state_from_entity(entity: Mapping[str, Any]) -> ServerState:
    db = json.loads(entity.get("db") or "{}")
    return ServerState(
        server=str(entity["PartitionKey"]),
        resource_id=str(entity.get("resource_id") or ""),
        incidents=tuple(incident_from_dict(d) for d in json.loads(entity.get("incidents") or "[]")),
        notes=tuple(Signal.from_dict(d) for d in json.loads(entity.get("notes") or "[]")),
        topology=_topology_from(json.loads(entity.get("topology") or "null")),
        arm_version=int(entity.get("arm_version") or 0),
        topology_version=int(entity.get("topology_version") or 0),
        epoch=int(entity.get("epoch") or 0),
        db=DbProbeState(
            failing_since=optional_time(db.get("failing_since")),
            last_ok_write_at=optional_time(db.get("last_ok_write_at")),
            postmaster_started_at=optional_time(db.get("postmaster_started_at")),
        ),
        maintenance=tuple(
            MaintenanceNotice(str(m["tracking_id"]), parse_iso(m["starts_at"]), parse_iso(m["ends_at"]))
            for m in json.loads(entity.get("maintenance") or "[]")
        ),
        signals_recorded=int(entity.get("signals_recorded") or 0),
        archive=tuple(
            ArchivedIncident(str(i), parse_iso(start), parse_iso(end))
            for i, start, end in json.loads(entity.get("archive") or "[]")
        ),
    )


def topology_dict(topology: KnownTopology | None) -> dict[str, Any] | None:
    if topology is None:
        return None
    return {
        "resource_id": topology.resource_id,
        "location": topology.location,
        "state": topology.state,
        "ha_mode": topology.ha_mode,
        "ha_state": topology.ha_state,
        "primary_zone": topology.primary_zone,
        "standby_zone": topology.standby_zone,
        "fqdn": topology.fqdn,
        "replicas": list(topology.replicas),
        "observed_at": iso(topology.observed_at),
    }


def _topology_from(raw: Mapping[str, Any] | None) -> KnownTopology | None:
    if not raw:
        return None
    return KnownTopology(
        resource_id=str(raw.get("resource_id") or ""),
        location=raw.get("location"),
        state=raw.get("state"),
        ha_mode=raw.get("ha_mode"),
        ha_state=raw.get("ha_state"),
        primary_zone=raw.get("primary_zone"),
        standby_zone=raw.get("standby_zone"),
        fqdn=raw.get("fqdn"),
        replicas=tuple(raw.get("replicas") or ()),
        observed_at=optional_time(raw.get("observed_at")),
    )


# --- Incident ------------------------------------------------------------------------------------


def incident_to_dict(incident: Incident) -> dict[str, Any]:
    public = incident.to_public()
    public.pop("notifications")
    return {
        **public,
        "cause_confidence": incident.cause_confidence,
        "last_signal_at": iso(incident.last_signal_at),
        "last_problem_at": iso(incident.last_problem_at),
        "last_recovery_at": iso(incident.last_recovery_at),
        "topology_at": iso(incident.topology_at),
        "covers_until": iso(incident.covers_until),
        "transitions": [t.value for t in incident.transitions],
    }


def incident_from_dict(raw: Mapping[str, Any]) -> Incident:
    downtime = raw.get("write_downtime_seconds")
    return Incident(
        incident_id=str(raw["incident_id"]),
        server=str(raw["server"]),
        resource_id=str(raw.get("resource_id") or ""),
        status=IncidentStatus(raw["status"]),
        cause=Cause(raw["cause"]),
        cause_confidence=int(raw.get("cause_confidence") or 0),
        opened_at=parse_iso(raw["opened_at"]),
        last_signal_at=parse_iso(raw["last_signal_at"]),
        last_problem_at=optional_time(raw.get("last_problem_at")),
        last_recovery_at=optional_time(raw.get("last_recovery_at")),
        primary_restored_at=optional_time(raw.get("primary_restored_at")),
        resolved_at=optional_time(raw.get("resolved_at")),
        primary_zone_before=raw.get("primary_zone_before"),
        primary_zone_after=raw.get("primary_zone_after"),
        standby_zone_after=raw.get("standby_zone_after"),
        ha_state=raw.get("ha_state"),
        topology_at=optional_time(raw.get("topology_at")),
        covers_until=optional_time(raw.get("covers_until")),
        write_downtime_seconds=None if downtime is None else float(downtime),
        signal_count=int(raw.get("signal_count") or 0),
        transitions=tuple(Transition(t) for t in raw.get("transitions") or ()),
    )


_NOTIFY_PREFIX = "notify_"


def incident_to_entity(incident: Incident) -> dict[str, Any]:
    """The incident row. Written with MERGE so the `notify_*` columns kept by effects survive."""
    return {
        "PartitionKey": incident.server,
        "RowKey": incident_key(incident.incident_id),
        "incident_id": incident.incident_id,
        "status": incident.status.value,
        "opened_at": incident.opened_at,
        "aggregate": _dumps(incident_to_dict(incident)),
    }


def notify_column(transition: Transition) -> str:
    return f"{_NOTIFY_PREFIX}{transition.value}"


def notification_value(status: EffectStatus, at: datetime) -> str:
    return _dumps({"status": status.value, "at": iso(at)})


def incident_from_entity(entity: Mapping[str, Any]) -> Incident:
    incident = incident_from_dict(json.loads(entity["aggregate"]))
    notifications = []
    for transition in Transition:
        raw = entity.get(notify_column(transition))
        if raw:
            value = json.loads(raw)
            status = EffectStatus(value["status"])
            notifications.append(Notification(transition, status, parse_iso(value["at"])))
    return replace(incident, notifications=tuple(notifications))


def day_entity(incident: Incident) -> dict[str, Any]:
    return {
        "PartitionKey": day_partition(incident.incident_id),
        "RowKey": day_key(incident.incident_id),
        "server": incident.server,
        "status": incident.status.value,
        "incident_id": incident.incident_id,
        "aggregate": _dumps(incident_to_dict(incident)),
    }


# --- Signals -------------------------------------------------------------------------------------


def signal_to_entity(signal: Signal) -> dict[str, Any]:
    return {
        "PartitionKey": signal.server,
        "RowKey": signal_key(signal),
        "signal": _dumps(signal.to_dict()),
        "kind": signal.kind.value,
        "source": signal.source.value,
    }


def seen_entity(signal: Signal, incident_id: str | None) -> dict[str, Any]:
    return {
        "PartitionKey": signal.server,
        "RowKey": seen_key(signal.key_hash),
        "incident_id": incident_id or "",
    }


def timeline_entry(entity: Mapping[str, Any]) -> TimelineEntry:
    signal = Signal.from_dict(json.loads(entity["signal"]))
    return TimelineEntry(
        at=signal.observed_at,
        source=signal.source.value,
        kind=signal.kind.value,
        summary=signal.summary,
        signal_id=signal.signal_id,
        details=dict(signal.details),
    )


# --- Effects -------------------------------------------------------------------------------------


def effect_to_entity(effect: Effect) -> dict[str, Any]:
    return {
        "PartitionKey": effect.server,
        "RowKey": effect_key(effect.incident_id, effect.transition, effect.name),
        "incident_id": effect.incident_id,
        "transition": effect.transition.value,
        "name": effect.name.value,
        "status": effect.status.value,
        "attempts": effect.attempts,
        "next_attempt_at": iso(effect.next_attempt_at) or "",
        "last_error": effect.last_error or "",
        "lease_until": iso(effect.lease_until) or "",
        "created_at": iso(effect.created_at) or "",
        "updated_at": iso(effect.updated_at) or "",
        "payload": _dumps(effect.payload),
    }


def effect_from_entity(entity: Mapping[str, Any]) -> Effect:
    return Effect(
        incident_id=str(entity["incident_id"]),
        server=str(entity["PartitionKey"]),
        transition=Transition(entity["transition"]),
        name=EffectName(entity["name"]),
        status=EffectStatus(entity["status"]),
        attempts=int(entity.get("attempts") or 0),
        next_attempt_at=optional_time(entity.get("next_attempt_at")),
        last_error=entity.get("last_error") or None,
        lease_until=optional_time(entity.get("lease_until")),
        created_at=optional_time(entity.get("created_at")),
        updated_at=optional_time(entity.get("updated_at")),
        payload=json.loads(entity.get("payload") or "{}"),
    )


def outbox_entity(effect: Effect, due: datetime, *, now: datetime) -> dict[str, Any]:
    """A pointer to a pending effect, found by the sweeper in due order."""
    row_key = effect_key(effect.incident_id, effect.transition, effect.name)
    return _outbox(effect.server, row_key, due, now=now, kind="effect", incident_id=effect.incident_id)


def resolve_check_entity(incident: Incident, due: datetime, *, now: datetime) -> dict[str, Any]:
    """A pointer asking the sweeper to settle a recovered incident once its quiet period is over."""
    marker = f"resolve~{split_incident_id(incident.incident_id)[1]}"
    return _outbox(incident.server, marker, due, now=now, kind="resolve", incident_id=incident.incident_id)


def _outbox(
    server: str, target: str, due: datetime, *, now: datetime, kind: str, incident_id: str
) -> dict[str, Any]:
    return {
        "PartitionKey": OUTBOX_PARTITION,
        "RowKey": outbox_key(due, server, target),
        "server": server,
        "target": target,
        "kind": kind,
        "incident_id": incident_id,
        "due": iso(due),
        "created_at": iso(now),
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def optional_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    return parse_iso(value)
