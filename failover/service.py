"""Use cases: record a signal, run its effects, sweep the outbox, settle quiet incidents.

Layer: application service. The one place that orders side effects: read, decide (pure),
write the outbox pointers, write the record in one transaction, then act. It talks to the outside
only through the ports it is given (store, cache, notifier) and never imports a vendor SDK.

Ordering, and why:
1. Read the server's state and the signal's dedupe marker together (a duplicate costs one read);
   a very late signal of an archived incident also reads that incident back.
2. Decide with one pure call (`incidents.decide`, then `effects.effects_for` on its changes).
3. Schedule the new effects in the outbox first: a worker that dies after step 4 leaves work the
   sweeper can find; a pointer whose transaction never landed is dropped.
4. Commit marker, timeline entry, state, incidents and effects in one transaction (ETag on state).
   A conflict means another worker wrote first: re-read and decide again, a bounded number of times.
5. Run the effects now, each under a lease; a failure stays pending for the sweeper.

It speaks to storage only through the `IncidentStore` port: no row key or filter is built here.

Size: over 400 lines because it is the one place that orders side effects (record, settle, sweep,
run an effect, reconcile, verify): splitting it would split that ordering.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from failover import effects as fx
from failover.digesting import ZoneDigest
from failover.errors import (
    ConcurrencyConflictError,
    FailoverError,
    NotFoundError,
    RetryableError,
)
from failover.incidents import (
    DbProbeState,
    Decision,
    Policy,
    ServerState,
    absorb_view,
    archived_for,
    decide,
    settle,
    topology_of,
)
from failover.model import (
    Effect,
    EffectName,
    EffectStatus,
    Incident,
    Signal,
    Source,
    Transition,
    topology_from_payload,
)
from failover.notify.pipeline import NotifyPipeline
from failover.ports import Check, Clock, IncidentStore, TopologyCache, WorkItem
from failover.reconcile import Publication, reconcile
from failover.scope import OTHER_RESOURCE, AcceptedScope
from failover.secrets import redact
from failover.turns import ServerTurns
from failover.verifying import Verifying

log = logging.getLogger(__name__)

# Concurrent writers of one server take turns by ETag; with 8 at once on one server (an alert storm
# plus the probes) a writer may lose a dozen rounds. Bounded: after this, 503 and Azure redelivers.
_CONFLICT_RETRIES = 30
_DANGLING_POINTER_AGE = timedelta(minutes=5)


@dataclass(frozen=True)
class RecordOutcome:
    status: str  # recorded | duplicate | ignored
    signal: Signal
    incident_id: str | None
    reason: str | None = None  # why it was ignored

    def to_public(self) -> dict[str, Any]:
        return {
            "signal_id": self.signal.signal_id,
            "status": self.status,
            "incident_id": self.incident_id,
            "kind": self.signal.kind.value,
            **({"reason": self.reason} if self.reason else {}),
        }


@dataclass
class SweepReport:
    examined: int = 0
    done: int = 0
    retried: int = 0
    dead: int = 0
    settled: int = 0
    dropped: int = 0
    failed: int = 0  # items that raised: left for the next run
    left: int = 0  # due items not taken because the run's budget was spent
    reconciled: int = 0  # topologies written again to Redis
    verified: int = 0  # verification looks taken (post-failover checks)
    digests: int = 0  # zone-outage digest cards posted


@dataclass(frozen=True)
class ReconcileBudget:
    """How much one sweeper run may spend on reconciliation (the sweeper runs every minute)."""

    max_servers: int = 2000
    max_writes: int = 500
    max_seconds: float = 20.0


@dataclass
class Integrations:
    """The optional outside world effects act on; None or no channel means not configured (skipped)."""

    cache: TopologyCache | None = None
    notify: NotifyPipeline = field(default_factory=NotifyPipeline)
    redis_patterns: tuple[str, ...] = ()
    verifying: Verifying | None = None  # post-failover verification (needs the probes configured)
    digest: ZoneDigest | None = None  # zone-outage digest cards (needs a channel)

    def runs(self) -> frozenset[EffectName]:
        """The effects this deployment carries out: the day index, Redis and each configured channel."""
        names = {EffectName.DAY_INDEX, *(EffectName.notify(c) for c in self.notify.channels)}
        if self.cache is not None:
            names.add(EffectName.REDIS_TOPOLOGY)
        return frozenset(names)


@dataclass
class Responder:
    store: IncidentStore
    clock: Clock
    policy: Policy = field(default_factory=Policy)
    retry: fx.RetryPolicy = field(default_factory=fx.RetryPolicy)
    integrations: Integrations = field(default_factory=Integrations)
    rand: Callable[[], float] = random.random
    sleep: Callable[[float], None] = time.sleep
    reconcile_budget: ReconcileBudget = field(default_factory=ReconcileBudget)
    monotonic: Callable[[], float] = time.monotonic
    scope: AcceptedScope = field(default_factory=AcceptedScope)
    ignored: dict[str, int] = field(default_factory=dict)  # signals ignored since start, by reason
    _counts_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _turns: ServerTurns = field(default_factory=ServerTurns, repr=False)

    # --- recording ----------------------------------------------------------------------------

    def record(self, signal: Signal) -> RecordOutcome:
        """Record one signal exactly once and run what its transition calls for."""
        refusal = self.scope.refusal(signal.resource_id) if signal.resource_id else None
        if refusal is not None:
            return self._ignored(signal, refusal)
        with self._turns.of(signal.server):
            outcome, work = self._record(signal)
        self._run_now(work)
        return outcome

    def _record(self, signal: Signal) -> tuple[RecordOutcome, list[WorkItem]]:
        for attempt in range(_CONFLICT_RETRIES):
            snapshot = self.store.read_for_signal(signal.server, signal.key_hash)
            if _foreign(snapshot.state, signal):
                return self._ignored(signal, OTHER_RESOURCE), []
            if snapshot.seen:
                log.info(
                    "duplicate signal %s for server %s (incident %s)",
                    signal.signal_id,
                    signal.server,
                    snapshot.seen_incident_id,
                )
                return RecordOutcome("duplicate", signal, snapshot.seen_incident_id), []
            state = snapshot.state or ServerState(server=signal.server, resource_id=signal.resource_id)
            late = archived_for(state, signal)
            archived = self.store.get_incident(late) if late else None
            decision = decide(state, signal, now=self.clock(), policy=self.policy, archived=archived)
            try:
                work = self._commit(decision, snapshot.etag, before=snapshot.state)
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
            return RecordOutcome("recorded", signal, incident_id), work
        raise ConcurrencyConflictError(f"server {signal.server}: too many concurrent writers")

    def _ignored(self, signal: Signal, reason: str) -> RecordOutcome:
        with self._counts_lock:
            self.ignored[reason] = self.ignored.get(reason, 0) + 1
        # DEBUG: a widely scoped action group sends these all day; /api/health counts them.
        log.debug("signal %s about server %s ignored: %s", signal.signal_id, signal.server, reason)
        return RecordOutcome("ignored", signal, None, reason)

    def record_all(self, signals: Iterable[Signal]) -> list[RecordOutcome]:
        return [self.record(s) for s in signals]

    def settle_server(self, server: str) -> int:
        """Resolve or close the server's incidents that are due; returns how many changed status."""
        for attempt in range(_CONFLICT_RETRIES):
            with self._turns.of(server):
                state, etag = self.store.read_state(server)
                if state is None:
                    return 0
                decision = settle(state, now=self.clock(), policy=self.policy)
                if decision.state == state:
                    return 0
                try:
                    work = self._commit(decision, etag, before=state)
                except ConcurrencyConflictError:
                    work = None
            if work is None:
                self._pause(attempt)
                continue
            for change in decision.changes:
                log.info(
                    "incident %s of server %s is %s",
                    change.incident.incident_id,
                    server,
                    change.incident.status.value,
                )
            self._run_now(work)
            return sum(1 for c in decision.changes if c.transitions)
        raise ConcurrencyConflictError(f"server {server}: too many concurrent writers")

    def save_probe_facts(
        self,
        server: str,
        *,
        view: dict[str, Any] | None = None,
        observed_at: datetime | None = None,
        db: DbProbeState | None = None,
        known: tuple[ServerState | None, str | None] | None = None,
    ) -> bool:
        """Keep the probes' bookkeeping (a first view, a changed view, the last good write).

        `known` is the state and ETag the caller has just read (saves a read; a stale one costs a
        refused write and a fresh read, as any conflict does)."""
        for attempt in range(_CONFLICT_RETRIES):
            with self._turns.of(server):
                state, etag = known if known is not None and attempt == 0 else self.store.read_state(server)
                base = state or ServerState(server=server)
                updated = base
                if view is not None and observed_at is not None:
                    updated = absorb_view(updated, view, observed_at)
                if db is not None and db != base.db:
                    updated = replace(updated, db=db)
                if updated == base and state is not None:
                    return False
                try:
                    self.store.commit(updated, etag)
                    committed = True
                except ConcurrencyConflictError:
                    committed = False
            if not committed:
                self._pause(attempt)
                continue
            self._follow_topology(updated, state, self.clock())
            return True
        raise ConcurrencyConflictError(f"server {server}: too many concurrent writers")

    # --- effects ------------------------------------------------------------------------------

    def sweep(self, *, limit: int = 200, budget: timedelta | None = None) -> SweepReport:
        """Retry due effects and settle due servers. Reads only due outbox pointers.

        With a `budget`, no new item is taken once it is spent: the rest stays due for the next run
        and is counted in `left` (a run must end within its timer period).
        """
        report = SweepReport()
        now = self.clock()
        started = self.monotonic()
        due = self.store.due_work(now, limit)
        for index, item in enumerate(due):
            if budget is not None and self.monotonic() - started >= budget.total_seconds():
                report.left = len(due) - index
                log.warning("sweeper: budget spent, %d due item(s) left for the next run", report.left)
                break
            report.examined += 1
            try:
                if item.kind == "settle":
                    report.settled += self.settle_server(item.server)
                    self.store.finish_work([item])
                    continue
                if item.kind == "verify":
                    report.verified += self._verify(item)
                    continue
                status = self.execute(item)
            except Exception as error:  # one failing item never stops a run (FailoverError or a bug)
                log.warning(
                    "sweeper: %s work of incident %s on server %s left for the next run: %s",
                    item.kind,
                    item.incident_id,
                    item.server,
                    redact(f"{type(error).__name__}: {error}"),
                )
                report.failed += 1
                continue
            if status is None and item.created_at and now - item.created_at > _DANGLING_POINTER_AGE:
                self.store.finish_work([item])  # its effect never landed (the commit failed)
                report.dropped += 1
            elif status in (EffectStatus.PENDING, EffectStatus.RUNNING):
                report.retried += 1
            elif status is EffectStatus.DEAD:
                report.dead += 1
            elif status is not None:
                report.done += 1
        report.reconciled = self._reconcile()
        report.digests = self._flush_digests()
        return report

    def _verify(self, item: WorkItem) -> int:
        """One look at an incident's new topology; the next look is a new pointer at its time."""
        verifying = self.integrations.verifying
        incident = self.store.get_incident(item.incident_id) if verifying is not None else None
        looked = 0
        if verifying is not None and incident is not None:
            run = verifying.run(incident)
            looked = 1
            if run.record.next_at is not None:
                again = Check("verify", item.server, run.record.next_at, item.incident_id)
                self.store.schedule_work((), now=self.clock(), checks=[again])
        self.store.finish_work([item])
        return looked

    def _flush_digests(self) -> int:
        """Post the zone-outage digest cards that are due (a failure waits for the next run)."""
        digest = self.integrations.digest
        if digest is None:
            return 0
        try:
            return digest.flush()
        except FailoverError as error:
            log.warning("sweeper: zone digests left for the next run: %s", redact(str(error)))
            return 0

    def _reconcile(self) -> int:
        """Write again what Redis lost (a restart without persistence, a flush, a lost effect)."""
        cache = self.integrations.cache
        if cache is None:
            return 0
        known = self.store.publications(self.reconcile_budget.max_servers)
        result = reconcile(
            cache,
            lambda: (Publication(topology, epoch) for topology, epoch in known),
            max_writes=self.reconcile_budget.max_writes,
            max_seconds=self.reconcile_budget.max_seconds,
        )
        if result.written or result.error:
            log.info(
                "reconciliation: %d of %d servers stale in redis, %d written%s",
                result.stale,
                result.checked,
                result.written,
                f" ({result.error})" if result.error else "",
            )
        return result.written

    def execute(self, item: WorkItem) -> EffectStatus | None:
        """Run one effect under a lease. Returns its status after this call; None if it does not exist.

        An effect that is not due, or leased by another worker, keeps a pointer at the time it may
        run (its pointer is never dropped while the effect exists: a crashed worker's lease expires
        and the sweeper takes the work over).
        """
        if item.transition is None or item.name is None:
            return None
        found = self.store.get_effect(item.server, item.incident_id, item.transition, item.name)
        if found is None:
            return None
        effect, etag = found
        now = self.clock()
        if effect.status in fx.TERMINAL:
            self.store.finish_work([item])
            return effect.status
        if not fx.runnable(effect, now):
            self.store.move_work(item, fx.runnable_at(effect, now), now=now)
            return effect.status
        running = fx.leased(effect, now=now, policy=self.retry)
        try:
            etag = self.store.replace_effect(running, etag)
        except ConcurrencyConflictError:
            return EffectStatus.RUNNING  # another worker holds the lease (invariant 5)
        outcome = self._perform(running)
        try:
            self.store.replace_effect(outcome, etag)
        except ConcurrencyConflictError:
            log.warning(
                "effect %s of incident %s on server %s: lease lost while running",
                effect.name.value,
                effect.incident_id,
                effect.server,
            )
            return EffectStatus.RUNNING
        self._after(outcome, item)
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
        if effect.name.channel is not None:
            return self._post_card(effect, now)
        incident = self._incident(effect.incident_id)
        self.store.upsert_day(incident)
        return fx.finished(effect, EffectStatus.DONE, now=now)

    def _publish_topology(self, effect: Effect, now: datetime) -> Effect:
        cache = self.integrations.cache
        if cache is None:
            return fx.finished(effect, EffectStatus.SKIPPED, now=now, note="redis not configured")
        topology, epoch = topology_from_payload(effect.payload)
        # What reconciliation republishes follows what is published (kept off the recording path).
        self.store.save_publication(topology, epoch)
        patterns = tuple(p.replace("{server}", effect.server) for p in self.integrations.redis_patterns)
        result = cache.publish(topology, epoch=epoch, patterns=patterns)
        note = None if result.written else "a newer topology was already published"
        return fx.finished(effect, EffectStatus.DONE, now=now, note=note)

    def _post_card(self, effect: Effect, now: datetime) -> Effect:
        """A notification effect, through the one pipeline in front of every channel."""
        return self.integrations.notify.deliver(effect, lambda: self._incident(effect.incident_id), now=now)

    def _after(self, outcome: Effect, item: WorkItem) -> None:
        channel = outcome.name.channel
        if channel is not None and outcome.status is not EffectStatus.SKIPPED:
            at = outcome.updated_at or self.clock()
            self.store.record_notification(
                outcome.incident_id, outcome.transition, outcome.status, at, channel=channel
            )
        if outcome.status is EffectStatus.DEAD:
            self.store.record_dead(outcome)
        if outcome.status in fx.TERMINAL:
            self.store.finish_work([item])
            return
        self.store.move_work(item, outcome.next_attempt_at or self.clock(), now=self.clock())

    # --- internals ----------------------------------------------------------------------------

    def _commit(self, decision: Decision, etag: str | None, *, before: ServerState | None) -> list[WorkItem]:
        """Schedule the decision's effects (its settle check, its verification), then commit it in one
        transaction."""
        now = self.clock()
        effects = fx.effects_for(decision, now=now, runs=self.integrations.runs())
        state = decision.state
        checks = self._checks(decision, before, now)
        work = self.store.schedule_work(effects, now=now, checks=checks) if effects or checks else []
        self.store.commit(
            state,
            etag,
            signal=decision.signal,
            incident_id=decision.incident.incident_id if decision.incident else None,
            incidents=decision.changed,
            effects=effects,
        )
        if not any(e.name is EffectName.REDIS_TOPOLOGY for e in effects):
            self._follow_topology(state, before, now)
        return work

    def _checks(self, decision: Decision, before: ServerState | None, now: datetime) -> list[Check]:
        """What the sweeper must look at later: the server when its wake time moved, each incident
        whose primary was just restored (verification, when configured)."""
        state = decision.state
        checks = []
        if state.wake_at is not None and state.wake_at != (before.wake_at if before else None):
            checks.append(Check("settle", state.server, state.wake_at))
        if self.integrations.verifying is not None:
            checks += [
                Check("verify", state.server, now, change.incident.incident_id)
                for change in decision.changes
                if Transition.PRIMARY_RESTORED in change.transitions
            ]
        return checks

    def _follow_topology(self, state: ServerState, before: ServerState | None, now: datetime) -> None:
        """Publish a topology change that no incident transition carries (a primary seen in its new
        zone after the restore, a replica that broke), at once rather than at the next transition.

        Best effort by design: the publication index is written first, so when Redis is down the
        sweeper's reconciliation writes it within one period (the record itself is already safe).
        """
        known = (before.topology_version, before.epoch) if before is not None else (0, 0)
        if known == (state.topology_version, state.epoch):
            return
        topology = topology_of(state, None, now=now)
        try:
            self.store.save_publication(topology, state.epoch)
            if self.integrations.cache is not None:
                self.integrations.cache.publish(topology, epoch=state.epoch)
        except FailoverError as error:
            log.warning(
                "server %s: topology version %d left for reconciliation: %s",
                state.server,
                state.topology_version,
                redact(str(error)),
            )

    def _run_now(self, work: list[WorkItem]) -> None:
        for item in work:
            try:
                self.execute(item)
            except FailoverError as error:
                # The record is safe; the sweeper finishes the effect (invariant 5).
                log.warning(
                    "effect %s of incident %s on server %s left to the sweeper: %s",
                    item.name.value if item.name else "?",
                    item.incident_id,
                    item.server,
                    redact(str(error)),
                )

    def _incident(self, incident_id: str) -> Incident:
        incident = self.store.get_incident(incident_id)
        if incident is None:
            raise NotFoundError(f"incident {incident_id} not found")
        return incident

    def _pause(self, attempt: int) -> None:
        self.sleep(min(0.25, 0.005 * 2**attempt) * (0.5 + self.rand()))  # jittered, capped


def _foreign(state: ServerState | None, signal: Signal) -> bool:
    """A signal naming the server under another resource id than the one the probes or the first
    accepted signal established. Only the probes (which watch the configured id) may re-bind it."""
    if state is None or not state.resource_id or not signal.resource_id:
        return False
    if signal.source in (Source.ARM_PROBE, Source.DB_PROBE):
        return False
    return state.resource_id.lower() != signal.resource_id.lower()


__all__ = ["Integrations", "RecordOutcome", "Responder", "SweepReport"]
