"""The incident lifecycle (pure): bounded episodes, order independence, resolution, staleness, skew.

Each `test_issue10_*` is a case measured on the earlier main (issue 10) that gave a wrong answer.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from failover.incidents import (
    Decision,
    KnownTopology,
    Policy,
    ServerState,
    decide,
    derive,
    segment,
    settle,
)
from failover.model import Cause, IncidentStatus, Signal, SignalKind, Source, Transition
from tests.builders import T0, signal

POLICY = Policy(quiet=timedelta(minutes=5), stale=timedelta(hours=2))
HOUR = timedelta(hours=1)


def run(signals: list[Signal], *, now: datetime | None = None, state: ServerState | None = None):
    """Record each signal at its own receipt time, then settle at `now` if given."""
    state = state or ServerState(server="pg-prod-01")
    decisions: list[Decision] = []
    for s in signals:
        decision = decide(state, s, now=s.received_at, policy=POLICY)
        state = decision.state
        decisions.append(decision)
    if now is not None:
        final = settle(state, now=now, policy=POLICY)
        state = final.state
        decisions.append(final)
    return state, decisions


def incidents(state: ServerState, now: datetime):
    return derive(state, now=now, policy=POLICY)


def transitions(decisions: list[Decision]) -> list[tuple[str, Transition]]:
    return [(c.incident.incident_id, t) for d in decisions for c in d.changes for t in c.transitions]


def late(s: Signal, delay: timedelta) -> Signal:
    return replace(s, received_at=s.observed_at + delay)


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
END = T0 + timedelta(hours=6)


def test_a_failover_is_one_incident_with_its_facts_and_three_transitions():
    state, decisions = run(PLANNED, now=END)
    (incident,) = incidents(state, END)
    assert incident.incident_id == "pg-prod-01~20261125T071602Z"
    assert incident.signal_count == len(PLANNED)
    assert incident.cause is Cause.PLANNED
    assert incident.write_downtime_seconds == 13.5
    assert incident.primary_restored_at == T0 + timedelta(seconds=24)
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.resolved_at == T0 + timedelta(seconds=24)  # every problem answered by writes back
    assert [t for _, t in transitions(decisions)] == [
        Transition.OPENED,
        Transition.PRIMARY_RESTORED,
        Transition.RESOLVED,
    ]
    assert state.epoch == 1


@settings(max_examples=200, deadline=None)
@given(st.permutations(PLANNED))
def test_arrival_order_never_changes_the_incident(order):
    reference, _ = run(PLANNED, now=END)
    state, _ = run(list(order), now=END)
    (incident,) = incidents(state, END)
    (expected,) = incidents(reference, END)
    assert replace(
        incident, incident_id="x", transitions=(), detected_at=None, azure_alert_at=None
    ) == replace(expected, incident_id="x", transitions=(), detected_at=None, azure_alert_at=None)


def test_recovery_first_is_a_note_then_joins_the_incident_that_covers_it():
    state, decisions = run([PLANNED[7], PLANNED[0]])
    assert decisions[0].incident is None
    (incident,) = incidents(state, PLANNED[0].received_at)
    assert incident.signal_count == 2


# --- issue 10, case 1: an incident without recovery evidence swallowed every later failover -----


def unplanned_without_recovery(at: datetime) -> list[Signal]:
    return [
        signal(SignalKind.HEALTH_UNAVAILABLE, 0, at=at, cause=Cause.UNPLANNED, confidence=2),
        signal(SignalKind.DB_DOWN, 60, at=at),
    ]


def planned(at: datetime, tag: str = "p") -> list[Signal]:
    return [
        signal(
            SignalKind.FAILOVER_STARTED, 0, at=at, cause=Cause.PLANNED, confidence=3, signal_id=f"{tag}:start"
        ),
        signal(SignalKind.WRITE_UNAVAILABLE, 5, at=at, source=Source.DB_PROBE, signal_id=f"{tag}:wu"),
        signal(
            SignalKind.WRITE_RESTORED,
            35,
            at=at,
            source=Source.DB_PROBE,
            details={"downtime_seconds": 30.0},
            signal_id=f"{tag}:wr",
        ),
    ]


def test_issue10_a_failover_without_recovery_goes_stale_and_the_next_one_opens_its_own_incident():
    history = unplanned_without_recovery(T0) + planned(T0 + 2 * HOUR)
    state, decisions = run(history, now=END)
    first, second = incidents(state, END)
    assert first.status is IncidentStatus.STALE and first.cause is Cause.UNPLANNED
    assert first.stale_at == T0 + 2 * HOUR
    assert second.cause is Cause.PLANNED and second.status is IncidentStatus.RESOLVED
    assert (second.incident_id, Transition.OPENED) in transitions(decisions)
    assert (first.incident_id, Transition.STALE) in transitions(decisions)
    assert state.epoch == 1  # the planned failover's primary change


def test_issue10_a_late_metric_fired_whose_resolved_never_comes_does_not_swallow_the_next_failover():
    fired = signal(SignalKind.DB_DOWN, 0, signal_id="metric:fired")
    restored = planned(T0 - timedelta(seconds=30), tag="a")
    second = planned(T0 + 3 * HOUR, tag="b")
    state, _ = run([*restored, late(fired, timedelta(minutes=12)), *second], now=END)
    first, later = incidents(state, END)
    assert first.signal_count == 4 and later.signal_count == 3
    assert later.status is IncidentStatus.RESOLVED


def test_issue10_event_grid_only_setups_resolve_on_the_action_and_a_later_action_is_new():
    def action(at: datetime, name: str) -> Signal:
        return signal(SignalKind.FAILOVER_STARTED, 0, at=at, source=Source.EVENT_GRID, signal_id=name)

    state, decisions = run([action(T0, "eg:1"), action(T0 + HOUR, "eg:2")], now=END)
    first, second = incidents(state, END)
    assert first.status is second.status is IncidentStatus.RESOLVED
    assert [t for _, t in transitions(decisions)].count(Transition.OPENED) == 2


def test_issue10_a_probe_that_keeps_failing_goes_stale_and_a_later_failover_is_new():
    stuck = signal(SignalKind.WRITE_UNAVAILABLE, 0, source=Source.DB_PROBE, signal_id="db:stuck")
    state, _ = run([stuck, *planned(T0 + 3 * HOUR)], now=END)
    first, second = incidents(state, END)
    assert first.status is IncidentStatus.STALE
    assert second.status is IncidentStatus.RESOLVED and second.cause is Cause.PLANNED


# --- issue 10, case 4: order and lag changed the answer -----------------------------------------


def test_issue10_a_recovery_delivered_29_minutes_late_does_not_merge_two_failovers():
    first = [
        signal(SignalKind.HEALTH_UNAVAILABLE, 0, signal_id="rh:1u"),
        late(signal(SignalKind.HEALTH_AVAILABLE, 60, signal_id="rh:1a"), timedelta(minutes=29)),
    ]
    second = [signal(SignalKind.HEALTH_UNAVAILABLE, 25 * 60, signal_id="rh:2u")]
    ordered = sorted([*first, *second], key=lambda s: s.received_at)
    state, decisions = run(ordered, now=END)
    assert len(incidents(state, END)) == 2
    assert [t for _, t in transitions(decisions)].count(Transition.OPENED) == 2


def test_issue10_a_resource_health_alert_lagging_its_failover_joins_it_instead_of_opening_a_phantom():
    probe = planned(T0, tag="probe")
    lagging = late(
        signal(SignalKind.HEALTH_UNAVAILABLE, 8 * 60, signal_id="rh:lag", cause=Cause.PLANNED, confidence=1),
        timedelta(minutes=15),
    )
    state, decisions = run([*probe, lagging], now=END)
    (incident,) = incidents(state, END)
    assert incident.signal_count == 4
    assert [t for _, t in transitions(decisions)].count(Transition.OPENED) == 1


def test_issue10_the_same_signals_in_two_orders_give_the_same_incidents():
    history = (
        planned(T0, "a")
        + unplanned_without_recovery(T0 + 90 * timedelta(minutes=1))
        + planned(T0 + 4 * HOUR, "c")
    )
    forward, _ = run(history, now=END)
    backward, _ = run(list(reversed(history)), now=END)
    assert [
        (i.opened_at, i.signal_count, i.cause, i.status, i.write_downtime_seconds)
        for i in incidents(forward, END)
    ] == [
        (i.opened_at, i.signal_count, i.cause, i.status, i.write_downtime_seconds)
        for i in incidents(backward, END)
    ]


# --- issue 10, cases 5 and 6 ------------------------------------------------------------------------


def test_issue10_a_signal_dated_in_the_future_is_recorded_at_its_arrival_with_the_skew_shown():
    future = replace(
        signal(SignalKind.HEALTH_UNAVAILABLE, 0, signal_id="rh:2100"),
        observed_at=datetime(2100, 1, 1, tzinfo=T0.tzinfo),
        received_at=T0,
    )
    decision = decide(ServerState(server="pg-prod-01"), future, now=T0, policy=POLICY)
    assert decision.signal is not None and decision.signal.observed_at == T0
    assert decision.signal.details["reported_at"] == "2100-01-01T00:00:00Z"
    assert decision.signal.details["clock_skew_seconds"] > 2_000_000_000
    state, _ = run([planned(T0 + 3 * HOUR)[0]], state=decision.state, now=END)
    assert len(incidents(state, END)) == 2  # the future-dated problem did not keep one open for ever


def test_skew_within_the_bound_is_kept_as_reported():
    near = replace(signal(SignalKind.HEALTH_UNAVAILABLE, 0), received_at=T0 - timedelta(minutes=4))
    decision = decide(ServerState(server="pg-prod-01"), near, now=T0 - timedelta(minutes=4), policy=POLICY)
    assert decision.signal is not None and decision.signal.observed_at == T0


def test_issue10_resource_health_available_during_the_outage_waits_for_the_database_probe():
    history = [
        signal(SignalKind.WRITE_UNAVAILABLE, 0, source=Source.DB_PROBE, signal_id="db:wu"),
        signal(SignalKind.HEALTH_UNAVAILABLE, 1, signal_id="rh:u"),
        signal(SignalKind.HEALTH_AVAILABLE, 20, signal_id="rh:a"),
    ]
    state, _ = run(history, now=T0 + timedelta(minutes=20))
    (incident,) = incidents(state, T0 + timedelta(minutes=20))
    assert incident.status is IncidentStatus.OPEN and incident.primary_restored_at is None
    restored = signal(
        SignalKind.WRITE_RESTORED, 21 * 60, source=Source.DB_PROBE, details={"downtime_seconds": 1260.0}
    )
    state, _ = run([restored], state=state, now=END)
    (incident,) = incidents(state, END)
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.write_downtime_seconds == 1260.0
    assert incident.signal_count == 4


# --- lifecycle details ------------------------------------------------------------------------------


def test_a_new_failover_after_the_restore_supersedes_an_incident_still_waiting_for_ha_healthy():
    ha = signal(SignalKind.HA_STATE_CHANGED, 10, source=Source.ARM_PROBE, details={"ha_state": "FailingOver"})
    history = [ha, *planned(T0, "a"), *planned(T0 + HOUR, "b")]
    state, _ = run(history, now=T0 + HOUR + timedelta(minutes=1))
    first, second = incidents(state, T0 + HOUR + timedelta(minutes=1))
    assert first.status is IncidentStatus.RESOLVED and first.resolved_at == second.opened_at
    assert second.status is IncidentStatus.OPEN


def test_a_resolved_incident_never_reopens_and_announces_nothing_again():
    state, _ = run(PLANNED, now=END)
    late_problem = signal(SignalKind.HEALTH_DEGRADED, 85, signal_id="rh:late")  # before its Available
    state, decisions = run([late_problem], state=state, now=END + HOUR)
    (incident,) = incidents(state, END + HOUR)
    assert incident.status is IncidentStatus.RESOLVED
    assert transitions(decisions) == []


def test_scaling_by_failover_and_an_announced_maintenance_are_named():
    scaling = signal(
        SignalKind.HA_STATE_CHANGED,
        0,
        source=Source.ARM_PROBE,
        details={"ha_state": "ComputeUpdatingByFailover"},
    )
    state, _ = run([scaling])
    (incident,) = incidents(state, T0)
    assert incident.cause is Cause.SCALING

    notice = signal(
        SignalKind.MAINTENANCE_SCHEDULED,
        -3600,
        signal_id="sh:1",
        details={
            "tracking_id": "T1",
            "impact_start": "2026-11-25T07:00:00Z",
            "impact_end": "2099-01-01T00:00:00Z",
        },
    )
    state, _ = run([notice, signal(SignalKind.WRITE_UNAVAILABLE, 0, source=Source.DB_PROBE)])
    (incident,) = incidents(state, T0)
    assert incident.cause is Cause.MAINTENANCE
    (window,) = state.maintenance
    assert window.ends_at - window.starts_at == POLICY.max_maintenance_window  # bounded (issue 13)


def test_detection_lead_is_the_first_evidence_before_azures_first_alert():
    probe = replace(signal(SignalKind.WRITE_UNAVAILABLE, 0, source=Source.DB_PROBE), received_at=T0)
    alert = replace(
        signal(SignalKind.HEALTH_UNAVAILABLE, 5), received_at=T0 + timedelta(minutes=4, seconds=12)
    )
    state, _ = run([probe, alert])
    (incident,) = incidents(state, T0 + HOUR)
    assert incident.detected_at == T0
    assert incident.detection_lead_seconds == 252.0


def test_zones_before_and_after_come_from_the_management_api():
    known = KnownTopology(resource_id="r", primary_zone="1", standby_zone="2", observed_at=T0 - HOUR)
    moved = signal(
        SignalKind.FAILOVER_COMPLETED,
        30,
        source=Source.ARM_PROBE,
        details={
            "zone_before": "1",
            "view": {"primary_zone": "2", "standby_zone": "1", "ha_state": "Healthy"},
        },
    )
    state, _ = run([*planned(T0), moved], state=ServerState(server="pg-prod-01", topology=known))
    (incident,) = incidents(state, T0 + timedelta(minutes=1))
    assert (incident.primary_zone_before, incident.primary_zone_after, incident.standby_zone_after) == (
        "1",
        "2",
        "1",
    )


def test_state_stays_bounded_over_many_failovers_and_signals():
    policy = replace(POLICY, keep_incidents=4, keep_per_incident=20, keep_notes=5)
    state = ServerState(server="pg-prod-01")
    for n in range(12):
        at = T0 + n * 3 * HOUR
        noisy = [
            signal(SignalKind.REPLICAS_CHANGED, 1 + k, at=at, source=Source.ARM_PROBE, signal_id=f"n{n}:{k}")
            for k in range(50)
        ]
        for s in [*planned(at, f"f{n}"), *noisy]:
            state = decide(state, s, now=s.received_at, policy=policy).state
        state = settle(state, now=at + HOUR, policy=policy).state
    assert len(state.records) <= policy.keep_incidents
    assert len(state.evidence) <= policy.keep_incidents * policy.keep_per_incident + policy.keep_notes
    assert len(state.archive) == 12 - len(state.records)
    newest = derive(state, now=T0 + 200 * HOUR, policy=policy)[-1]
    assert newest.signal_count == 53  # counted, though not every signal is kept


def test_segment_is_a_pure_function_of_the_set():
    evidence = [*ServerState(server="s").evidence]
    shuffled = list(PLANNED)
    random.Random(7).shuffle(shuffled)
    state, _ = run(shuffled)
    evidence = list(state.evidence)
    a, notes_a = segment(evidence, POLICY)
    b, notes_b = segment(list(reversed(evidence)), POLICY)
    assert [e.items for e in a] == [e.items for e in b] and notes_a == notes_b


def test_a_failover_and_a_failback_within_five_minutes_bump_the_epoch_twice():
    failover = planned(T0, "a")
    failback = planned(T0 + timedelta(minutes=4), "b")  # a new restart request after the first succeeded
    state, _ = run([*failover, *failback], now=END)
    assert len(incidents(state, END)) == 2 and state.epoch == 2


def test_late_sources_of_one_failover_bump_the_epoch_once():
    late_alerts = [
        late(signal(SignalKind.HEALTH_AVAILABLE, 60, signal_id="rh:a"), timedelta(minutes=18)),
        late(signal(SignalKind.DB_UP, 120, signal_id="m:up"), timedelta(minutes=14)),
        late(signal(SignalKind.FAILOVER_COMPLETED, 40, signal_id="al:done"), timedelta(minutes=19)),
    ]
    state, _ = run(sorted([*planned(T0), *late_alerts], key=lambda s: s.received_at), now=END)
    assert len(incidents(state, END)) == 1 and state.epoch == 1


def zone_move(seconds: float, before: str, after: str) -> Signal:
    """The management API probe's view of the primary moving from zone `before` to `after`."""
    return signal(
        SignalKind.FAILOVER_COMPLETED,
        seconds,
        source=Source.ARM_PROBE,
        signal_id=f"arm:zone:{seconds}",
        details={"zone_before": before, "view": {"primary_zone": after, "standby_zone": before}},
    )


def test_issue12_a_second_move_of_the_primary_seen_only_by_the_management_api_is_a_second_change():
    # The probe's samples caught the two moves and nothing between them (no FailingOver, no
    # Healthy): the primary went 1 -> 2 and, 90 s later, back 2 -> 1. Two changes, two epochs.
    state, _ = run([zone_move(30, "1", "2"), zone_move(120, "2", "1")], now=END)
    found = incidents(state, END)
    assert [(i.primary_zone_before, i.primary_zone_after) for i in found] == [("1", "2"), ("2", "1")]
    assert state.epoch == 2


def test_issue12_two_sources_reporting_one_move_are_one_change():
    database = [
        signal(SignalKind.WRITE_UNAVAILABLE, 1, source=Source.DB_PROBE),
        signal(SignalKind.WRITE_RESTORED, 20, source=Source.DB_PROBE, details={"downtime_seconds": 18}),
    ]
    state, _ = run([*database, zone_move(40, "1", "2"), zone_move(45, "1", "2")], now=END)
    assert len(incidents(state, END)) == 1 and state.epoch == 1
