"""Issue 11, downtime accuracy: the moment the server closed the probe's session starts the outage.

Pure `diff_check`. A primary shutting down for a failover terminates its sessions at once; the
probe's next check (up to a sampling interval later) finds its session broken and reports when
that happened (`DbCheck.session_lost_at`). Before, the downtime always ran from the last good
write, overstating it by up to one sampling interval (0.5 s): the larger part of the error
bench/detection.py measured against a client writing every 50 ms.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from failover.incidents import DbProbeState
from failover.model import SignalKind
from failover.ports import DbCheck
from failover.sources.probes import DbProbeMemory, diff_check
from failover.timeutil import iso
from tests.builders import RESOURCE, T0

SERVER = "pg-prod-01"
RID = RESOURCE.format(server=SERVER)
OLD, NEW = T0 - timedelta(days=3), T0 - timedelta(days=1)  # the two nodes' postmaster start times
MS = st.integers(min_value=1, max_value=500).map(lambda n: timedelta(milliseconds=n))


def _good(at: datetime, *, postmaster: datetime = OLD, lost: datetime | None = None) -> DbCheck:
    return DbCheck(SERVER, at, at, True, True, False, postmaster_started_at=postmaster, session_lost_at=lost)


def _down(at: datetime, *, lost: datetime | None = None) -> DbCheck:
    return DbCheck(SERVER, at, at, False, False, fault="unreachable", session_lost_at=lost)


def _watching() -> DbProbeMemory:
    """A continuous watch whose last good write was at T0."""
    memory = DbProbeMemory(DbProbeState(), watch_since=T0 - timedelta(minutes=1))
    _, memory = diff_check(memory, _good(T0), resource_id=RID, received_at=T0)
    return memory


def _run(memory: DbProbeMemory, checks: list[DbCheck]) -> list:
    signals: list = []
    for check in checks:
        found, memory = diff_check(memory, check, resource_id=RID, received_at=check.finished_at)
        signals.extend(found)
    return signals


def _restored(signals: list) -> dict[str, Any]:
    (restored,) = [s for s in signals if s.kind is SignalKind.WRITE_RESTORED]
    return dict(restored.details)


@given(lost_after=MS, back_after=MS)
def test_a_failover_between_two_checks_is_measured_from_the_lost_session(lost_after, back_after):
    lost = T0 + lost_after
    back = lost + back_after
    signals = _run(_watching(), [_good(back, postmaster=NEW, lost=lost)])

    (unavailable,) = [s for s in signals if s.kind is SignalKind.WRITE_UNAVAILABLE]
    assert unavailable.observed_at == lost
    details = _restored(signals)
    assert details["downtime_seconds"] == round(back_after.total_seconds(), 3)
    assert (details["last_ok_write_at"], details["session_lost_at"]) == (iso(T0), iso(lost))


@given(lost_after=MS, first_failure_after=MS, outage=st.integers(min_value=4, max_value=30))
def test_a_declared_outage_starts_when_the_session_was_lost(lost_after, first_failure_after, outage):
    lost = T0 + lost_after
    first = lost + first_failure_after
    failed = [_down(first, lost=lost)] + [_down(first + timedelta(seconds=n)) for n in range(1, outage)]
    back = first + timedelta(seconds=outage)
    signals = _run(_watching(), [*failed, _good(back, postmaster=NEW)])

    (unavailable,) = [s for s in signals if s.kind is SignalKind.WRITE_UNAVAILABLE]
    assert unavailable.observed_at == lost
    assert _restored(signals)["downtime_seconds"] == round((back - lost).total_seconds(), 3)


@given(before=MS, back_after=MS)
def test_a_session_lost_before_the_last_good_write_is_ignored(before, back_after):
    back = T0 + back_after
    signals = _run(_watching(), [_good(back, postmaster=NEW, lost=T0 - before)])

    assert _restored(signals)["downtime_seconds"] == round(back_after.total_seconds(), 3)


def test_a_lost_session_on_a_server_that_did_not_restart_is_no_outage():
    back = T0 + timedelta(milliseconds=400)
    assert _run(_watching(), [_good(back, lost=T0 + timedelta(milliseconds=100))]) == []
