"""Use cases: record a signal, run its effects, sweep the outbox, settle quiet incidents.

Layer: application service. The one place that orders side effects: read, decide (pure),
write the outbox pointers, write the record in one transaction, then act. It talks to the outside
only through the ports it is given (store, cache, notifier) and never imports a vendor SDK.

Ordering, and why:
1. Read the state row and the signal's dedupe marker in one query (a duplicate costs one trip).
2. Decide with pure code (`incidents.correlate`, `effects.effects_for`).
3. Write pointers to the new effects in the `~outbox` partition first: a worker that dies after
   step 4 leaves work the sweeper can find; a pointer whose transaction never landed is dropped.
4. Write marker, timeline entry, state, incident and effects in one transaction (ETag on state).
   A conflict means another worker wrote first: re-read and decide again, a bounded number of times.
5. Run the effects now, each under a lease; a failure stays pending for the sweeper.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from failover import effects as fx
from failover.adapters import table_codec as codec
from failover.adapters.table_store import TableStore
from failover.errors import (
    ConcurrencyConflictError,
    FailoverError,
    NotFoundError,
    RetryableError,
    redact,
)
from failover.incidents import (
    DbProbeState,
    Decision,
    Policy,
    ServerState,
    archived_covering,
    correlate,
    resolution_due,
    revive,
    settle,
    topology_from_view,
)
from failover.model import (
    Effect,
    EffectName,
    EffectStatus,
    Incident,
    Signal,
    Topology,
)
from failover.ports import Clock, Notifier, TopologyCache
from failover.timeutil import parse_iso

log = logging.getLogger(__name__)

_CONFLICT_RETRIES = 12
_DANGLING_POINTER_AGE = timedelta(minutes=5)


@dataclass(frozen=True)
class RecordOutcome:
    status: str  # recorded | duplicate
    signal: Signal
    incident_id: str | None

    def to_public(self) -> dict[str, Any]:
        return {
            "signal_id": self.signal.signal_id,
            "status": self.status,
            "incident_id": self.incident_id,
            "kind": self.signal.kind.value,
        }


@dataclass
class SweepReport:
    examined: int = 0
    done: int = 0
    retried: int = 0
    dead: int = 0
    settled: int = 0
    dropped: int = 0


@dataclass
class Integrations:
    """The optional outside world effects act on; None means not configured (effect skipped)."""

    cache: TopologyCache | None = None
    notifier: Notifier | None = None
    card_url_for: Callable[[str], str | None] = lambda server: None
    maintenance_end: Callable[[str, datetime], datetime | None] = lambda server, now: None
    timeline_url_for: Callable[[str], str | None] = lambda incident_id: None
    redis_patterns: tuple[str, ...] = ()
    render_card: Callable[..., dict[str, Any]] | None = None


@dataclass
class Responder:
    store: TableStore
    clock: Clock
    policy: Policy = field(default_factory=Policy)
    retry: fx.RetryPolicy = field(default_factory=fx.RetryPolicy)
    integrations: Integrations = field(default_factory=Integrations)
    rand: Callable[[], float] = random.random
    sleep: Callable[[float], None] = time.sleep

    # --- recording ----------------------------------------------------------------------------

    def record(self, signal: Signal) -> RecordOutcome:
        """Record one signal exactly once and run what its transition calls for."""
        for attempt in range(_CONFLICT_RETRIES):
            snapshot = self.store.read_for_signal(signal.server, signal.key_hash)
            if snapshot.seen:
                log.info(
                    "duplicate signal %s for server %s (incident %s)",
                    signal.signal_id,
                    signal.server,
                    snapshot.seen_incident_id,
                )
                return RecordOutcome("duplicate", signal, snapshot.seen_incident_id)
            state = snapshot.state or ServerState(server=signal.server, resource_id=signal.resource_id)
            state = self._revive_for(state, signal)
            now = self.clock()
            # Resolve what is already due first, so a new failover after a quiet recovery is its own
            # incident whether or not the sweeper has run yet.
            settled = settle(state, now=now, policy=self.policy)
            state = settled[-1].state if settled else state
            before = self._incident_for(state, signal)
            decision = _with_settled(correlate(state, signal, now=now, policy=self.policy), settled)
            settled_effects = tuple(e for d in settled for e in fx.effects_for(d, now=now))
            try:
                pointers = self._write_and_commit(
                    decision, snapshot.etag, now, signal=signal, before=before, also=settled_effects
                )
            except ConcurrencyConflictError:
                self._pause(attempt)
                continue
            incident_id = decision.incident.incident_id if decision.incident else None
            log.info(
                "recorded signal %s (%s) for server %s in incident %s",
                signal.signal_id,
                signal.kind.value,
                signal.server,
                incident_id,
            )
            self._run_now(pointers)
            return RecordOutcome("recorded", signal, incident_id)
        raise ConcurrencyConflictError(f"server {signal.server}: too many concurrent writers")

    def record_all(self, signals: Iterable[Signal]) -> list[RecordOutcome]:
        return [self.record(s) for s in signals]

    def settle_server(self, server: str) -> int:
        """Resolve the server's incidents whose recovery has been quiet long enough."""
        for attempt in range(_CONFLICT_RETRIES):
            state, etag = self.store.read_state(server)
            if state is None:
                return 0
            now = self.clock()
            decisions = settle(state, now=now, policy=self.policy)
            if not decisions:
                return 0
            final = decisions[-1].state
            merged = Decision(
                state=final,
                incident=None,
                changed=tuple(d.incident for d in decisions if d.incident),
            )
            effects = tuple(e for d in decisions for e in fx.effects_for(d, now=now))
            try:
                pointers = self._commit_with_effects(merged, etag, now, effects)
            except ConcurrencyConflictError:
                self._pause(attempt)
                continue
            for d in decisions:
                log.info(
                    "incident %s of server %s resolved", d.incident.incident_id if d.incident else "?", server
                )
            self._run_now(pointers)
            return len(decisions)
        raise ConcurrencyConflictError(f"server {server}: too many concurrent writers")

    def save_probe_facts(
        self,
        server: str,
        *,
        view: dict[str, Any] | None = None,
        observed_at: datetime | None = None,
        db: DbProbeState | None = None,
    ) -> bool:
        """Keep the probes' bookkeeping (a first view, a changed view, the last good write)."""
        for attempt in range(_CONFLICT_RETRIES):
            state, etag = self.store.read_state(server)
            base = state or ServerState(server=server)
            updated = base
            if view is not None and observed_at is not None:
                topology = topology_from_view(view, base.resource_id, observed_at)
                if (
                    replace(topology, observed_at=None)
                    != replace(base.topology or topology, observed_at=None)
                    or base.topology is None
                ):
                    updated = replace(
                        updated,
                        topology=topology,
                        arm_version=base.arm_version + 1,
                        resource_id=base.resource_id or topology.resource_id,
                    )
            if db is not None and db != base.db:
                updated = replace(updated, db=db)
            if updated == base and state is not None:
                return False
            try:
                self.store.commit(updated, etag)
            except ConcurrencyConflictError:
                self._pause(attempt)
                continue
            return True
        raise ConcurrencyConflictError(f"server {server}: too many concurrent writers")

    # --- effects ------------------------------------------------------------------------------

    def sweep(self, *, limit: int = 200) -> SweepReport:
        """Retry due effects and settle due incidents. Reads only due outbox pointers."""
        report = SweepReport()
        now = self.clock()
        for item in self.store.due_outbox(now, limit):
            report.examined += 1
            try:
                if item.kind == "resolve":
                    report.settled += self.settle_server(item.server)
                    self.store.remove_outbox([item.row_key])
                    continue
                status = self.execute(item.server, item.target, pointer=item.row_key)
            except FailoverError as error:
                log.warning(
                    "sweeper: %s for server %s left for the next run: %s",
                    item.target,
                    item.server,
                    redact(str(error)),
                )
                continue
            if status is None and item.created_at and now - item.created_at > _DANGLING_POINTER_AGE:
                self.store.remove_outbox([item.row_key])
                report.dropped += 1
            elif status is EffectStatus.PENDING:
                report.retried += 1
            elif status is EffectStatus.DEAD:
                report.dead += 1
            elif status is not None:
                report.done += 1
        return report

    def execute(self, server: str, row_key: str, *, pointer: str) -> EffectStatus | None:
        """Run one effect under a lease. Returns its new status, or None if it was not ours to run."""
        found = self.store.get_effect(server, row_key)
        if found is None:
            return None
        effect, etag = found
        now = self.clock()
        if effect.status in fx.TERMINAL:
            self.store.remove_outbox([pointer])
            return effect.status
        if not fx.runnable(effect, now):
            return None
        running = fx.leased(effect, now=now, policy=self.retry)
        try:
            etag = self.store.replace_effect(running, etag)
        except ConcurrencyConflictError:
            return None  # another worker holds the lease (invariant 5)
        outcome = self._perform(running)
        try:
            self.store.replace_effect(outcome, etag)
        except ConcurrencyConflictError:
            log.warning("effect %s of incident %s: lease lost while running", row_key, effect.incident_id)
            return None
        self._after(outcome, pointer)
        return outcome.status

    def _perform(self, effect: Effect) -> Effect:
        now = self.clock()
        try:
            return self._act(effect, now)
        except RetryableError as error:
            failed = fx.after_failure(
                effect,
                error=redact(str(error)),
                retryable=True,
                retry_after=error.retry_after,
                now=now,
                policy=self.retry,
                jitter=self.rand(),
            )
        except FailoverError as error:
            failed = fx.after_failure(
                effect,
                error=redact(str(error)),
                retryable=False,
                retry_after=None,
                now=now,
                policy=self.retry,
                jitter=self.rand(),
            )
        except Exception as error:  # an adapter bug must not lose the effect: retry it, say what broke
            log.exception(
                "effect %s of incident %s failed unexpectedly", effect.name.value, effect.incident_id
            )
            failed = fx.after_failure(
                effect,
                error=redact(f"{type(error).__name__}: {error}"),
                retryable=True,
                retry_after=None,
                now=now,
                policy=self.retry,
                jitter=self.rand(),
            )
        log.warning(
            "effect %s (%s) of incident %s on server %s: %s after attempt %d: %s",
            effect.name.value,
            effect.transition.value,
            effect.incident_id,
            effect.server,
            failed.status.value,
            effect.attempts,
            failed.last_error,
        )
        return failed

    def _act(self, effect: Effect, now: datetime) -> Effect:
        if effect.name is EffectName.REDIS_TOPOLOGY:
            return self._publish_topology(effect, now)
        if effect.name is EffectName.TEAMS_CARD:
            return self._post_card(effect, now)
        incident = self._incident(effect.incident_id)
        self.store.upsert_day(incident)
        return fx.finished(effect, EffectStatus.DONE, now=now)

    def _publish_topology(self, effect: Effect, now: datetime) -> Effect:
        cache = self.integrations.cache
        if cache is None:
            return fx.finished(effect, EffectStatus.SKIPPED, now=now, note="redis not configured")
        payload = effect.payload
        topology = Topology(
            server=payload["server"],
            primary_zone=payload.get("primary_zone"),
            standby_zone=payload.get("standby_zone"),
            ha_state=payload.get("ha_state"),
            fqdn=payload.get("fqdn"),
            read_replicas=tuple(payload.get("read_replicas") or ()),
            incident_id=payload.get("incident_id"),
            version=int(payload["version"]),
            updated_at=parse_iso(payload["updated_at"]),
        )
        patterns = tuple(p.replace("{server}", effect.server) for p in self.integrations.redis_patterns)
        result = cache.publish(topology, epoch=int(payload.get("epoch") or 0), patterns=patterns)
        note = None if result.written else "a newer topology was already published"
        return fx.finished(effect, EffectStatus.DONE, now=now, note=note)

    def _post_card(self, effect: Effect, now: datetime) -> Effect:
        integrations = self.integrations
        url = integrations.card_url_for(effect.server)
        if integrations.notifier is None or url is None or integrations.render_card is None:
            return fx.finished(effect, EffectStatus.SKIPPED, now=now, note="teams not configured")
        window_end = integrations.maintenance_end(effect.server, now)
        action = fx.card_action(effect.transition, window_end)
        if action == "suppress":
            return fx.finished(effect, EffectStatus.SUPPRESSED, now=now, note="maintenance window")
        if action == "defer" and window_end is not None:
            return replace(
                effect,
                status=EffectStatus.PENDING,
                attempts=effect.attempts - 1,
                next_attempt_at=window_end,
                lease_until=None,
                updated_at=now,
                last_error="held back until the maintenance window ends",
            )
        incident = self._incident(effect.incident_id)
        card = integrations.render_card(
            incident,
            effect.transition,
            timeline_url=integrations.timeline_url_for(incident.incident_id),
            portal_url=_portal_url(incident.resource_id),
            ha_state=incident.ha_state,
        )
        integrations.notifier.post(url, card)
        return fx.finished(effect, EffectStatus.DONE, now=now)

    def _after(self, outcome: Effect, pointer: str) -> None:
        if outcome.name is EffectName.TEAMS_CARD:
            self.store.record_notification(
                outcome.incident_id, outcome.transition, outcome.status, outcome.updated_at or self.clock()
            )
        if outcome.status in fx.TERMINAL:
            self.store.remove_outbox([pointer])
            return
        due = outcome.next_attempt_at or self.clock()
        moved = codec.outbox_entity(outcome, due, now=self.clock())
        if moved["RowKey"] != pointer:
            self.store.add_outbox([moved])
            self.store.remove_outbox([pointer])

    # --- internals ----------------------------------------------------------------------------

    def _write_and_commit(
        self,
        decision: Decision,
        etag: str | None,
        now: datetime,
        *,
        signal: Signal,
        before: Incident | None,
        also: tuple[Effect, ...] = (),
    ) -> list[tuple[Effect, str]]:
        effects = also + fx.effects_for(decision, now=now)
        extra = self._resolve_pointer(decision.incident, before, now)
        incident_id = decision.incident.incident_id if decision.incident else None
        return self._commit_with_effects(
            decision, etag, now, effects, signal=signal, incident_id=incident_id, extra_pointers=extra
        )

    def _commit_with_effects(
        self,
        decision: Decision,
        etag: str | None,
        now: datetime,
        effects: tuple[Effect, ...],
        *,
        signal: Signal | None = None,
        incident_id: str | None = None,
        extra_pointers: list[dict[str, Any]] | None = None,
    ) -> list[tuple[Effect, str]]:
        pointers = [(e, codec.outbox_entity(e, now, now=now)) for e in effects]
        outbox = [p for _, p in pointers] + (extra_pointers or [])
        if outbox:
            self.store.add_outbox(outbox)
        self.store.commit(
            decision.state,
            etag,
            signal=signal,
            incident_id=incident_id,
            incidents=decision.changed,
            effects=effects,
        )
        return [(e, p["RowKey"]) for e, p in pointers]

    def _resolve_pointer(
        self, incident: Incident | None, before: Incident | None, now: datetime
    ) -> list[dict[str, Any]]:
        if incident is None:
            return []
        due = resolution_due(incident, self.policy)
        if due is None:
            return []
        if before is not None and resolution_due(before, self.policy) == due:
            return []
        return [codec.resolve_check_entity(incident, due, now=now)]

    def _run_now(self, pointers: list[tuple[Effect, str]]) -> None:
        for effect, pointer in pointers:
            row_key = codec.effect_key(effect.incident_id, effect.transition, effect.name)
            try:
                self.execute(effect.server, row_key, pointer=pointer)
            except FailoverError as error:
                # The record is safe; the sweeper finishes the effect (invariant 5).
                log.warning(
                    "effect %s of incident %s left to the sweeper: %s",
                    effect.name.value,
                    effect.incident_id,
                    redact(str(error)),
                )

    def _revive_for(self, state: ServerState, signal: Signal) -> ServerState:
        """A late signal of an incident the state row no longer keeps whole: read it back (one trip)."""
        archived = archived_covering(state, signal.observed_at, self.policy)
        if archived is None:
            return state
        incident = self.store.get_incident(archived.incident_id)
        if incident is None:  # its row never landed: forget the range rather than fail for ever
            return replace(state, archive=tuple(a for a in state.archive if a != archived))
        log.info(
            "late signal %s for server %s belongs to archived incident %s",
            signal.signal_id,
            signal.server,
            incident.incident_id,
        )
        return revive(state, incident)

    def _incident_for(self, state: ServerState, signal: Signal) -> Incident | None:
        return next((i for i in state.incidents if i.covers(signal.observed_at, self.policy.quiet)), None)

    def _incident(self, incident_id: str) -> Incident:
        incident = self.store.get_incident(incident_id)
        if incident is None:
            raise NotFoundError(f"incident {incident_id} not found")
        return incident

    def _pause(self, attempt: int) -> None:
        self.sleep(min(0.5, 0.005 * 2**attempt) * (0.5 + self.rand()))


def _with_settled(decision: Decision, settled: tuple[Decision, ...]) -> Decision:
    """The signal's decision, also rewriting the incidents that were settled just before it."""
    rows = {i.incident_id: i for d in settled for i in d.changed}
    rows.update({i.incident_id: i for i in decision.changed})
    return replace(decision, changed=tuple(rows.values()))


def _portal_url(resource_id: str) -> str | None:
    return f"https://portal.azure.com/#@/resource{resource_id}/overview" if resource_id else None


__all__ = ["Integrations", "RecordOutcome", "Responder", "SweepReport"]
