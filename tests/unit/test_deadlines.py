"""Issue 15: one thread bounds every probe statement (it was a timer thread per statement).

Generated histories of statements (how long each may run, when it ends or never ends) against the
real thread and clock, at millisecond scale. Invariants: a statement that ended is never cancelled
after its end returned; one that never ends is cancelled exactly once, never before its bound; and
closing leaves no thread.
"""

from __future__ import annotations

import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from failover.adapters.deadlines import Deadlines

statements = st.lists(
    st.tuples(st.integers(1, 25), st.one_of(st.none(), st.integers(0, 30))), min_size=1, max_size=12
)


@settings(max_examples=40, deadline=None)
@given(history=statements)
def test_an_ended_statement_is_never_cancelled_and_a_stuck_one_once_in_time(history):
    expired: dict[int, list[float]] = {}
    ended: dict[int, float] = {}
    lock = threading.Lock()

    def expire(item: int) -> None:
        with lock:
            expired.setdefault(item, []).append(time.monotonic())

    threads_before = _deadline_threads()
    deadlines = Deadlines(expire)
    started: dict[int, float] = {}
    workers = []
    for item, (bound_ms, runs_ms) in enumerate(history):
        started[item] = time.monotonic()
        token = deadlines.watch(item, bound_ms / 1000)
        if runs_ms is not None:

            def end(item: int = item, token: int = token, runs_ms: int = runs_ms) -> None:
                time.sleep(runs_ms / 1000)
                deadlines.done(token)
                with lock:
                    ended[item] = time.monotonic()

            workers.append(threading.Thread(target=end))
            workers[-1].start()
    for worker in workers:
        worker.join()
    time.sleep(0.06)  # past every bound
    deadlines.close()

    for item, (bound_ms, _) in enumerate(history):
        times = expired.get(item, [])
        assert len(times) <= 1
        if times:
            assert times[0] >= started[item] + bound_ms / 1000 - 1e-3
        if item in ended:
            assert all(t <= ended[item] for t in times)  # never after its end returned
        else:
            assert len(times) == 1  # stuck: cancelled, once
    assert _deadline_threads() <= threads_before


def _deadline_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "statement-deadlines")
