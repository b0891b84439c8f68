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
  verify~{incident id}                    post-failover verification steps (`failover.verifying`)
Partition `~day~{YYYY-MM-DD}`: `{inverted opening time}~{server}` copies of incidents, newest first.
Partition `~outbox`: `{due time}~{server}~{target}` pointers to pending work (an effect row key,
  `settle~{due}` or `verify~{incident id}`), soonest first.
Partitions `~digest~{YYYYMMDD}` and `~pace`: zone-outage digests and channel post slots
  (`failover.digesting`), reached through `side_rows()`.
Partition `~probe`: `{server}` what the last probe run could and could not check (for /api/health).
Partition `~shards`: `{shard index, 4 digits}` the tick a probe shard was last claimed for and the
  queue message that holds it (`failover.shard_claims`), reached through `side_rows()`.

Size: over 400 lines because the whole Table layout (every key, every entity) is kept in one
place, so no other module builds a row key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from failover.incidents import (
    ArchivedIncident,
    DbProbeState,
    Evidence,
    IncidentRecord,
    KnownTopology,
    MaintenanceNotice,
    ServerState,
)
from failover.lags import Family
from failover.model import (
    Cause,
    Effect,
    EffectName,
    EffectStatus,
    Incident,
    IncidentStatus,
    Notification,
    Role,
    Signal,
    SignalKind,
    TimelineEntry,
    Topology,
    Transition,
    topology_from_payload,
    topology_payload,
)
from failover.ports import Check, WorkItem
from failover.sources.resources import SERVER_NAME
from failover.timeutil import iso, parse_iso, sortable

STATE_KEY = "state"
OUTBOX_PARTITION = "~outbox"
PROBE_PARTITION = "~probe"
TOPOLOGY_PARTITION = "~topology"
DEAD_PARTITION = "~dead"
DAY_PREFIX = "~day~"
_ID = re.compile(rf"^(?P<server>{SERVER_NAME})~(?P<time>\d{{8}}T\d{{6}}Z)$")
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


def incident_signal_range(incident: Incident) -> tuple[str, str]:
    """Row keys of the entries from the incident's first to its last signal (episodes never overlap)."""
    return signal_range(incident.opened_at, incident.last_signal_at)


def incident_key(incident_id: str) -> str:
    return f"incident~{inverted(split_incident_id(incident_id)[1])}"


def effect_key(incident_id: str, transition: Transition, name: EffectName) -> str:
    return f"effect~{split_incident_id(incident_id)[1]}~{transition.value}~{name.value}"


def effect_prefix(incident_id: str) -> str:
    return f"effect~{split_incident_id(incident_id)[1]}~"


def day_partition(incident_id: str) -> str:
    time_part = split_incident_id(incident_id)[1]
    return f"{DAY_PREFIX}{time_part[:4]}-{time_part[4:6]}-{time_part[6:8]}"


def server_incident_range(
    since: datetime | None, until: datetime | None, after: str | None
) -> tuple[str, str]:
    """Row keys [low, high) of a server's incidents opened in [since, until], newest first, after `after`."""
    low = f"incident~{inverted_at(until)}" if until else "incident~"
    high = f"incident~{inverted_at(ceil_second(since))}~" if since else "incident~~"
    if after is not None:
        low = max(low, after + "\x7f")
    return low, high


def day_partition_of(day: date) -> str:
    return f"{DAY_PREFIX}{day.isoformat()}"


def day_range(since: datetime, until: datetime, after: str | None) -> tuple[str, str]:
    """Row keys [low, high) of one day partition for incidents opened in [since, until], after `after`."""
    low = inverted_at(until)
    high = f"{inverted_at(ceil_second(since))}~~"
    if after:
        low = max(low, after + " ")  # " " sorts below every key character: resume after that row
    return low, high


def ceil_second(value: datetime) -> datetime:
    """Opening times are kept to the second: `since` 07:16:02.5 starts at 07:16:03."""
    if not value.microsecond:
        return value
    return value.replace(microsecond=0) + timedelta(seconds=1)


def day_key(incident_id: str) -> str:
    server, time_part = split_incident_id(incident_id)
    return f"{inverted(time_part)}~{server}"


def outbox_key(due: datetime, server: str, row_key: str) -> str:
    return f"{sortable(due)}~{server}~{row_key}"


# --- one signal's transaction -------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One operation of an entity group transaction, independent of the SDK that submits it.

    create: insert, fail if the row exists; replace: replace only if the ETag still matches;
    merge: insert or merge columns (the incident rows keep the `notify_*` columns effects write).
    """

    kind: Literal["create", "replace", "merge"]
    entity: dict[str, Any]
    etag: str | None = None


def commit_operations(
    state: ServerState,
    etag: str | None,
    *,
    signal: Signal | None,
    incident_id: str | None,
    incidents: Iterable[Incident],
    effects: Iterable[Effect],
) -> list[Operation]:
    """Marker, timeline entry, state (under its ETag), incidents and new effects: one partition."""
    operations: list[Operation] = []
    if signal is not None:
        operations.append(Operation("create", seen_entity(signal, incident_id)))
        operations.append(Operation("create", signal_to_entity(signal)))
    state_entity = state_to_entity(state)
    operations.append(
        Operation("create", state_entity) if etag is None else Operation("replace", state_entity, etag)
    )
    operations.extend(Operation("merge", incident_to_entity(i)) for i in incidents)
    operations.extend(Operation("create", effect_to_entity(e)) for e in effects)
    return operations


# --- ServerState ---------------------------------------------------------------------------------

# A Table string property holds at most 64 KiB (32,768 UTF-16 characters); the evidence list is
# split over numbered properties below that, and the state row stays far under the 1 MiB entity
# limit because `Policy` caps every collection (docs/incident-lifecycle.md, "Bounded state").
_CHUNK = 30_000
MAX_CHUNKS = 24


def state_to_entity(state: ServerState) -> dict[str, Any]:
    evidence = _dumps([_evidence_row(e) for e in state.evidence])
    chunks = [evidence[i : i + _CHUNK] for i in range(0, len(evidence), _CHUNK)] or [""]
    if len(chunks) > MAX_CHUNKS:
        raise ValueError(f"state of {state.server}: evidence over {MAX_CHUNKS * _CHUNK} characters")
    entity: dict[str, Any] = {
        "PartitionKey": state.server,
        "RowKey": STATE_KEY,
        "resource_id": state.resource_id,
        "records": _dumps([_record_row(r) for r in state.records]),
        "evidence_chunks": len(chunks),
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
        "wake_at": iso(state.wake_at) or "",
    }
    entity.update({f"evidence_{i}": chunk for i, chunk in enumerate(chunks)})
    return entity


def state_from_entity(entity: Mapping[str, Any]) -> ServerState:
    db = json.loads(entity.get("db") or "{}")
    chunks = int(entity.get("evidence_chunks") or 0)
    evidence = "".join(str(entity.get(f"evidence_{i}") or "") for i in range(chunks)) or "[]"
    return ServerState(
        server=str(entity["PartitionKey"]),
        resource_id=str(entity.get("resource_id") or ""),
        records=tuple(_record_from(r) for r in json.loads(entity.get("records") or "[]")),
        evidence=tuple(_evidence_from(r) for r in json.loads(evidence)),
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
        wake_at=optional_time(entity.get("wake_at")),
    )


def _evidence_row(e: Evidence) -> list[Any]:
    return [
        e.key,
        e.family.value,
        e.kind.value,
        e.role.value,
        e.cause.value,
        e.confidence,
        iso(e.observed_at),
        iso(e.received_at),
        e.ha_state,
        e.downtime,
        e.zone_before,
        e.primary_zone,
        e.standby_zone,
    ]


def _evidence_from(row: list[Any]) -> Evidence:
    key, family, kind, role, cause, confidence, observed, received, ha, downtime, before, primary, standby = (
        row
    )
    return Evidence(
        key=str(key),
        family=Family(family),
        kind=SignalKind(kind),
        role=Role(role),
        cause=Cause(cause),
        confidence=int(confidence),
        observed_at=parse_iso(observed),
        received_at=parse_iso(received),
        ha_state=ha,
        downtime=downtime,
        zone_before=before,
        primary_zone=primary,
        standby_zone=standby,
    )


def _record_row(r: IncidentRecord) -> dict[str, Any]:
    return {
        "id": r.incident_id,
        "anchor": r.anchor,
        "opened_at": iso(r.opened_at),
        "last_signal_at": iso(r.last_signal_at),
        "resource_id": r.resource_id,
        "zone_before": r.zone_before,
        "announced": [t.value for t in r.announced],
        "status": r.status.value,
        "closed_at": iso(r.closed_at),
        "extra": r.extra_signals,
    }


def _record_from(raw: Mapping[str, Any]) -> IncidentRecord:
    return IncidentRecord(
        incident_id=str(raw["id"]),
        anchor=str(raw["anchor"]),
        opened_at=parse_iso(raw["opened_at"]),
        last_signal_at=parse_iso(raw["last_signal_at"]),
        resource_id=str(raw.get("resource_id") or ""),
        zone_before=raw.get("zone_before"),
        announced=tuple(Transition(t) for t in raw.get("announced") or ()),
        status=IncidentStatus(raw.get("status") or "open"),
        closed_at=optional_time(raw.get("closed_at")),
        extra_signals=int(raw.get("extra") or 0),
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
        "replica_details": [dict(r) for r in topology.replica_details],
        "endpoints": dict(topology.endpoints),
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
        replica_details=tuple(dict(r) for r in raw.get("replica_details") or ()),
        endpoints=dict(raw.get("endpoints") or {}),
    )


# --- Incident ------------------------------------------------------------------------------------

_INCIDENT_TIMES = (
    "last_signal_at",
    "primary_restored_at",
    "recovered_at",
    "resolved_at",
    "stale_at",
    "detected_at",
    "azure_alert_at",
)


def incident_to_dict(incident: Incident) -> dict[str, Any]:
    public = incident.to_public()
    public.pop("notifications")
    public.pop("detection_lead_seconds")
    public.pop("verification")  # kept in its own row (`failover.verifying`), filled by lookups
    return {
        **public,
        "cause_confidence": incident.cause_confidence,
        "last_signal_at": iso(incident.last_signal_at),
        "recovered_at": iso(incident.recovered_at),
        "transitions": [t.value for t in incident.transitions],
    }


def incident_from_dict(raw: Mapping[str, Any]) -> Incident:
    downtime = raw.get("write_downtime_seconds")
    times: dict[str, Any] = {name: optional_time(raw.get(name)) for name in _INCIDENT_TIMES}
    return Incident(
        incident_id=str(raw["incident_id"]),
        server=str(raw["server"]),
        resource_id=str(raw.get("resource_id") or ""),
        status=IncidentStatus(raw["status"]),
        cause=Cause(raw["cause"]),
        cause_confidence=int(raw.get("cause_confidence") or 0),
        opened_at=parse_iso(raw["opened_at"]),
        last_signal_at=times.pop("last_signal_at") or parse_iso(raw["opened_at"]),
        primary_zone_before=raw.get("primary_zone_before"),
        primary_zone_after=raw.get("primary_zone_after"),
        standby_zone_after=raw.get("standby_zone_after"),
        ha_state=raw.get("ha_state"),
        write_downtime_seconds=None if downtime is None else float(downtime),
        signal_count=int(raw.get("signal_count") or 0),
        transitions=tuple(Transition(t) for t in raw.get("transitions") or ()),
        **times,
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


def notify_column(transition: Transition, channel: str = "teams") -> str:
    """`notify_{transition}` for Teams (the first channel's rows keep their name), else
    `notify_{channel}_{transition}` (property names: letters, digits and underscores)."""
    if channel == "teams":
        return f"{_NOTIFY_PREFIX}{transition.value}"
    return f"{_NOTIFY_PREFIX}{channel}_{transition.value}"


def _notify_key(column: str) -> tuple[str, Transition] | None:
    rest = column[len(_NOTIFY_PREFIX) :]
    for transition in sorted(Transition, key=lambda t: -len(t.value)):
        if rest == transition.value:
            return "teams", transition
        if rest.endswith(f"_{transition.value}"):
            return rest[: -len(transition.value) - 1], transition
    return None


def notification_value(status: EffectStatus, at: datetime) -> str:
    return _dumps({"status": status.value, "at": iso(at)})


def incident_from_entity(entity: Mapping[str, Any]) -> Incident:
    incident = incident_from_dict(json.loads(entity["aggregate"]))
    notifications = []
    for column, raw in sorted(entity.items()):
        found = _notify_key(column) if column.startswith(_NOTIFY_PREFIX) and raw else None
        if found is not None:
            channel, transition = found
            value = json.loads(raw)
            at = parse_iso(value["at"])
            notifications.append(Notification(transition, EffectStatus(value["status"]), at, channel=channel))
    return replace(incident, notifications=tuple(sorted(notifications, key=lambda n: n.at)))


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
    return outbox_pointer(effect.server, row_key, due, now=now, incident_id=effect.incident_id)


def outbox_pointer(
    server: str, effect_row_key: str, due: datetime, *, now: datetime, incident_id: str
) -> dict[str, Any]:
    return _outbox(server, effect_row_key, due, now=now, kind="effect", incident_id=incident_id)


def parse_effect_key(row_key: str) -> tuple[Transition, EffectName] | None:
    """(transition, name) of an `effect~{time}~{transition}~{name}` key; None for other targets."""
    parts = row_key.split("~")
    if len(parts) != 4 or parts[0] != "effect":
        return None
    try:
        return Transition(parts[2]), EffectName(parts[3])
    except ValueError:
        return None


def check_entity(check: Check, *, now: datetime) -> dict[str, Any]:
    """A pointer asking the sweeper to settle the server when an incident may resolve or go stale,
    or to verify an incident's new topology (`failover.verifying`)."""
    if check.kind == "verify":
        row_key = f"verify~{check.incident_id}"
        return _outbox(
            check.server, row_key, check.due, now=now, kind="verify", incident_id=check.incident_id
        )
    return _outbox(
        check.server, f"settle~{sortable(check.due)}", check.due, now=now, kind="resolve", incident_id=""
    )


def outbox_entities(
    effects: Iterable[Effect], checks: Iterable[Check], *, now: datetime
) -> list[dict[str, Any]]:
    """The outbox rows of a decision: its effects' pointers first, then its checks'."""
    pointers = [outbox_entity(e, e.next_attempt_at or now, now=now) for e in effects]
    return pointers + [check_entity(c, now=now) for c in checks]


_WORK_KINDS = {"resolve": "settle", "verify": "verify"}


def work_item(row: Mapping[str, Any]) -> WorkItem:
    """The use cases' view of an outbox pointer row."""
    effect = parse_effect_key(str(row["target"]))
    return WorkItem(
        pointer=str(row["RowKey"]),
        server=str(row["server"]),
        kind=_WORK_KINDS.get(str(row.get("kind")), "effect"),
        incident_id=str(row.get("incident_id") or ""),
        transition=effect[0] if effect else None,
        name=effect[1] if effect else None,
        created_at=optional_time(row.get("created_at")),
    )


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


def dead_entity(effect: Effect) -> dict[str, Any]:
    """A dead effect's copy in the `~dead` index: newest first, keyed to stay unique."""
    row = effect_to_entity(effect)
    when = effect.updated_at or effect.created_at
    stamp = inverted_at(when) if when else "0"
    return {
        **row,
        "PartitionKey": DEAD_PARTITION,
        "RowKey": f"{stamp}~{effect.server}~{row['RowKey']}",
        "server": effect.server,
    }


def dead_row_as_effect(row: Mapping[str, Any]) -> dict[str, Any]:
    return {**row, "PartitionKey": row["server"]}


def publication_entity(topology: Topology, epoch: int) -> dict[str, Any]:
    """The reconciliation index row of one server: what Redis should hold for it."""
    return {
        "PartitionKey": TOPOLOGY_PARTITION,
        "RowKey": topology.server,
        "version": topology.version,
        "payload": _dumps(topology_payload(topology, epoch)),
    }


def publication_from_entity(entity: Mapping[str, Any]) -> tuple[Topology, int]:
    return topology_from_payload(json.loads(entity["payload"]))


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def optional_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    return parse_iso(value)
