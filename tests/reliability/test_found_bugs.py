"""Product bugs found by the reliability suite, each kept as a minimal reproduction.

The first three failed when they were written (late, out-of-order delivery across failovers; late
signals for incidents trimmed from the state row) and pass since commit e0e2691 ("Correlation:
incident ranges never overlap; trimmed incidents are archived and revived for late signals"); they
stay as regression tests. The tests whose docstring says "Bug (open)" fail until the product is
fixed. Everything goes through the real HTTP endpoint and a real Azurite.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from failover.wiring import Runtime
from handlers._runtime import set_runtime
from tests.conftest import FakeClock
from tests.payloads import resource_health
from tests.reliability.stack import Served, install_runtime
from tests.reliability.workload import T0

pytestmark = pytest.mark.integration

SERVER = "pg-late-01"


@pytest.fixture
def app(azurite: str, table_name: str) -> Iterator[tuple[Runtime, Served, FakeClock]]:
    clock = FakeClock(T0 + timedelta(hours=3))
    runtime = install_runtime({"AzureWebJobsStorage": azurite, "FAILOVER_TABLE": table_name}, clock)
    with Served() as served:
        yield runtime, served, clock
    runtime.store._client.delete_table()
    set_runtime(None)


def _health(n: int, seconds: float, status: str) -> dict:
    cause = "PlatformInitiated" if status == "Degraded" else None
    return resource_health(
        event_id=f"late-{n}", at=T0 + timedelta(seconds=seconds), server=SERVER, status=status, cause=cause
    )


# Three failovers of one server, an hour apart: (problem, recovery) each.
FAILOVERS = [(0, 150), (3600, 3750), (7200, 7350)]


def _incidents(runtime: Runtime) -> list:
    page = runtime.store.incidents_of_server(
        SERVER, since=None, until=None, status=None, limit=50, after=None
    )
    return sorted(page.incidents, key=lambda i: i.opened_at)


def test_late_delivery_across_failovers_keeps_incidents_apart_and_timelines_consistent(app) -> None:
    """Found: an open incident covered every later time, so a late, older failover swallowed newer ones.

    Delivered in time order, these six signals make three incidents of two signals each. Delivered
    late and out of order (as Event Grid and action group retries can after an outage of the app),
    the oldest failover's incident stayed open while it waited for its recovery signal and absorbed
    the third failover's signals, and its timeline (a time-range query) then also listed the second
    failover's entries: timeline length != signal_count, and the result depended on arrival order.
    """
    runtime, served, _ = app
    (p1, r1), (p2, r2), (p3, r3) = FAILOVERS
    order = [
        _health(2, p2, "Degraded"),
        _health(3, r2, "Available"),
        _health(0, p1, "Degraded"),
        _health(4, p3, "Degraded"),
        _health(1, r1, "Available"),
        _health(5, r3, "Available"),
    ]
    for payload in order:
        assert served.post_alert(payload).status_code == 202
    incidents = _incidents(runtime)
    consistency = [(i.incident_id, i.signal_count, len(runtime.store.timeline(i))) for i in incidents]
    assert [(count, entries) for _, count, entries in consistency] == [(2, 2)] * 3, consistency


def test_the_same_failovers_in_time_order_make_three_consistent_incidents(app) -> None:
    """The control for the test above: the expectation holds when the signals come in time order."""
    runtime, served, _ = app
    for n, (problem, recovery) in enumerate(FAILOVERS):
        assert served.post_alert(_health(2 * n, problem, "Degraded")).status_code == 202
        assert served.post_alert(_health(2 * n + 1, recovery, "Available")).status_code == 202
    incidents = _incidents(runtime)
    assert [(i.signal_count, len(runtime.store.timeline(i))) for i in incidents] == [(2, 2)] * 3


def _nine_failovers(served: Served) -> None:
    """Nine resolved failovers an hour apart: the state row keeps only the newest eight incidents."""
    for n in range(9):
        assert served.post_alert(_health(100 + 2 * n, n * 3600, "Degraded")).status_code == 202
        assert served.post_alert(_health(101 + 2 * n, n * 3600 + 150, "Available")).status_code == 202


def test_a_late_signal_for_a_forgotten_incident_is_recorded(app) -> None:
    """Found: a late signal of an incident the state row no longer kept was refused with 503 for ever.

    After more than `Policy.keep_incidents` (8) newer incidents, the oldest one was dropped from
    the state row. A late signal observed in the same second as that incident opened got the same
    incident id again, and the transaction tried to *create* effect rows that already existed:
    EntityAlreadyExists was taken for an ETag conflict, retried 12 times and answered 503, so Azure
    redelivered it until it gave up. The signal was never recorded.
    """
    runtime, served, clock = app
    clock.now = T0 + timedelta(hours=12)
    _nine_failovers(served)
    late = served.post_alert(_health(999, 0, "Degraded"))  # same second as the first failover opened
    assert late.status_code == 202, late.text
    first = _incidents(runtime)[0]
    assert first.signal_count == 3


def test_a_late_signal_for_a_forgotten_failover_does_not_open_a_second_incident(app) -> None:
    """Found: the same late signal a minute later opened a new incident for a failover 12 hours old.

    The new incident never received a recovery signal, so it stayed open, announced itself (an
    "opened" card, a Redis refresh) for a failover long over, and its open time range covered every
    later signal: its timeline listed the entries of the eight newer incidents as well.
    """
    runtime, served, clock = app
    clock.now = T0 + timedelta(hours=12)
    _nine_failovers(served)
    assert served.post_alert(_health(998, 60, "Degraded")).status_code == 202
    incidents = _incidents(runtime)
    assert len(incidents) == 9, [i.incident_id for i in incidents]
    assert all(i.signal_count == len(runtime.store.timeline(i)) for i in incidents)


def test_a_failover_after_the_quiet_period_is_a_new_incident_before_the_sweeper_runs(app) -> None:
    """Bug (open): whether a second failover gets its own incident depends on the sweeper's timing.

    Failover A recovers at +60 s; with a 300 s quiet period it is over at +360 s, but it is marked
    resolved only when the sweeper's next tick settles it. A second failover observed at +600 s,
    arriving before that tick (the sweeper runs once a minute, and not at all while it fails), is
    folded into A: one incident, one "opened" card, failover B never announced; with a sweeper tick
    in between, the same signals make two incidents.
    """
    runtime, served, clock = app
    clock.now = T0 + timedelta(minutes=1)
    assert served.post_alert(_health(1, 0, "Degraded")).status_code == 202
    assert served.post_alert(_health(2, 60, "Available")).status_code == 202
    clock.now = T0 + timedelta(minutes=11)  # A's quiet period ended at +6 min; no sweeper tick yet
    assert served.post_alert(_health(3, 600, "Degraded")).status_code == 202
    assert served.post_alert(_health(4, 660, "Available")).status_code == 202
    incidents = _incidents(runtime)
    assert [i.signal_count for i in incidents] == [2, 2], [(i.incident_id, i.signal_count) for i in incidents]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("9999-12-31T23:59:59Z", "Degraded"), ("9999-12-31T23:59:59Z", "Available")),
        (("9999-12-31T23:59:59Z", "Degraded"), ("0001-01-01T00:00:00Z", "Degraded")),
    ],
)
def test_timestamps_at_the_ends_of_the_calendar_get_a_clear_answer(app, first, second) -> None:
    """Bug (open): an alert dated in year 9999 (or year 1) crashes the recording and is answered 503.

    The parsers accept any ISO 8601 time. Near `datetime.max`, correlation adds the quiet period
    (`resolution_due`: `last_recovery_at + quiet`) and raises OverflowError; before year 1000,
    `timeutil.compact` (strftime `%Y`, not zero-padded on Linux) makes an incident id such as
    `pg-late-01~10101T000000Z` that `table_codec.split_incident_id` refuses (IncidentIdError). The
    edge turns both into 503 "internal error, retry later", so the action group retries a payload
    that can never succeed, and the year-9999 incident stays open for ever. Found by the bad-input
    suite (mutated fixtures), where it also showed as a partial answer: a Resolved metric alert
    whose Fired signal was recorded before its Resolved one failed.
    """
    _, served, _ = app
    answers = []
    for n, (when, status) in enumerate((first, second)):
        payload = resource_health(event_id=f"edge-{n}", at=T0, server=SERVER, status=status)
        payload["data"]["alertContext"]["eventTimestamp"] = when
        answers.append(served.post_alert(payload))
    assert [a.status_code for a in answers if a.status_code not in (202, 400)] == [], [
        a.text for a in answers
    ]
