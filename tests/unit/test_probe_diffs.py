"""Probe observations to signals (pure): what changed, with ids that two workers derive alike."""

from __future__ import annotations

from datetime import timedelta

import pytest

from failover.incidents import DbProbeState, KnownTopology
from failover.model import Cause, Signal, SignalKind
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


def check(at, ok=True, postmaster=None, fault="unreachable"):
    return DbCheck(
        server="pg-prod-01",
        started_at=at,
        finished_at=at + timedelta(milliseconds=20),
        connected=ok,
        writable=ok,
        in_recovery=not ok if ok else None,
        postmaster_started_at=postmaster,
        error=None if ok else "unreachable: connection refused",
        fault=None if ok else fault,
    )


def checks(memory, *items):
    """Run several checks; return every signal and the memory after them."""
    signals: list[Signal] = []
    for item in items:
        found, memory = diff_check(memory, item, resource_id=RID, received_at=item.finished_at)
        signals.extend(found)
    return signals, memory


def seconds(n):
    return T0 + timedelta(seconds=n)


def test_outage_declared_after_the_debounce_and_measured_from_last_good_write_to_first_good_write():
    memory = DbProbeMemory(DbProbeState())
    signals, memory = checks(
        memory, check(seconds(0)), check(seconds(1), ok=False), check(seconds(2), ok=False)
    )
    assert signals == []  # two failed checks over one second: not an outage yet
    signals, memory = checks(memory, check(seconds(3), ok=False), check(seconds(4.5), ok=False))
    (unavailable,) = signals
    assert unavailable.kind is SignalKind.WRITE_UNAVAILABLE
    assert unavailable.observed_at == seconds(1)  # from the first failed check
    signals, memory = checks(memory, check(seconds(9)))
    (restored,) = signals
    assert restored.kind is SignalKind.WRITE_RESTORED
    assert restored.details["downtime_seconds"] == 9.0
    assert not memory.failing


def test_issue11_one_failed_check_is_a_note_never_an_outage():
    memory = DbProbeMemory(DbProbeState())
    signals, memory = checks(memory, check(seconds(0)), check(seconds(0.5), ok=False), check(seconds(1)))
    (blip,) = signals
    assert blip.kind is SignalKind.WRITE_BLIP and blip.role.value == "context"
    assert not memory.failing


@pytest.mark.parametrize(
    "fault", ["login_refused", "permission_denied", "missing_table", "dns_error", "token_error"]
)
def test_issue11_probe_faults_never_make_an_outage(fault):
    memory = DbProbeMemory(DbProbeState())
    failing = [check(seconds(n), ok=False, fault=fault) for n in range(1, 30)]
    signals, memory = checks(memory, check(seconds(0)), *failing, check(seconds(31)))
    assert signals == []


def test_issue11_a_statement_timeout_is_a_slow_check_not_an_outage():
    memory = DbProbeMemory(DbProbeState())
    slow = [check(seconds(n), ok=False, fault="statement_timeout") for n in range(1, 10)]
    signals, _ = checks(memory, check(seconds(0)), *slow, check(seconds(11)))
    assert signals == []


def test_a_node_in_recovery_on_the_writer_endpoint_is_an_outage_at_once():
    memory = DbProbeMemory(DbProbeState())
    read_only = DbCheck("pg-prod-01", seconds(1), seconds(1.02), True, False, True, fault="read_only")
    signals, memory = checks(memory, check(seconds(0)), read_only)
    assert [s.kind for s in signals] == [SignalKind.WRITE_UNAVAILABLE]


def test_issue11_downtime_after_a_probing_gap_is_only_a_bound():
    old_good = DbProbeState(last_ok_write_at=T0 - timedelta(hours=2))
    memory = DbProbeMemory(old_good)  # a new watch: the last good write was seen by an earlier one
    failing = [check(seconds(n), ok=False) for n in range(0, 5)]
    signals, _ = checks(memory, *failing, check(seconds(6)))
    restored = signals[-1]
    assert restored.kind is SignalKind.WRITE_RESTORED
    assert "downtime_seconds" not in restored.details
    assert restored.details["downtime_upper_bound_seconds"] > 7200


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
