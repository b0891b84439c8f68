"""Post-failover verification verdicts and schedule (pure: `failover.verification`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from failover.ports import DbObservation, ReplicaView, ServerView, SlotView
from failover.verification import (
    Check,
    Observation,
    Step,
    StepStatus,
    VerifyPolicy,
    complete,
    failed,
    judge,
    next_run,
)

RESTORED = datetime(2026, 11, 25, 7, 17, tzinfo=timezone.utc)
POLICY = VerifyPolicy(app_zones=("1",))


def server(**over: object) -> ServerView:
    values: dict[str, object] = {
        "resource_id": "/subscriptions/s/resourcegroups/rg/providers/"
        "microsoft.dbforpostgresql/flexibleservers/pg-1",
        "server": "pg-1",
        "location": "westeurope",
        "state": "Ready",
        "ha_mode": "ZoneRedundant",
        "ha_state": "Healthy",
        "primary_zone": "1",
        "standby_zone": "2",
        "fqdn": "pg-1.postgres.database.azure.com",
        "replication_role": "Primary",
    }
    values.update(over)
    return ServerView(**values)  # type: ignore[arg-type]


WRITABLE = DbObservation(reachable=True, writable=True, in_recovery=False)


def statuses(steps: tuple[Step, ...]) -> dict[str, str]:
    return {s.check.value: s.status.value for s in steps}


def at(seconds: float) -> datetime:
    return RESTORED + timedelta(seconds=seconds)


def test_a_healthy_failover_passes_or_skips_every_step_with_the_rebuild_time():
    steps = judge(Observation(at(42), server(), WRITABLE), (), restored_at=RESTORED, policy=POLICY)

    assert statuses(steps) == {
        "writer_writable": "passed",
        "standby_healthy": "passed",
        "replicas_following": "skipped",
        "slots_synced": "skipped",
        "statistics": "passed",
        "zone_alignment": "passed",
    }
    assert "42 s after primary restored" in steps[1].detail
    assert complete(steps) and not failed(steps)
    assert next_run(steps, restored_at=RESTORED, now=at(42), policy=POLICY) is None
    assert [s.to_public()["at"] for s in steps] == ["2026-11-25T07:17:42Z"] * 6


def test_steps_stay_pending_while_rebuilding_and_keep_their_first_decision_time():
    rebuilding = server(
        ha_state="ReplicatingData", replicas=(ReplicaView("r1", "rid", None, None, "Catchup"),)
    )
    first = judge(Observation(at(5), rebuilding, WRITABLE), (), restored_at=RESTORED, policy=POLICY)
    assert statuses(first)["standby_healthy"] == "pending"
    assert statuses(first)["replicas_following"] == "pending"
    assert "r1 (Catchup)" in first[2].detail
    assert next_run(first, restored_at=RESTORED, now=at(5), policy=POLICY) == at(7)

    healed = server(replicas=(ReplicaView("r1", "rid", None, None, "Active"),))
    second = judge(Observation(at(30), healed, WRITABLE), first, restored_at=RESTORED, policy=POLICY)
    assert complete(second)
    by_check = {s.check: s for s in second}
    assert by_check[Check.WRITER_WRITABLE].at == at(5)  # decided on the first look, kept
    assert by_check[Check.STANDBY_HEALTHY].at == at(30)
    assert "30 s after primary restored" in by_check[Check.STANDBY_HEALTHY].detail


def test_pending_steps_fail_at_the_deadline_and_the_schedule_never_passes_it():
    policy = VerifyPolicy(deadline=timedelta(seconds=1800))
    stuck = server(ha_state="CreatingStandby")
    late = at(1795)
    steps = judge(Observation(late, stuck, WRITABLE), (), restored_at=RESTORED, policy=policy)
    assert next_run(steps, restored_at=RESTORED, now=late, policy=policy) == at(1800)

    steps = judge(Observation(at(1800), stuck, WRITABLE), steps, restored_at=RESTORED, policy=policy)
    standby = next(s for s in steps if s.check is Check.STANDBY_HEALTHY)
    assert standby.status is StepStatus.FAILED
    assert standby.detail.startswith("not done within 1800 s: HA state CreatingStandby")
    assert complete(steps)


def test_the_writer_in_recovery_or_unreachable_is_pending_and_holds_back_the_catalog_steps():
    for db in (
        DbObservation(reachable=False, error="connection refused"),
        DbObservation(reachable=True, writable=False, in_recovery=True),
        DbObservation(reachable=True, writable=True, in_recovery=False, catalog_read=False),
    ):
        steps = statuses(judge(Observation(at(1), server(), db), (), restored_at=RESTORED, policy=POLICY))
        assert steps["slots_synced"] == steps["statistics"] == "pending"
    steps = statuses(judge(Observation(at(1), server(), None), (), restored_at=RESTORED, policy=POLICY))
    assert steps["writer_writable"] == steps["slots_synced"] == steps["statistics"] == "skipped"


def test_a_broken_replica_fails_at_once():
    broken = server(replicas=(ReplicaView("r2", "rid", None, None, "Broken"),))
    steps = judge(Observation(at(3), broken, WRITABLE), (), restored_at=RESTORED, policy=POLICY)
    step = next(s for s in steps if s.check is Check.REPLICAS_FOLLOWING)
    assert step.status is StepStatus.FAILED and "Broken on r2" in step.detail


def test_slots_pass_with_their_synced_flags_and_fail_without_the_failover_flag():
    synced = DbObservation(True, True, False, slots=(SlotView("app_sub", "pgoutput", True, True, True),))
    step = judge(Observation(at(1), server(), synced), (), restored_at=RESTORED, policy=POLICY)[3]
    assert step.status is StepStatus.PASSED
    assert step.detail == "1 logical slot(s) present: app_sub; synced from the old primary: app_sub"

    pg15 = DbObservation(True, True, False, slots=(SlotView("cdc", "wal2json", False),))
    assert (
        judge(Observation(at(1), server(), pg15), (), restored_at=RESTORED, policy=POLICY)[3].status
        == "passed"
    )

    unsafe = DbObservation(True, True, False, slots=(SlotView("cdc", "pgoutput", True, False, False),))
    step = judge(Observation(at(1), server(), unsafe), (), restored_at=RESTORED, policy=POLICY)[3]
    assert step.status is StepStatus.FAILED and "failover flag" in step.detail


def test_statistics_are_advice_never_a_failed_step():
    """pg_statistic is replicated: tables never analyzed and restarted counters are advice only."""
    db = DbObservation(
        True,
        True,
        False,
        tables_without_statistics=tuple(f"public.t{i}" for i in range(5)),
        tables_without_statistics_count=12,
        tables_with_reset_counters=3,
    )
    step = judge(Observation(at(1), server(), db), (), restored_at=RESTORED, policy=POLICY)[4]
    assert step.status is StepStatus.PASSED
    assert step.detail == (
        "planner statistics came over with the standby (physical replication copies pg_statistic);"
        " advice: the activity counters autovacuum reads restarted at the promotion for 3 analyzed"
        " table(s): run ANALYZE (the whole database) so autovacuum sees their row counts again;"
        " 12 table(s) with data were never analyzed, before the failover too (public.t0, public.t1,"
        " public.t2, public.t3, public.t4 and 7 more): run ANALYZE on them"
    )
    clean = judge(Observation(at(1), server(), WRITABLE), (), restored_at=RESTORED, policy=POLICY)[4]
    assert clean.status is StepStatus.PASSED and "advice" not in clean.detail


def test_zone_alignment_against_app_zones():
    moved = server(primary_zone="2", standby_zone="1")
    step = judge(Observation(at(1), moved, WRITABLE), (), restored_at=RESTORED, policy=POLICY)[5]
    assert step.status is StepStatus.FAILED and "plan a planned failover back" in step.detail
    unset = judge(Observation(at(1), moved, WRITABLE), (), restored_at=RESTORED, policy=VerifyPolicy())[5]
    assert unset.status is StepStatus.SKIPPED and unset.detail == "APP_ZONES is not set"


def test_steps_round_trip_through_their_public_json():
    steps = judge(Observation(at(9), server(), WRITABLE), (), restored_at=RESTORED, policy=POLICY)
    assert tuple(Step.from_public(s.to_public()) for s in steps) == steps
