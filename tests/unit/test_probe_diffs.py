"""Probe observations to signals (pure): what changed, with ids that two workers derive alike."""

from __future__ import annotations

from datetime import timedelta

from failover.incidents import DbProbeState, KnownTopology
from failover.model import Cause, SignalKind
from failover.ports import DbCheck, ReplicaView, ServerView
from failover.sources.probes import DbProbeMemory, diff_check, diff_view
from tests.builders import RESOURCE, T0

RID = RESOURCE.format(server="pg-prod-01")


def view(primary="1", standby="2", ha="Healthy", state="Ready", replicas=()):
    return ServerView(
        resource_id=RID,
        server="pg-prod-01",
        location="eastus",
        state=state,
        ha_mode="ZoneRedundant",
        ha_state=ha,
        primary_zone=primary,
        standby_zone=standby,
        fqdn="pg-prod-01.postgres.database.azure.com",
        replication_role="Primary",
        replicas=replicas,
    )


KNOWN = KnownTopology(resource_id=RID, state="Ready", ha_state="Healthy", primary_zone="1", standby_zone="2")


def test_first_sighting_is_a_baseline():
    assert diff_view(None, view(), arm_version=0, observed_at=T0, received_at=T0) == ()


def test_nothing_changed_nothing_emitted():
    assert diff_view(KNOWN, view(), arm_version=3, observed_at=T0, received_at=T0) == ()


def test_zone_swap_and_ha_state():
    signals = diff_view(
        KNOWN, view("2", "1", "ReplicatingData"), arm_version=3, observed_at=T0, received_at=T0
    )
    kinds = [s.kind for s in signals]
    assert kinds == [SignalKind.FAILOVER_COMPLETED, SignalKind.HA_STATE_CHANGED]
    swap = signals[0]
    assert swap.details["zone_before"] == "1"
    assert swap.details["view"]["primary_zone"] == "2"
    assert swap.cause is Cause.UNPLANNED and swap.cause_confidence == 0
    assert swap.signal_id == "arm_probe:pg-prod-01:primary_zone:1>2:v3"


def test_same_change_same_id_for_two_workers_new_version_new_id():
    a = diff_view(KNOWN, view(ha="FailingOver"), arm_version=5, observed_at=T0, received_at=T0)
    b = diff_view(
        KNOWN, view(ha="FailingOver"), arm_version=5, observed_at=T0 + timedelta(seconds=2), received_at=T0
    )
    c = diff_view(KNOWN, view(ha="FailingOver"), arm_version=6, observed_at=T0, received_at=T0)
    assert a[0].signal_id == b[0].signal_id != c[0].signal_id


def test_replicas_and_server_state():
    replica = ReplicaView("pg-r1", "rid", "pg-r1.postgres.database.azure.com", "westus", "Active")
    signals = diff_view(
        KNOWN, view(state="Updating", replicas=(replica,)), arm_version=1, observed_at=T0, received_at=T0
    )
    assert [s.kind for s in signals] == [SignalKind.SERVER_STATE_CHANGED, SignalKind.REPLICAS_CHANGED]


def check(at, ok=True, postmaster=None):
    return DbCheck(
        server="pg-prod-01",
        started_at=at,
        finished_at=at + timedelta(milliseconds=20),
        connected=ok,
        writable=ok,
        in_recovery=not ok if ok else None,
        postmaster_started_at=postmaster,
        error=None if ok else "connection refused",
    )


def test_outage_measured_from_last_good_write_to_first_good_write():
    memory = DbProbeMemory(DbProbeState())
    signals, memory = diff_check(memory, check(T0), resource_id=RID, received_at=T0)
    assert signals == ()
    signals, memory = diff_check(
        memory, check(T0 + timedelta(seconds=1), ok=False), resource_id=RID, received_at=T0
    )
    assert [s.kind for s in signals] == [SignalKind.WRITE_UNAVAILABLE]
    signals, memory = diff_check(
        memory, check(T0 + timedelta(seconds=2), ok=False), resource_id=RID, received_at=T0
    )
    assert signals == ()
    signals, memory = diff_check(memory, check(T0 + timedelta(seconds=9)), resource_id=RID, received_at=T0)
    (restored,) = signals
    assert restored.kind is SignalKind.WRITE_RESTORED
    assert restored.details["downtime_seconds"] == 9.0
    assert not memory.failing


def test_postmaster_restart_is_noticed():
    memory = DbProbeMemory(DbProbeState())
    _, memory = diff_check(
        memory, check(T0, postmaster=T0 - timedelta(days=1)), resource_id=RID, received_at=T0
    )
    signals, _ = diff_check(
        memory,
        check(T0 + timedelta(seconds=5), postmaster=T0 + timedelta(seconds=3)),
        resource_id=RID,
        received_at=T0,
    )
    assert signals[-1].kind is SignalKind.POSTMASTER_RESTARTED
    assert signals[-1].observed_at == T0 + timedelta(seconds=3)


def test_a_failover_between_two_checks_is_still_measured():
    memory = DbProbeMemory(DbProbeState())
    before = T0 - timedelta(days=1)
    _, memory = diff_check(memory, check(T0, postmaster=before), resource_id=RID, received_at=T0)
    signals, memory = diff_check(
        memory, check(T0 + timedelta(seconds=0.5), postmaster=T0), resource_id=RID, received_at=T0
    )
    kinds = [s.kind for s in signals]
    assert kinds == [SignalKind.WRITE_UNAVAILABLE, SignalKind.WRITE_RESTORED, SignalKind.POSTMASTER_RESTARTED]
    assert signals[0].observed_at == T0 + timedelta(milliseconds=20)
    assert signals[1].details["downtime_seconds"] == 0.5
    assert not memory.failing
