"""Issue 15: a worker's maintenance reads stay within ARM's read throttle, urgent ones first.

Measured on the earlier main: a cold worker read every watched server's `maintenanceEvents` at
its first check, at once (500 reads in the first seconds of a 500-server fleet, against ARM's
bucket of 250 refilled at 25 a second per subscription and principal). Generated fleets and
check histories through the real `MaintenanceWatch` with a fake clock and a counting inspector.
Invariants: no one-second window holds more reads than the budget's burst plus its rate; every
server is read once the budget has had time for all of them; an urgent check (a failover in
progress) reads at once even while a cold start has spent the routine budget.
"""

from __future__ import annotations

import math
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from failover.maintenance import MaintenancePolls, MaintenanceWatch, ReadBudget
from tests.builders import RESOURCE, T0
from tests.conftest import FakeClock


class CountingInspector:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.reads: list[tuple[float, str]] = []

    def maintenance_events(self, resource_id: str, upcoming: bool = True) -> tuple[()]:
        self.reads.append(((self.clock.now - T0).total_seconds(), resource_id))
        return ()


def _watch() -> tuple[MaintenanceWatch, CountingInspector, FakeClock]:
    clock = FakeClock(T0)
    inspector = CountingInspector(clock)
    return MaintenanceWatch(inspector, clock, MaintenancePolls()), inspector, clock  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(servers=st.integers(5, 600), interval=st.sampled_from([0.5, 1.0, 5.0]), offset=st.floats(0, 1))
def test_a_cold_worker_spreads_its_first_reads_and_reaches_every_server(servers, interval, offset):
    watch, inspector, clock = _watch()
    budget = ReadBudget()
    names = [f"pg-{n:03d}" for n in range(servers)]
    routine = budget.burst - budget.reserve
    # Checks that come all at once refill at most the burst between two of them.
    pace = min(budget.rate, routine / interval)
    until = math.ceil(max(0, servers - routine) / pace) + 2 * interval + 1
    steps = int(until / interval) + 1
    for step in range(steps):
        for n, name in enumerate(names):  # each server checked every `interval`, spread over it
            clock.now = T0 + timedelta(seconds=step * interval + offset * interval * n / servers)
            watch.check(RESOURCE.format(server=name), name)

    times = sorted(t for t, _ in inspector.reads)
    read = {rid for _, rid in inspector.reads}
    assert len(read) == servers  # every server read, each once (hourly after that)
    assert len(inspector.reads) == servers
    for start in times:
        in_second = sum(1 for t in times if start <= t < start + 1)
        assert in_second <= budget.burst + budget.rate


@settings(max_examples=30, deadline=None)
@given(servers=st.integers(30, 400))
def test_an_urgent_read_goes_through_while_a_cold_start_has_spent_the_routine_budget(servers):
    watch, inspector, _ = _watch()
    for n in range(servers):
        watch.check(RESOURCE.format(server=f"pg-{n:03d}"), f"pg-{n:03d}")
    routine_reads = len(inspector.reads)
    assert routine_reads < servers  # the rest are put off, still due

    failing = "pg-failing"
    watch.check(RESOURCE.format(server=failing), failing, urgent=True)
    assert [rid for _, rid in inspector.reads[routine_reads:]] == [RESOURCE.format(server=failing)] * 2
