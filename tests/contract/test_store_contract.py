"""One contract for the `IncidentStore` port, run against Azure Table storage (Azurite) and the memory store.

What the use cases rely on: ETag compare-and-swap on the state, insert-if-absent markers, all-or-nothing
commits, the outbox, effect leases, and the Table limits (so the fake refuses what Azure refuses and the
bounded state stays inside them). If the memory store drifted from the real service, this fails.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from failover.adapters.memory_store import MemoryStore
from failover.errors import ConcurrencyConflictError, FailoverError
from failover.incidents import Policy, ServerState, decide, derive
from failover.model import (
    Cause,
    Effect,
    EffectName,
    EffectStatus,
    IncidentStatus,
    SignalKind,
    Source,
    Transition,
)
from failover.ports import Check
from failover.timeutil import iso
from tests.builders import T0, signal

POLICY = Policy()


@pytest.fixture(params=["memory", "azurite"])
def any_store(request):
    if request.param == "memory":
        yield MemoryStore()
    else:
        yield request.getfixturevalue("store")


def _decided(*signals):
    state = ServerState(server="pg-prod-01")
    decisions = []
    for s in signals:
        decision = decide(state, s, now=s.received_at, policy=POLICY)
        state = decision.state
        decisions.append(decision)
    return decisions


def _commit(store, decision, etag):
    store.commit(
        decision.state,
        etag,
        signal=decision.signal,
        incident_id=decision.incident.incident_id if decision.incident else None,
        incidents=decision.changed,
    )


def test_a_new_state_is_created_once_and_then_replaced_only_under_its_etag(any_store):
    first, second = _decided(
        signal(SignalKind.FAILOVER_STARTED, 0, cause=Cause.FORCED, confidence=3),
        signal(SignalKind.HEALTH_UNAVAILABLE, 5),
    )
    _commit(any_store, first, None)
    snapshot = any_store.read_for_signal("pg-prod-01", second.signal.key_hash)
    assert snapshot.state == first.state and snapshot.etag and not snapshot.seen
    with pytest.raises(ConcurrencyConflictError):
        _commit(any_store, first, None)  # a second creator loses
    _commit(any_store, second, snapshot.etag)
    with pytest.raises(ConcurrencyConflictError):
        _commit(any_store, second, snapshot.etag)  # a stale ETag loses, and nothing of it lands
    again = any_store.read_for_signal("pg-prod-01", second.signal.key_hash)
    assert again.seen and again.seen_incident_id == second.incident.incident_id
    assert again.state == second.state


def test_a_failed_commit_leaves_nothing_behind(any_store):
    (first,) = _decided(signal(SignalKind.FAILOVER_STARTED, 0))
    _commit(any_store, first, None)
    (other,) = _decided(signal(SignalKind.HEALTH_DEGRADED, 9, signal_id="other"))
    with pytest.raises(ConcurrencyConflictError):
        _commit(any_store, other, '"W/stale"' if isinstance(any_store, MemoryStore) else "W/\"datetime'1'\"")
    assert not any_store.read_for_signal("pg-prod-01", other.signal.key_hash).seen
    incident = derive(first.state, now=T0, policy=POLICY)[0]
    assert len(any_store.timeline(replace(incident, last_signal_at=T0 + timedelta(seconds=30)))) == 1


def test_a_state_only_commit_is_created_once_and_replaced_only_under_its_etag(any_store):
    """A commit of the state alone (the probes' bookkeeping) is one operation: on Azure Table it goes
    as the plain entity call, not a batch (issue 15), with the same create-once and ETag rules."""
    state = ServerState(server="pg-prod-01")
    any_store.commit(state, None)
    with pytest.raises(ConcurrencyConflictError):
        any_store.commit(state, None)
    stored, etag = any_store.read_state("pg-prod-01")
    assert stored == state and etag
    moved = replace(state, resource_id="/subscriptions/s/resourceGroups/rg/providers/x/y/pg-prod-01")
    any_store.commit(moved, etag)
    with pytest.raises(ConcurrencyConflictError):
        any_store.commit(replace(moved, resource_id="stale"), etag)
    assert any_store.read_state("pg-prod-01")[0] == moved


def test_incidents_timeline_and_lookups_round_trip(any_store):
    decisions = _decided(
        signal(SignalKind.FAILOVER_STARTED, 0, cause=Cause.FORCED, confidence=3),
        signal(SignalKind.WRITE_RESTORED, 9, source=Source.DB_PROBE, details={"downtime_seconds": 8.0}),
    )
    etag = None
    for decision in decisions:
        _commit(any_store, decision, etag)
        _, etag = any_store.read_state("pg-prod-01")
    incident = decisions[-1].incident
    stored = any_store.get_incident(incident.incident_id)
    assert stored == incident
    assert [e.kind for e in any_store.timeline(stored)] == ["failover_started", "write_restored"]
    page = any_store.incidents_of_server(
        "pg-prod-01", since=None, until=None, status=IncidentStatus.OPEN, limit=5, after=None
    )
    assert [i.incident_id for i in page.incidents] == [incident.incident_id] and page.next_key is None
    any_store.upsert_day(incident)
    day = any_store.incidents_of_day(
        date(2026, 11, 25),
        since=T0 - timedelta(hours=1),
        until=T0 + timedelta(hours=1),
        after=None,
        status=None,
        limit=5,
    )
    assert [i.incident_id for _, i in day] == [incident.incident_id]


def test_a_decisions_effects_and_checks_are_one_outbox_write(any_store):
    """Issue 15: the settle and verify pointers of a decision join its effects' write (before: one
    transaction each)."""
    (decision,) = _decided(signal(SignalKind.FAILOVER_STARTED, 0))
    incident_id = decision.incident.incident_id
    effect = Effect(incident_id, "pg-prod-01", Transition.OPENED, EffectName.TEAMS_CARD, created_at=T0)
    checks = [
        Check("settle", "pg-prod-01", T0 + timedelta(minutes=5)),
        Check("verify", "pg-prod-01", T0, incident_id),
    ]
    before = any_store.round_trips
    work = any_store.schedule_work([effect], now=T0, checks=checks)
    assert any_store.round_trips - before == 1
    assert [w.kind for w in work] == ["effect"]
    due = any_store.due_work(T0 + timedelta(minutes=6), 10)
    assert sorted((w.kind, w.incident_id) for w in due) == [
        ("effect", incident_id),
        ("settle", ""),
        ("verify", incident_id),
    ]


def test_outbox_work_is_found_when_due_moved_and_finished(any_store):
    (decision,) = _decided(signal(SignalKind.FAILOVER_STARTED, 0))
    effect = Effect(
        decision.incident.incident_id, "pg-prod-01", Transition.OPENED, EffectName.TEAMS_CARD, created_at=T0
    )
    (item,) = any_store.schedule_work([effect], now=T0)
    any_store.schedule_work((), now=T0, checks=[Check("settle", "pg-prod-01", T0 + timedelta(minutes=5))])
    assert [w.kind for w in any_store.due_work(T0, 10)] == ["effect"]
    assert sorted(w.kind for w in any_store.due_work(T0 + timedelta(minutes=6), 10)) == ["effect", "settle"]
    moved = any_store.move_work(item, T0 + timedelta(minutes=10), now=T0)
    assert (moved.transition, moved.name, moved.incident_id) == (
        Transition.OPENED,
        EffectName.TEAMS_CARD,
        effect.incident_id,
    )
    assert [w.kind for w in any_store.due_work(T0 + timedelta(minutes=6), 10)] == ["settle"]
    any_store.finish_work(any_store.due_work(T0 + timedelta(hours=1), 10))
    any_store.finish_work([moved])  # finishing twice is fine (two sweepers)
    assert any_store.pending_work_count() == 0


def test_an_effect_lease_is_a_compare_and_swap(any_store):
    (decision,) = _decided(signal(SignalKind.FAILOVER_STARTED, 0))
    effect = Effect(
        decision.incident.incident_id, "pg-prod-01", Transition.OPENED, EffectName.DAY_INDEX, created_at=T0
    )
    any_store.commit(decision.state, None, incidents=decision.changed, effects=[effect])
    found, etag = any_store.get_effect(
        "pg-prod-01", effect.incident_id, Transition.OPENED, EffectName.DAY_INDEX
    )
    assert found == effect
    running = replace(found, status=EffectStatus.RUNNING, attempts=1)
    any_store.replace_effect(running, etag)
    with pytest.raises(ConcurrencyConflictError):
        any_store.replace_effect(running, etag)  # the second worker does not get the lease
    assert [e.status for e in any_store.effects_of(effect.incident_id)] == [EffectStatus.RUNNING]


def test_table_limits_are_refused_by_both(any_store):
    (decision,) = _decided(signal(SignalKind.FAILOVER_STARTED, 0))
    too_long = replace(decision.state, resource_id="x" * 40_000)  # one string property over 64 KiB
    with pytest.raises(FailoverError):
        any_store.commit(too_long, None)
    effects = [
        Effect(
            decision.incident.incident_id,
            "pg-prod-01",
            Transition.OPENED,
            EffectName.TEAMS_CARD,
            created_at=T0,
            payload={"n": n},
        )
        for n in range(1)
    ] * 101
    with pytest.raises(FailoverError):  # over 100 operations in one transaction
        any_store.commit(decision.state, None, effects=effects)
    assert any_store.read_state("pg-prod-01") == (None, None)


def test_the_largest_bounded_state_fits_in_one_entity(any_store):
    """The caps of `Policy` keep the state row inside the Table limits (issue 13, bounded state)."""
    state = ServerState(server="pg-prod-01")
    for n in range(POLICY.keep_per_incident * 3):
        noisy = signal(
            SignalKind.REPLICAS_CHANGED, n, source=Source.ARM_PROBE, signal_id=f"n:{n}" + "x" * 200
        )
        state = decide(state, noisy, now=T0, policy=POLICY).state
    opened = signal(SignalKind.WRITE_UNAVAILABLE, -1, source=Source.DB_PROBE)
    state = decide(state, opened, now=T0, policy=POLICY).state
    for n in range(POLICY.keep_per_incident * 2):
        s = signal(SignalKind.HEALTH_DEGRADED, n + 0.5, signal_id=f"d:{n}", details={"title": "t" * 500})
        state = decide(state, s, now=T0, policy=POLICY).state
    state = replace(state, maintenance=state.maintenance, archive=state.archive)
    any_store.commit(state, None)
    assert any_store.read_state("pg-prod-01")[0] == state
    assert iso(state.evidence[0].observed_at)


def test_side_rows_insert_once_replace_under_etag_and_query_by_prefix(any_store):
    rows = any_store.side_rows()
    assert rows.get("~pace", "a") is None
    etag = rows.insert({"PartitionKey": "~pace", "RowKey": "a", "last": "1"})
    with pytest.raises(ConcurrencyConflictError):
        rows.insert({"PartitionKey": "~pace", "RowKey": "a", "last": "2"})  # a second claimer loses
    found = rows.get("~pace", "a")
    assert found is not None and found[0]["last"] == "1" and found[1] == etag
    rows.replace({"PartitionKey": "~pace", "RowKey": "a", "last": "3"}, etag)
    with pytest.raises(ConcurrencyConflictError):
        rows.replace({"PartitionKey": "~pace", "RowKey": "a", "last": "4"}, etag)  # a stale ETag loses
    rows.upsert({"PartitionKey": "~digest~20261125", "RowKey": "m~westeurope~x", "stage": "opened"})
    rows.upsert({"PartitionKey": "~digest~20261125", "RowKey": "m~westeurope~x", "stage": "resolved"})
    rows.upsert({"PartitionKey": "~digest~20261125", "RowKey": "m~westeuropf~y", "stage": "opened"})
    rows.upsert({"PartitionKey": "~digest~20261125", "RowKey": "p~w0", "stage": "opened"})
    listed = rows.query("~digest~20261125", "m~westeurope~")
    assert [(r["RowKey"], r["stage"]) for r in listed] == [("m~westeurope~x", "resolved")]
    assert len(rows.query("~digest~20261125", "m~")) == 2
    assert rows.get("~pace", "a")[0]["last"] == "3"


def test_verify_work_is_found_when_due_and_gone_once_finished(any_store):
    incident_id = "pg-prod-01~20261125T071602Z"
    any_store.schedule_work(
        (), now=T0, checks=[Check("verify", "pg-prod-01", T0 + timedelta(seconds=2), incident_id)]
    )
    assert any_store.due_work(T0, 10) == []
    (item,) = any_store.due_work(T0 + timedelta(seconds=2), 10)
    assert (item.kind, item.server, item.incident_id, item.name) == (
        "verify",
        "pg-prod-01",
        incident_id,
        None,
    )
    any_store.finish_work([item])
    assert any_store.due_work(T0 + timedelta(minutes=1), 10) == []
