"""Which effects follow an incident transition, and what happens to an effect after a failure.

Layer: pure core. Values in, values out, clock and randomness passed in. No I/O.

One set of effects per decision: when a single signal moves an incident through several
transitions at once (late or reverse-order delivery), only the latest gets effects, so people get
one card that says where things stand, never a burst of stale ones (at most three per incident).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from failover.incidents import Decision, topology_of
from failover.model import Effect, EffectName, EffectStatus, Transition
from failover.timeutil import iso

TERMINAL = frozenset({EffectStatus.DONE, EffectStatus.DEAD, EffectStatus.SUPPRESSED, EffectStatus.SKIPPED})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 5.0
    max_seconds: float = 900.0
    lease: timedelta = timedelta(seconds=60)


def effects_for(decision: Decision, *, now: datetime) -> tuple[Effect, ...]:
    transition = decision.latest_transition
    incident = decision.incident
    if transition is None or incident is None:
        return ()
    topology = topology_of(decision.state, incident, now=now)
    redis_payload = {
        "server": topology.server,
        "primary_zone": topology.primary_zone,
        "standby_zone": topology.standby_zone,
        "ha_state": topology.ha_state,
        "fqdn": topology.fqdn,
        "read_replicas": list(topology.read_replicas),
        "incident_id": topology.incident_id,
        "version": topology.version,
        "epoch": decision.state.epoch,
        "updated_at": iso(now),
    }
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
        for name in (EffectName.REDIS_TOPOLOGY, EffectName.TEAMS_CARD, EffectName.DAY_INDEX)
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


CardAction = Literal["send", "suppress", "defer"]


def card_action(transition: Transition, window_end: datetime | None) -> CardAction:
    """During a maintenance window cards are held back; the resolved card waits for the window's end."""
    if window_end is None:
        return "send"
    return "defer" if transition is Transition.RESOLVED else "suppress"
