"""Generated failover histories, the long run: how many histories the incident model survives.

The default suite (`tests/functional/test_history.py`) checks 500 generated histories; this runs the
same generator and invariants for a fixed time budget (default 240 s, `--quick` 30 s) and reports how
many histories (and schedules) it checked and the first counterexample, if any. Histories are drawn
with hypothesis's strategies, deliveries shuffled within the documented lag bounds, through 1 and 4
concurrent senders with injected storage faults (tests/histories.py).

    python -m bench.run --only history
"""

from __future__ import annotations

import time
import traceback

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.common import Result

BUDGET_SECONDS = 240.0
QUICK_SECONDS = 30.0
BATCH = 50


def run(*, quick: bool = False) -> Result:
    from tests.functional.test_history import check_history
    from tests.histories import Failover, histories

    budget = QUICK_SECONDS if quick else BUDGET_SECONDS
    result = Result(
        "history",
        "Generated failover histories: the incident model's invariants, long run",
        f"hypothesis histories of 1-5 failovers, 2 schedules each (1 and 4 senders, 15% storage faults),"
        f" batches of {BATCH} for {budget:.0f} s",
    )
    checked = 0
    failure: str | None = None
    deadline = time.monotonic() + budget

    @settings(max_examples=BATCH, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(history=histories(), seed=st.integers(0, 2**32 - 1))
    def batch(history: list[Failover], seed: int) -> None:
        nonlocal checked
        check_history(history, seed)
        checked += 1

    while failure is None and time.monotonic() < deadline:
        try:
            batch()  # each batch draws fresh histories (no example database)
        except AssertionError as error:
            failure = "".join(traceback.format_exception_only(type(error), error)).strip()[:2000]
    result.add("histories checked", f"{checked:,}", "at least 500 (the default suite)", checked >= 500)
    result.add("schedules checked", f"{2 * checked:,}")
    result.add("counterexample", failure or "none", "none", failure is None)
    result.notes.append(
        "Invariants: one incident per failover, announced opened once, never two cards for one transition; "
        "the same incidents (start, count, cause, status, zones, downtime, restore) for both schedules; "
        "every delivered signal on the timeline and each incident's count equal to its timeline."
    )
    return result
