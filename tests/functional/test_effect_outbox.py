"""Issue 13, finding 7: effects are never run twice, never lost, never stop a sweeper run, and dead ones show.

Measured on the earlier main: the 60 s lease was shorter than a Teams post with two 30 s Retry-After
waits, so the sweeper posted a card twice; an effect whose pointer was dropped stayed pending for ever;
one failing item stopped a sweeper run; /api/health hid dead effects. Memory store, the real Responder.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from failover import effects as fx
from failover.adapters.memory_store import MemoryStore
from failover.adapters.redis_cache import CacheConfigError
from failover.errors import CacheUnavailableError
from failover.incidents import Policy
from failover.model import Effect, EffectName, EffectStatus, SignalKind, Topology, Transition
from failover.notify.pipeline import NotifyPipeline
from failover.ports import PublishResult
from failover.service import Integrations, Responder
from tests.builders import T0, Recorder, signal
from tests.conftest import FakeClock
from tests.unit.test_reconcile import MemoryCache


def _responder(cache: Any = None) -> tuple[Responder, MemoryStore, FakeClock]:
    store, clock = MemoryStore(), FakeClock(T0 + timedelta(seconds=10))
    responder = Responder(
        store=store,
        clock=clock,
        policy=Policy(),
        integrations=Integrations(cache=cache),
        sleep=lambda _: None,
    )
    return responder, store, clock


def _effect(store: MemoryStore, server: str, incident_id: str | None) -> tuple[Effect, str]:
    assert incident_id is not None
    found = store.get_effect(server, incident_id, Transition.OPENED, EffectName.REDIS_TOPOLOGY)
    assert found is not None
    return found


def _redis_effect(store: MemoryStore, incident_id: str | None) -> tuple[Effect, str]:
    return _effect(store, "pg-prod-01", incident_id)


def test_no_effect_call_can_outlast_the_lease():
    """No effect sleeps in-call any more (the outbox retries), and the lease covers every client timeout."""
    assert fx.RetryPolicy().lease >= timedelta(minutes=5)


def test_a_leased_effect_keeps_its_pointer_and_runs_once_the_lease_expires():
    cache = MemoryCache(fail_on={"pg-prod-01": CacheConfigError("wrong type")})
    responder, store, clock = _responder(cache)
    outcome = responder.record(signal(SignalKind.FAILOVER_STARTED, 0))
    effect, etag = _redis_effect(store, outcome.incident_id)
    # A worker died while it held the lease: the effect is RUNNING and its pointer is old.
    store.replace_effect(
        replace(effect, status=EffectStatus.RUNNING, lease_until=clock.now + timedelta(minutes=5)), etag
    )
    store.schedule_work([replace(effect, next_attempt_at=clock.now)], now=clock.now)
    cache.fail_on.clear()
    clock.advance(5 * 60 - 1)  # the pointer is older than the dangling age; the lease is live a second more
    report = responder.sweep()
    assert report.dropped == 0 and store.pending_work_count() >= 1  # not dropped while the effect exists
    assert _redis_effect(store, outcome.incident_id)[0].status is EffectStatus.RUNNING  # not taken over
    clock.advance(2)
    responder.sweep()
    found, _ = _redis_effect(store, outcome.incident_id)
    assert found.status is EffectStatus.DONE and found.attempts == 2  # run once more, after the lease


def test_one_failing_item_never_stops_a_sweeper_run():
    class Exploding(MemoryCache):
        armed = False

        def publish(self, topology: Topology, *, epoch: int, patterns: tuple[str, ...] = ()) -> PublishResult:
            if self.armed and topology.server == "pg-bad-01":
                raise RuntimeError("an adapter bug")
            return super().publish(topology, epoch=epoch, patterns=patterns)

    cache = Exploding()
    responder, store, clock = _responder(cache)
    for server in ("pg-bad-01", "pg-ok-01", "pg-ok-02"):
        responder.record(signal(SignalKind.FAILOVER_STARTED, 0, server=server))
    store.finish_work(store.due_work(clock.now + timedelta(days=1), 100))
    for server in ("pg-bad-01", "pg-ok-01", "pg-ok-02"):
        state, _ = store.read_state(server)
        assert state is not None
        (record,) = state.records
        found = _effect(store, server, record.incident_id)
        store.schedule_work([replace(found[0], status=EffectStatus.PENDING)], now=clock.now)
        store.replace_effect(
            replace(found[0], status=EffectStatus.PENDING, next_attempt_at=clock.now), found[1]
        )
    cache.armed = True
    cache.published.clear()
    report = responder.sweep()
    assert sorted(set(cache.published)) == ["pg-ok-01", "pg-ok-02"]
    assert report.examined == 3


def test_a_dead_effect_is_indexed_for_health():
    cache = MemoryCache(fail_on={"pg-prod-01": CacheConfigError("WRONGTYPE")})
    responder, store, _ = _responder(cache)
    outcome = responder.record(signal(SignalKind.FAILOVER_STARTED, 0))
    (dead,) = store.dead_effects(10)
    assert (dead.incident_id, dead.name, dead.status) == (
        outcome.incident_id,
        EffectName.REDIS_TOPOLOGY,
        EffectStatus.DEAD,
    )
    assert "WRONGTYPE" in (dead.last_error or "")


def test_an_effect_the_deployment_does_not_run_gets_no_row_pointer_or_run():
    """Before: every registered channel and Redis got an effect row, an outbox pointer and a run that
    only said "not configured" (about 4 Table round trips each in the storm benchmark)."""
    store, clock = MemoryStore(), FakeClock(T0 + timedelta(seconds=10))
    teams = Recorder()
    responder = Responder(
        store=store,
        clock=clock,
        integrations=Integrations(notify=NotifyPipeline(channels={"teams": teams})),
        sleep=lambda _: None,
    )
    outcome = responder.record(signal(SignalKind.FAILOVER_STARTED, 0))
    assert outcome.incident_id is not None
    names = {e.name for e in store.effects_of(outcome.incident_id)}
    assert names == {EffectName.NOTIFY_TEAMS, EffectName.DAY_INDEX}
    left = store.due_work(clock.now + timedelta(days=1), 100)
    assert len(teams.sent) == 1 and [w.kind for w in left] == ["settle"]  # the resolution check only


def test_a_topology_change_redis_refused_at_once_is_written_by_the_next_sweep():
    """Issue 12: a change no transition carries is published at once; when Redis is down then, the
    recording still succeeds and the sweeper's reconciliation writes it from the publication index."""
    cache = MemoryCache(fail_on={"pg-prod-01": CacheUnavailableError("redis unreachable (ConnectionError)")})
    responder, store, _ = _responder(cache)
    view = {"primary_zone": "1", "standby_zone": "2", "ha_state": "Healthy"}
    assert responder.save_probe_facts("pg-prod-01", view=view, observed_at=T0)  # the record is kept
    assert cache.versions == {}  # Redis refused the immediate write
    cache.fail_on.clear()
    report = responder.sweep()
    state, _ = store.read_state("pg-prod-01")
    assert state is not None and report.reconciled == 1
    assert cache.versions == {"pg-prod-01": state.topology_version}
