"""Which effects follow an incident transition, and what happens to an effect after a failure.

Layer: pure core. Values in, values out, clock and randomness passed in. No I/O.

One set of effects per decision: when a single signal moves an incident through several
transitions at once (late or reverse-order delivery), only the latest gets effects, so people get
one card that says where things stand, never a burst of stale ones (at most three per incident).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from failover.incidents import Decision, topology_of
from failover.model import Effect, EffectName, EffectStatus, Incident, Transition, topology_payload
from failover.notify.registry import CHANNELS

# One notification effect per registered channel (an unconfigured channel's effect is skipped).
_NOTIFY = tuple(EffectName.notify(channel) for channel in CHANNELS)
TERMINAL = frozenset({EffectStatus.DONE, EffectStatus.DEAD, EffectStatus.SUPPRESSED, EffectStatus.SKIPPED})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 5.0
    max_seconds: float = 900.0
    # Longer than the longest effect run: every call is bounded by its client timeouts (Teams and
    # PagerDuty 10 s connect + 30 s read, Redis 5 s, Table storage 3 + 10 s, retried twice), and no
    # effect sleeps in-call (the outbox is the one retry policy). A live lease is never taken over.
    lease: timedelta = timedelta(minutes=5)


ALL_EFFECTS = (EffectName.REDIS_TOPOLOGY, *_NOTIFY, EffectName.DAY_INDEX)


def effects_for(
    decision: Decision, *, now: datetime, runs: Collection[EffectName] = ALL_EFFECTS
) -> tuple[Effect, ...]:
    """The effects of every incident the decision moved, each for its latest new transition.

    `runs` names the effects this deployment carries out: one it does not (a channel or a Redis that
    is not configured) gets no row, no outbox pointer and no run.
    """
    names = tuple(name for name in ALL_EFFECTS if name in runs)
    return tuple(
        effect
        for change in decision.changes
        for effect in _effects_of(decision, change.incident, change.latest_transition, names, now=now)
    )


def _effects_of(
    decision: Decision,
    incident: Incident,
    transition: Transition | None,
    names: tuple[EffectName, ...],
    *,
    now: datetime,
) -> tuple[Effect, ...]:
    if transition is None:
        return ()
    topology = topology_of(decision.state, incident, now=now)
    redis_payload = topology_payload(topology, decision.state.epoch)
    return tuple(
        Effect(
            incident_id=incident.incident_id,
            server=incident.server,
            transition=transition,
            name=name,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
            payload=redis_payload if name is EffectName.REDIS_TOPOLOGY else {},
        )
        for name in names
    )


def backoff(
    attempts: int, policy: RetryPolicy, *, jitter: float, retry_after: float | None = None
) -> timedelta:
    """Exponential backoff with full jitter (0 <= jitter < 1), never shorter than Retry-After."""
    ceiling = min(policy.max_seconds, policy.base_seconds * 2 ** max(0, attempts - 1))
    delay = ceiling / 2 + ceiling / 2 * jitter
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.max_seconds))
    return timedelta(seconds=delay)


def after_failure(
    effect: Effect,
    *,
    error: str,
    retryable: bool,
    retry_after: float | None,
    now: datetime,
    policy: RetryPolicy,
    jitter: float,
) -> Effect:
    """Pending again with its next attempt time, or dead after the last attempt or a permanent error."""
    if not retryable or effect.attempts >= policy.max_attempts:
        return replace(
            effect,
            status=EffectStatus.DEAD,
            last_error=error,
            lease_until=None,
            updated_at=now,
            next_attempt_at=None,
        )
    delay = backoff(effect.attempts, policy, jitter=jitter, retry_after=retry_after)
    return replace(
        effect,
        status=EffectStatus.PENDING,
        last_error=error,
        lease_until=None,
        next_attempt_at=now + delay,
        updated_at=now,
    )


def finished(effect: Effect, status: EffectStatus, *, now: datetime, note: str | None = None) -> Effect:
    return replace(
        effect,
        status=status,
        lease_until=None,
        next_attempt_at=None,
        updated_at=now,
        last_error=note if note is not None else effect.last_error,
    )


def leased(effect: Effect, *, now: datetime, policy: RetryPolicy) -> Effect:
    return replace(
        effect,
        status=EffectStatus.RUNNING,
        attempts=effect.attempts + 1,
        lease_until=now + policy.lease,
        updated_at=now,
    )


def runnable(effect: Effect, now: datetime) -> bool:
    """Due and not held by a live lease: a crashed worker's lease expires and the work is taken over."""
    if effect.status is EffectStatus.PENDING:
        return effect.next_attempt_at is None or effect.next_attempt_at <= now
    if effect.status is EffectStatus.RUNNING:
        return effect.lease_until is None or effect.lease_until <= now
    return False


def runnable_at(effect: Effect, now: datetime) -> datetime:
    """When an effect that is not runnable now may run (its next attempt, or its lease's end)."""
    if effect.status is EffectStatus.RUNNING and effect.lease_until is not None:
        return effect.lease_until
    return effect.next_attempt_at or now


CardAction = Literal["send", "suppress", "defer"]


def card_action(
    transition: Transition, window_end: datetime | None, *, held: bool, latest: Transition | None
) -> CardAction:
    """During a maintenance window every message waits for the window's end (`defer`). Then a
    message that was held goes out only if its transition is still the incident's latest: an
    "opened" card whose incident resolved during the window is `suppress`ed (the resolved card
    tells it all), one whose incident is still open goes out."""
    if window_end is not None:
        return "defer"
    if held and transition is not latest:
        return "suppress"
    return "send"
