"""Issue 15: a sweeper run ends within its budget and leaves the rest, counted, for the next run."""

from __future__ import annotations

import itertools
from datetime import timedelta

from failover.adapters.memory_store import MemoryStore
from failover.ports import Check
from failover.service import Responder
from tests.builders import T0


def test_a_spent_budget_leaves_due_work_for_the_next_run():
    store = MemoryStore()
    for n in range(10):
        store.schedule_work((), now=T0, checks=[Check("settle", f"pg-{n:03d}", T0)])
    ticks = itertools.count(0.0, 1.0)  # each reading of the monotonic clock: one more second
    responder = Responder(store=store, clock=lambda: T0, monotonic=lambda: next(ticks))
    report = responder.sweep(budget=timedelta(seconds=3.5))
    assert report.examined < 10 and report.left == 10 - report.examined
    assert store.pending_work_count() == report.left
    rest = responder.sweep()
    assert rest.examined == report.left and rest.left == 0
