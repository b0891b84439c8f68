"""Post-failover verification against real PostgreSQL 15 and the management API emulator."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import pytest

from failover.adapters.memory_store import MemoryStore
from failover.adapters.pg_verify import PostgresVerifier
from failover.adapters.postgres import PostgresProbe
from failover.model import Cause, Incident, IncidentStatus
from failover.verification import Check, Observation, StepStatus, VerifyPolicy, judge
from failover.verifying import Verifying, load
from local import pgpair

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.pg_fixtures"]

SERVER = "pg-verify-01"
NOW = datetime(2026, 11, 25, 7, 16, 2, tzinfo=timezone.utc)


def _verifier(pair: pgpair.PgPair, password: str) -> PostgresVerifier:
    probe = PostgresProbe(
        lambda s: pair.conninfo(),
        lambda s: password,
        probe_id=f"verify-{uuid.uuid4().hex[:8]}",
        create_table=True,
    )
    return PostgresVerifier(probe)


def _incident(resource_id: str, restored: datetime) -> Incident:
    return Incident(
        incident_id=f"{SERVER}~20261125T071602Z",
        server=SERVER,
        resource_id=resource_id,
        status=IncidentStatus.OPEN,
        cause=Cause.FORCED,
        cause_confidence=3,
        opened_at=restored,
        last_signal_at=restored,
        primary_restored_at=restored,
    )


def test_the_verifier_reads_the_writer_its_logical_slots_and_missing_statistics(fresh_pg_pair, pg_password):
    pair = fresh_pg_pair
    pgpair.run_as_superuser(pair, "ALTER SYSTEM SET wal_level = logical")
    pgpair.restart_node(pair, pair.primary)
    verifier = _verifier(pair, pg_password)

    empty = verifier.inspect(SERVER)
    assert (empty.reachable, empty.writable, empty.in_recovery, empty.catalog_read) == (
        True,
        True,
        False,
        True,
    )
    assert empty.slots == () and empty.tables_without_statistics_count == 0  # the heartbeat table is ours

    pgpair.run_as_superuser(
        pair,
        "CREATE TABLE public.orders (id int PRIMARY KEY, note text)",
        "INSERT INTO public.orders SELECT g, 'x' FROM generate_series(1, 500) g",
        "CREATE TABLE public.secret_notes (id int)",  # not readable by the probe's role: not judged
        "INSERT INTO public.secret_notes VALUES (1)",
        "GRANT SELECT ON public.orders TO app",
        "SELECT pg_create_logical_replication_slot('app_cdc', 'pgoutput')",
    )
    seen = verifier.inspect(SERVER)
    assert [(s.name, s.plugin, s.active, s.synced, s.failover) for s in seen.slots] == [
        ("app_cdc", "pgoutput", False, None, None)  # PostgreSQL 15 has no synced/failover columns
    ]
    assert seen.tables_without_statistics == ("public.orders",)
    assert seen.tables_without_statistics_count == 1

    pgpair.run_as_superuser(pair, "ANALYZE public.orders", "SELECT pg_drop_replication_slot('app_cdc')")
    after = verifier.inspect(SERVER)
    assert after.slots == () and after.tables_without_statistics_count == 0


def test_a_promotion_keeps_planner_statistics_but_restarts_autovacuums_counters(fresh_pg_pair, pg_password):
    """pg_statistic is replicated to the standby; the activity counters autovacuum reads are not."""
    pair = fresh_pg_pair
    verifier = _verifier(pair, pg_password)
    pgpair.run_as_superuser(
        pair,
        "CREATE TABLE public.orders (id int PRIMARY KEY, note text)",
        "INSERT INTO public.orders SELECT g, 'x' FROM generate_series(1, 500) g",
        "GRANT SELECT ON public.orders TO app",
        "ANALYZE public.orders",
        "CREATE TABLE public.never_analyzed (id int)",
        "INSERT INTO public.never_analyzed VALUES (1)",
        "GRANT SELECT ON public.never_analyzed TO app",
    )
    before = verifier.inspect(SERVER)
    assert before.tables_without_statistics == ("public.never_analyzed",)
    assert before.tables_with_reset_counters == 0  # the primary's counters know its ANALYZE

    pgpair.failover(pair, mode="planned")
    after = verifier.inspect(SERVER)
    assert (after.writable, after.in_recovery) == (True, False)
    assert after.tables_without_statistics == ("public.never_analyzed",)  # orders kept its statistics
    assert after.tables_with_reset_counters == 1  # ... but autovacuum's counters for it restarted
    step = judge(
        Observation(datetime.now(timezone.utc), None, after), (), restored_at=NOW, policy=VerifyPolicy()
    )
    statistics = next(s for s in step if s.check is Check.STATISTICS)
    assert statistics.status is StepStatus.PASSED and "restarted at the promotion for 1" in statistics.detail


def test_the_standby_endpoint_is_not_a_writer(pg_pair, pg_password):
    probe = PostgresProbe(
        lambda s: pg_pair.conninfo(node=pg_pair.standby), lambda s: pg_password, probe_id="verify-standby"
    )
    seen = PostgresVerifier(probe).inspect(SERVER)
    assert (seen.reachable, seen.writable, seen.in_recovery) == (True, False, True)


def test_a_forced_failover_is_verified_step_by_step(fresh_pg_pair, pg_password, arm_emulator, arm_inspector):
    rid = arm_emulator.add_server("rg-data", SERVER, pair=fresh_pg_pair, zones=("1", "2"))
    rows = MemoryStore().side_rows()
    cards: list[tuple[str, tuple[str, ...]]] = []
    verifying = Verifying(
        inspector=arm_inspector,
        database=_verifier(fresh_pg_pair, pg_password),
        rows=rows,
        policy=VerifyPolicy(app_zones=("1",)),
        notify=lambda incident, steps: cards.append(
            (incident.incident_id, tuple(s.check.value for s in steps))
        ),
        clock=lambda: datetime.now(timezone.utc),
    )
    arm_inspector.start_failover(rid, "ForcedFailover", wait=True)
    incident = _incident(rid, datetime.now(timezone.utc))

    runs = 0
    record = verifying.run(incident).record
    while record.next_at is not None and runs < 200:  # bounded: the fast schedule is every 2 s
        time.sleep(max(0.0, (record.next_at - datetime.now(timezone.utc)).total_seconds()))
        record = verifying.run(incident).record
        runs += 1

    steps = {s["check"]: s for s in load(rows, SERVER, incident.incident_id).to_public()}
    assert {c: s["status"] for c, s in steps.items()} == {
        "writer_writable": "passed",
        "standby_healthy": "passed",
        "replicas_following": "skipped",
        "slots_synced": "skipped",
        "statistics": "passed",
        "zone_alignment": "failed",  # the primary moved to zone 2; the application tier runs in zone 1
    }
    assert "standby rebuilt in zone 1" in steps["standby_healthy"]["detail"]
    assert cards == [(incident.incident_id, ("zone_alignment",))]  # one card for the failures
    assert verifying.run(incident).newly_failed == () and len(cards) == 1  # complete: never again
    assert record.steps[0].status is StepStatus.PASSED
