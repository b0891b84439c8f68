"""The verification use case: after primary restored, look at the new topology until every step
is decided or the deadline passes, keep the steps, and tell the channel once about failures.

Layer: application. It orders I/O through ports only: `ServerInspector` (HA state, zones,
replicas), `DatabaseVerifier` (writer, slots, statistics), `SideRows` (the steps: one row
`verify~{incident_id}` in the server's partition, compare-and-swap by ETag) and a `notify`
callable for the one failure card. Verdicts are `failover.verification`'s (pure). It must not
sleep (the caller schedules the next run at `VerificationRun.next_at`), read the environment, or
let a failing source raise: a source that cannot be read leaves its steps pending.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from failover import verification as v
from failover.errors import ConcurrencyConflictError, FailoverError
from failover.model import Incident
from failover.ports import Clock, DatabaseVerifier, ServerInspector, SideRows, swap_row
from failover.timeutil import iso, parse_iso

log = logging.getLogger(__name__)

ROW_PREFIX = "verify~"
_CONFLICT_TRIES = 3


def row_key(incident_id: str) -> str:
    return f"{ROW_PREFIX}{incident_id}"


@dataclass(frozen=True)
class VerificationRecord:
    """The kept verification of one incident."""

    steps: tuple[v.Step, ...] = ()
    next_at: datetime | None = None
    card_sent: bool = False

    @property
    def complete(self) -> bool:
        return v.complete(self.steps)

    def to_public(self) -> list[dict[str, Any]]:
        """The incident JSON's `verification` list."""
        return [s.to_public() for s in self.steps]


def _entity(server: str, incident_id: str, record: VerificationRecord) -> dict[str, Any]:
    return {
        "PartitionKey": server,
        "RowKey": row_key(incident_id),
        "steps": json.dumps([s.to_public() for s in record.steps], separators=(",", ":")),
        "next_at": iso(record.next_at) or "",
        "card_sent": record.card_sent,
    }


def _record(entity: Mapping[str, Any]) -> VerificationRecord:
    raw = entity.get("next_at") or ""
    return VerificationRecord(
        steps=tuple(v.Step.from_public(s) for s in json.loads(entity.get("steps") or "[]")),
        next_at=parse_iso(raw) if raw else None,
        card_sent=bool(entity.get("card_sent")),
    )


def load(rows: SideRows, server: str, incident_id: str) -> VerificationRecord:
    """The kept verification of an incident (empty before the first run): lookups read this."""
    found = rows.get(server, row_key(incident_id))
    return VerificationRecord() if found is None else _record(found[0])


def with_steps(rows: SideRows, incident: Incident) -> Incident:
    """The incident with its kept verification steps (its JSON's `verification`, the resolved card)."""
    steps = load(rows, incident.server, incident.incident_id).to_public()
    return replace(incident, verification=tuple(steps))


@dataclass(frozen=True)
class VerificationRun:
    record: VerificationRecord
    newly_failed: tuple[v.Step, ...]  # the steps the one failure card reported (empty: no card)


@dataclass
class Verifying:
    inspector: ServerInspector | None
    database: DatabaseVerifier | None
    rows: SideRows
    policy: v.VerifyPolicy
    notify: Callable[[Incident, tuple[v.Step, ...]], None]
    clock: Clock

    def observe(self, incident: Incident) -> v.Observation:
        """Ask every configured source once; a source that fails leaves its steps pending."""
        view = None
        server_error = None
        if self.inspector is not None:
            try:
                view = self.inspector.get_server(incident.resource_id)
            except FailoverError as error:
                server_error = type(error).__name__
                log.warning(
                    "verification of %s: management API not read (%s)", incident.incident_id, server_error
                )
        database = self.database.inspect(incident.server) if self.database is not None else None
        return v.Observation(at=self.clock(), server=view, database=database, server_error=server_error)

    def run(self, incident: Incident) -> VerificationRun:
        """One look (call at `record.next_at`); a no-op before primary restored or once complete."""
        restored = incident.primary_restored_at
        if restored is None:
            return VerificationRun(load(self.rows, incident.server, incident.incident_id), ())
        for _ in range(_CONFLICT_TRIES):
            found = self.rows.get(incident.server, row_key(incident.incident_id))
            before = VerificationRecord() if found is None else _record(found[0])
            if before.complete and (before.card_sent or not v.failed(before.steps)):
                return VerificationRun(before, ())
            obs = self.observe(incident)
            steps = v.judge(obs, before.steps, restored_at=restored, policy=self.policy)
            after = VerificationRecord(
                steps=steps,
                next_at=v.next_run(steps, restored_at=restored, now=obs.at, policy=self.policy),
                card_sent=before.card_sent,
            )
            card = v.failed(steps) if after.complete and not after.card_sent else ()
            if card:
                after = VerificationRecord(steps, None, card_sent=True)
            entity = _entity(incident.server, incident.incident_id, after)
            try:
                swap_row(self.rows, entity, found)
            except ConcurrencyConflictError:
                continue  # another worker verified meanwhile: read its steps and go again
            self._log(incident, before, after)
            if card:
                # The record says the card is owed and sent once: a failed post is the channel's
                # outbox retry (the lead's notify effect), never a second card from here.
                self.notify(incident, card)
            return VerificationRun(after, card)
        raise ConcurrencyConflictError(f"verification of {incident.incident_id}: too many concurrent writers")

    @staticmethod
    def _log(incident: Incident, before: VerificationRecord, after: VerificationRecord) -> None:
        decided = {s.check for s in before.steps if s.status.final}
        for step in after.steps:
            if step.status.final and step.check not in decided:
                log.info(
                    "verification of %s (server %s): %s %s: %s",
                    incident.incident_id,
                    incident.server,
                    step.check.value,
                    step.status.value,
                    step.detail,
                )
