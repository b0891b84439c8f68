"""Correlation (pure): one incident per failover, order independence, late signals, resolution."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from failover.incidents import KnownTopology, Policy, ServerState, correlate, settle
from failover.model import Cause, IncidentStatus, SignalKind, Source, Transition
from tests.builders import T0, signal

POLICY = Policy(quiet=timedelta(minutes=5), merge_window=timedelta(minutes=15))
NOW = T0 + timedelta(minutes=1)


def run(signals, now=NOW, state=None):
    state = state or ServerState(server="pg-prod-01")
    decisions = []
    for s in signals:
        decision = correlate(state, s, now=now, policy=POLICY)
        state = decision.state
        decisions.append(decision)
    return state, decisions


PLANNED = [
    signal(SignalKind.FAILOVER_STARTED, 0, cause=Cause.PLANNED, confidence=3),
    signal(SignalKind.HEALTH_DEGRADED, 2, cause=Cause.PLANNED, confidence=1),
    signal(SignalKind.DB_DOWN, 10),
    signal(SignalKind.WRITE_UNAVAILABLE, 11, source=Source.DB_PROBE),
    signal(SignalKind.WRITE_RESTORED, 24, source=Source.DB_PROBE, details={"downtime_seconds": 13.5}),
    signal(SignalKind.FAILOVER_COMPLETED, 30, cause=Cause.PLANNED, confidence=1),
    signal(SignalKind.DB_UP, 60),
    signal(SignalKind.HEALTH_AVAILABLE, 90),
]


def test_a_failover_is_one_incident_with_its_facts():
    state, decisions = run(PLANNED)
    (incident,) = state.incidents
    assert incident.incident_id == "pg-prod-01~20261125T071602Z"
    assert incident.signal_count == len(PLANNED)
    assert incident.cause is Cause.PLANNED
    assert incident.write_downtime_seconds == 13.5
    assert incident.primary_restored_at == T0 + timedelta(seconds=24)
    assert incident.status is IncidentStatus.OPEN
    assert decisions[0].transitions == (Transition.OPENED,)
    assert decisions[4].transitions == (Transition.PRIMARY_RESTORED,)
    assert all(not d.transitions for i, d in enumerate(decisions) if i not in (0, 4))
    assert state.epoch == 1


@settings(max_examples=200, deadline=None)
@given(st.permutations(PLANNED))
def test_arrival_order_never_changes_the_incident(order):
    expected, _ = run(PLANNED)
    state, _ = run(order)
    (incident,) = state.incidents
    (reference,) = expected.incidents
    assert replace(incident, incident_id="x", transitions=()) == replace(
        reference, incident_id="x", transitions=()
    )


def test_late_earlier_signal_moves_the_start_back_but_keeps_the_id():
    state, _ = run([PLANNED[2], PLANNED[0]])
    (incident,) = state.incidents
    assert incident.incident_id == "pg-prod-01~20261125T071612Z"
    assert incident.opened_at == T0


def test_recovery_first_becomes_a_note_then_joins_the_incident():
    state, decisions = run([PLANNED[7], PLANNED[0]])
    assert decisions[0].incident is None
    (incident,) = state.incidents
    assert incident.signal_count == 2
    assert state.notes == ()
    assert incident.recovered


def test_context_outside_incidents_opens_nothing():
    state, decisions = run([signal(SignalKind.REPLICATION_LAG_HIGH, 0), signal(SignalKind.HEALTH_UNKNOWN, 1)])
    assert state.incidents == ()
    assert len(state.notes) == 2
    assert all(d.incident is None for d in decisions)


def test_resolves_only_after_the_quiet_period():
    state, _ = run(PLANNED)
    assert settle(state, now=T0 + timedelta(seconds=90 + 299), policy=POLICY) == ()
    (decision,) = settle(state, now=T0 + timedelta(seconds=90 + 300), policy=POLICY)
    assert decision.incident is not None
    assert decision.incident.status is IncidentStatus.RESOLVED
    assert decision.incident.resolved_at == T0 + timedelta(seconds=90)
    assert decision.transitions == (Transition.RESOLVED,)


def test_a_new_problem_after_recovery_keeps_it_open():
    state, _ = run([*PLANNED, signal(SignalKind.DB_DOWN, 120)])
    assert settle(state, now=T0 + timedelta(hours=1), policy=POLICY) == ()


def test_a_later_failover_is_a_new_incident_and_the_old_never_reopens():
    state, _ = run(PLANNED, now=T0 + timedelta(hours=1))
    assert state.incidents[0].status is IncidentStatus.RESOLVED
    later = signal(SignalKind.FAILOVER_STARTED, 3600, cause=Cause.FORCED, confidence=3, signal_id="later")
    late_old = signal(SignalKind.DB_DOWN, 95, signal_id="late-old")
    state, decisions = run([later, late_old], now=T0 + timedelta(hours=1), state=state)
    first, second = state.incidents
    assert first.status is IncidentStatus.RESOLVED
    assert first.signal_count == len(PLANNED) + 1
    assert second.cause is Cause.FORCED
    assert decisions[1].transitions == ()


def test_strongest_cause_wins_whatever_the_order():
    weak = signal(SignalKind.HEALTH_DEGRADED, 0, cause=Cause.UNPLANNED, confidence=2)
    strong = signal(SignalKind.FAILOVER_STARTED, 1, cause=Cause.FORCED, confidence=3)
    hint = signal(SignalKind.DB_DOWN, 2, cause=Cause.PLANNED, confidence=1)
    for order in ([weak, strong, hint], [hint, weak, strong], [strong, hint, weak]):
        state, _ = run(order)
        assert state.incidents[0].cause is Cause.FORCED


def test_probe_only_failover_is_unplanned_with_zones():
    view = {"primary_zone": "2", "standby_zone": "1", "ha_state": "ReplicatingData", "resource_id": "r"}
    swap = signal(
        SignalKind.FAILOVER_COMPLETED,
        0,
        source=Source.ARM_PROBE,
        cause=Cause.UNPLANNED,
        details={"view": view, "zone_before": "1"},
    )
    known = KnownTopology(
        resource_id="r", primary_zone="1", standby_zone="2", ha_state="Healthy", observed_at=T0
    )
    state, decisions = run([swap], state=ServerState(server="pg-prod-01", topology=known))
    (incident,) = state.incidents
    assert incident.cause is Cause.UNPLANNED
    assert (incident.primary_zone_before, incident.primary_zone_after, incident.standby_zone_after) == (
        "1",
        "2",
        "1",
    )
    assert decisions[0].transitions == (Transition.OPENED, Transition.PRIMARY_RESTORED)
    assert state.topology.primary_zone == "2"
    assert state.arm_version == 1


def test_maintenance_notice_makes_a_probe_failover_maintenance():
    notice = signal(
        SignalKind.MAINTENANCE_SCHEDULED,
        -3600,
        cause=Cause.MAINTENANCE,
        confidence=2,
        details={
            "impact_start": "2026-11-25T07:00:00Z",
            "impact_end": "2026-11-25T08:00:00Z",
            "tracking_id": "T",
        },
    )
    probe = signal(SignalKind.WRITE_UNAVAILABLE, 0, source=Source.DB_PROBE, cause=Cause.UNPLANNED)
    state, _ = run([notice, probe])
    assert state.incidents[0].cause is Cause.MAINTENANCE


def test_downtime_is_the_longest_measured_gap_not_a_sum():
    a = signal(SignalKind.WRITE_RESTORED, 20, source=Source.DB_PROBE, details={"downtime_seconds": 9.0})
    b = signal(
        SignalKind.WRITE_RESTORED,
        21,
        source=Source.DB_PROBE,
        details={"downtime_seconds": 9.4},
        signal_id="other-worker",
    )
    state, _ = run([PLANNED[0], a, b])
    assert state.incidents[0].write_downtime_seconds == 9.4


def test_old_resolved_incidents_are_trimmed_but_open_ones_kept():
    state = ServerState(server="pg-prod-01")
    for n in range(12):
        s = signal(SignalKind.DB_DOWN, n * 3600, signal_id=f"down{n}")
        u = signal(SignalKind.DB_UP, n * 3600 + 10, signal_id=f"up{n}")
        state, _ = run([s, u], now=T0 + timedelta(hours=n, minutes=30), state=state)
    assert len(state.incidents) == POLICY.keep_incidents
    assert state.incidents[-1].incident_id.endswith("T181602Z")


def test_incident_ranges_never_overlap_whatever_the_delivery_order():
    failovers = [(0, 150), (3600, 3750), (7200, 7350)]
    signals = []
    for n, (problem, recovery) in enumerate(failovers):
        signals.append(
            signal(
                SignalKind.HEALTH_DEGRADED, problem, signal_id=f"p{n}", cause=Cause.UNPLANNED, confidence=2
            )
        )
        signals.append(signal(SignalKind.HEALTH_AVAILABLE, recovery, signal_id=f"r{n}"))
    late = [signals[2], signals[3], signals[0], signals[4], signals[1], signals[5]]
    for order in (signals, late):
        state, _ = run(order, now=T0 + timedelta(hours=3))
        assert [i.signal_count for i in state.incidents] == [2, 2, 2]
        first, second, third = state.incidents
        assert first.covers_until == second.opened_at and second.covers_until == third.opened_at
        assert not first.covers(second.opened_at, POLICY.quiet)


def test_trimmed_incidents_are_archived_and_can_be_revived():
    from failover.incidents import archived_covering, revive

    state = ServerState(server="pg-prod-01")
    for n in range(10):
        s = signal(SignalKind.DB_DOWN, n * 3600, signal_id=f"down{n}")
        u = signal(SignalKind.DB_UP, n * 3600 + 10, signal_id=f"up{n}")
        state, _ = run([s, u], now=T0 + timedelta(hours=n, minutes=30), state=state)
    assert len(state.incidents) == POLICY.keep_incidents
    assert [a.incident_id for a in state.archive] == [
        "pg-prod-01~20261125T071602Z",
        "pg-prod-01~20261125T081602Z",
    ]
    late = signal(SignalKind.HEALTH_DEGRADED, 5, signal_id="late")
    archived = archived_covering(state, late.observed_at, POLICY)
    assert archived is not None and archived.incident_id == "pg-prod-01~20261125T071602Z"
    oldest = replace(
        state.incidents[0],
        incident_id=archived.incident_id,
        opened_at=T0,
        signal_count=2,
        status=IncidentStatus.RESOLVED,
        transitions=(Transition.OPENED, Transition.RESOLVED),
    )
    decision = correlate(revive(state, oldest), late, now=T0 + timedelta(hours=12), policy=POLICY)
    assert decision.incident is not None and decision.incident.incident_id == archived.incident_id
    assert decision.incident.signal_count == 3
    assert decision.transitions == ()  # history: nobody is told again
    assert len({i.incident_id for i in decision.state.incidents}) == len(decision.state.incidents)
