"""Effect decisions (pure): one set per decision, backoff with jitter and Retry-After, dead after the last."""

from __future__ import annotations

from datetime import timedelta

import pytest

from failover import effects as fx
from failover.incidents import Policy, ServerState
from failover.incidents import decide as correlate
from failover.model import EffectName, EffectStatus, SignalKind, Transition
from failover.notify.registry import CHANNELS
from tests.builders import T0, signal

NOW = T0 + timedelta(minutes=1)
RETRY = fx.RetryPolicy(max_attempts=3, base_seconds=5, max_seconds=60)


def decide(*signals):
    state = ServerState(server="pg-prod-01")
    decision = None
    for s in signals:
        decision = correlate(state, s, now=NOW, policy=Policy())
        state = decision.state
    return decision


def test_an_opening_gives_redis_teams_and_day_index_once():
    effects = fx.effects_for(decide(signal(SignalKind.DB_DOWN, 0)), now=NOW)
    assert [e.name for e in effects] == [
        EffectName.REDIS_TOPOLOGY,
        EffectName.NOTIFY_TEAMS,
        EffectName("notify_pagerduty"),
        EffectName.DAY_INDEX,
    ]
    assert {e.transition for e in effects} == {Transition.OPENED}
    assert effects[0].payload["version"] == 1


def test_a_signal_without_transition_gives_nothing():
    assert (
        fx.effects_for(decide(signal(SignalKind.DB_DOWN, 0), signal(SignalKind.HEALTH_DEGRADED, 1)), now=NOW)
        == ()
    )


def test_several_transitions_at_once_give_one_set_for_the_latest():
    effects = fx.effects_for(decide(signal(SignalKind.FAILOVER_COMPLETED, 0)), now=NOW)
    assert {e.transition for e in effects} == {Transition.PRIMARY_RESTORED}
    assert len(effects) == 2 + len(CHANNELS)  # Redis, the day index and one per channel
    assert effects[0].payload["epoch"] == 1


def test_backoff_grows_is_capped_and_honours_retry_after():
    delays = [fx.backoff(n, RETRY, jitter=1.0).total_seconds() for n in range(1, 8)]
    assert delays == [5, 10, 20, 40, 60, 60, 60]
    assert fx.backoff(1, RETRY, jitter=0.0).total_seconds() == 2.5
    assert fx.backoff(1, RETRY, jitter=0.0, retry_after=30).total_seconds() == 30
    assert fx.backoff(1, RETRY, jitter=0.0, retry_after=3600).total_seconds() == 60


def _effect(attempts):
    effect = fx.effects_for(decide(signal(SignalKind.DB_DOWN, 0)), now=NOW)[1]
    return fx.leased(effect.__class__(**{**effect.__dict__, "attempts": attempts - 1}), now=NOW, policy=RETRY)


def test_failure_keeps_it_pending_then_dead_after_the_last_attempt():
    pending = fx.after_failure(
        _effect(1), error="503", retryable=True, retry_after=None, now=NOW, policy=RETRY, jitter=0.5
    )
    assert pending.status is EffectStatus.PENDING
    assert pending.next_attempt_at is not None and pending.next_attempt_at > NOW
    assert pending.last_error == "503"
    dead = fx.after_failure(
        _effect(3), error="503", retryable=True, retry_after=None, now=NOW, policy=RETRY, jitter=0.5
    )
    assert dead.status is EffectStatus.DEAD


def test_permanent_failure_is_dead_at_once():
    dead = fx.after_failure(
        _effect(1), error="400", retryable=False, retry_after=None, now=NOW, policy=RETRY, jitter=0.5
    )
    assert dead.status is EffectStatus.DEAD


def test_a_live_lease_is_not_runnable_an_expired_one_is():
    running = _effect(1)
    assert not fx.runnable(running, NOW)
    assert fx.runnable(running, NOW + RETRY.lease)


def test_every_message_waits_for_the_window_end_then_goes_out_only_if_still_the_latest():
    for transition in Transition:
        assert fx.card_action(transition, NOW, held=False, latest=transition) == "defer"
        assert fx.card_action(transition, None, held=False, latest=Transition.RESOLVED) == "send"
    assert fx.card_action(Transition.OPENED, None, held=True, latest=Transition.OPENED) == "send"
    assert fx.card_action(Transition.OPENED, None, held=True, latest=Transition.RESOLVED) == "suppress"
    assert fx.card_action(Transition.RESOLVED, None, held=True, latest=Transition.RESOLVED) == "send"


def test_channel_effect_names_are_open_and_old_teams_rows_read_as_teams():
    assert EffectName("notify_pagerduty") is EffectName.notify("pagerduty")
    assert EffectName("notify_pagerduty").channel == "pagerduty"
    assert EffectName("teams_card").channel == "teams"  # stored before channels
    assert EffectName.DAY_INDEX.channel is None
    for bad in ("notify_", "notify_Bad", "notify_a_b", "other"):
        with pytest.raises(ValueError):
            EffectName(bad)
