"""One watcher per server across ticks: a run's longest watch ends before the next tick starts."""

from __future__ import annotations

from datetime import timedelta

from failover.probing import ProbeSchedule
from handlers.timers import PROBE_PERIOD, PROBE_WINDOW_MAX


def test_the_longest_window_and_its_recording_grace_end_before_the_next_tick():
    # A run samples past its window only while its last recording runs, for at most the grace; the
    # next tick's shards are planned a period after this tick's, and taken later still.
    longest = PROBE_WINDOW_MAX + timedelta(seconds=ProbeSchedule().record_grace)
    assert longest < PROBE_PERIOD
    assert PROBE_PERIOD - longest >= timedelta(seconds=2)  # the timer may fire late; the host polls
