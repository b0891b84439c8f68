"""The fleet benchmark's figures: intervals per server, tick-boundary gaps, one tick's window."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.fleet import (
    LastSample,
    Samples,
    Ticks,
    _SampleLog,
    _session_costs,
    _Timed,
    boundary_gaps,
    intervals,
    kept_by_their_consumer,
    phase_of,
    read_samples,
)
from failover.ports import DbCheck

times = st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=30).map(sorted)


@given(st.dictionaries(st.sampled_from(["pga", "pgb", "pgc"]), times))
def test_intervals_are_between_consecutive_samples_of_one_server_only(per_server):
    found = intervals(per_server)
    assert len(found) == sum(max(0, len(t) - 1) for t in per_server.values())
    assert all(gap >= 0 for gap in found)
    spans = sum(t[-1] - t[0] for t in per_server.values() if t)
    assert abs(sum(found) - spans) < 1e-6


def test_a_boundary_gap_spans_the_last_sample_before_a_tick_and_the_first_after():
    per_server = {"pga": [0.0, 0.5, 29.6, 33.9, 34.4], "pgb": [1.0, 35.0]}
    assert sorted(round(g, 3) for g in boundary_gaps(per_server, [0.0, 33.0])) == [4.3, 34.0]
    assert boundary_gaps(per_server, [0.0]) == []  # the first tick has nothing before it


def test_a_phase_counts_only_its_window_and_servers_sampled_twice(tmp_path: Path):
    path = tmp_path / "c.samples"
    log = _SampleLog(path)
    for at in (100.2, 100.7, 101.2, 140.0):
        log.write("db", "pga", at)
    log.write("db", "pgb", 100.4)
    log.write("db", "pgb", 111.0)  # started after the window's end: queued work, counted as late
    log.write("arm", "pga", 100.3)
    log.write("arm", "pga", 105.3)
    log.close()
    samples = read_samples([path, tmp_path / "missing.samples"])
    phase = phase_of(samples, consumers=4, servers=3, tick=100.0, window=10.0)
    assert [round(i, 3) for i in phase.db] == [0.5, 0.5]  # 140.0 is another tick's
    assert [round(i, 3) for i in phase.arm] == [5.0]
    assert (phase.db_watched, phase.arm_watched) == (1, 1)
    assert phase.samples == 6 and phase.per_second == 0.6
    assert phase.late == 1
    assert sorted(round(f, 3) for f in phase.first_sample) == [0.2, 0.4]


def test_the_first_and_the_measured_tick_each_count_their_own_window_and_cpu(tmp_path: Path):
    path = tmp_path / "c.samples"
    log = _SampleLog(path)
    for at in (100.1, 102.6, 103.1, 113.2, 113.7, 114.2):  # a slow first tick, a steady second
        log.write("db", "pga", at)
    log.close()
    ticks = Ticks(cold=100.0, warm=113.0, window=10.0, cpu=(4.0, 2.0))
    cold, warm = ticks.measured(read_samples([path]), consumers=4, servers=1)
    assert [round(i, 3) for i in cold.db] == [2.5, 0.5] and cold.cpu == 4.0
    assert [round(i, 3) for i in warm.db] == [0.5, 0.5] and warm.cpu == 2.0
    assert [round(f, 3) for f in warm.first_sample] == [0.2]


def test_a_timed_port_notes_the_server_of_each_call_and_passes_everything_through(tmp_path: Path):
    class Inspector:
        region = "eastus"

        def get_server(self, resource_id: str) -> str:
            return resource_id.upper()

    path = tmp_path / "c.samples"
    log = _SampleLog(path)
    timed = _Timed(Inspector(), "get_server", "arm", log)
    rid = "/subscriptions/s/resourceGroups/rg/providers/x/flexibleServers/PG-One"
    assert timed.get_server(rid) == rid.upper()
    assert timed.region == "eastus"
    log.close()
    noted = read_samples([path])
    assert list(noted.times["arm"]) == ["pg-one"]
    assert isinstance(noted, Samples)


def test_the_sample_log_reaches_the_file_while_the_consumer_still_runs(tmp_path: Path):
    """The parent reads samples from a consumer that has not closed its log (or was killed)."""
    path = tmp_path / "c.samples"
    log = _SampleLog(path)
    try:
        log.write("db", "pga", 100.5)
        deadline = time.monotonic() + 5
        while not path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.read_text() == "db pga 100.500000\n"
    finally:
        log.close()
    assert path.read_text() == "db pga 100.500000\n"  # closing writes nothing twice


def test_the_last_sample_of_a_server_is_read_across_consumers_as_their_logs_grow(tmp_path: Path):
    first, second = tmp_path / "a.samples", tmp_path / "b.samples"
    first.write_text("db pga 10.000000\ndb pgb 11.000000\n")
    last = LastSample([first, second], "pga")
    assert last() == 10.0
    second.write_text("arm pga 12.000000\ndb pga 13.000000\ndb pga 14.0")  # the last line unfinished
    assert last() == 13.0
    with second.open("a") as log:
        log.write("00000\ndb pgab 15.000000\n")
    assert last() == 14.0  # the finished line counts; another server's name starting alike does not


def test_the_target_is_healthy_again_only_after_its_history_moved_past_the_kill():
    from types import SimpleNamespace

    from bench.fleet import _healthy_since

    before = SimpleNamespace(history=["created"], ha_state="Healthy", busy=False)
    assert not _healthy_since(1, before)  # the watchdog has not noticed the kill yet
    during = SimpleNamespace(history=["created", "failing over"], ha_state="FailingOver", busy=True)
    assert not _healthy_since(1, during)
    after = SimpleNamespace(history=["created", "failing over", "done"], ha_state="Healthy", busy=False)
    assert _healthy_since(1, after)


def test_a_phase_reports_its_opening_seconds_apart_from_the_settled_intervals(tmp_path: Path):
    path = tmp_path / "c.samples"
    log = _SampleLog(path)
    for at in (100.2, 100.7, 101.2, 112.0, 112.5):
        log.write("db", "pga", at)
    for at in (103.5, 110.4):
        log.write("db", "pgb", at)
    for at in (100.1, 105.1, 110.1, 115.1):
        log.write("arm", "pga", at)
    log.close()
    phase = phase_of(read_samples([path]), consumers=4, servers=2, tick=100.0, window=30.0)
    assert phase.opening == (2, 1, 0, 1, 0, 0, 0, 0, 0, 0)  # samples started in each of the first 10 s
    assert [round(i, 3) for i in phase.settled] == [0.5]  # 101.2 -> 112.0 began in the opening
    assert [round(i, 3) for i in phase.arm_settled] == [5.0]  # 110.1 -> 115.1


class _OneRefusing:
    """A database probe whose checks of one server find it not writable (as a check that raced an
    eviction did): the session-cost figure must stop, not be printed over checks that failed."""

    def __init__(self, refusing: str) -> None:
        self.refusing = refusing
        self.checked: list[str] = []
        self.closed = False

    def check(self, server: str) -> DbCheck:
        self.checked.append(server)
        now = datetime.now(timezone.utc)
        return DbCheck(server, now, now, connected=True, writable=server != self.refusing)

    def close(self) -> None:
        self.closed = True


def test_session_costs_stop_when_a_check_fails_and_are_measured_when_none_does(monkeypatch):
    from failover import wiring

    made = [_OneRefusing("pgfleet002"), _OneRefusing("none")]
    probes = list(made)
    monkeypatch.setattr(wiring, "build_db_probe", lambda settings, runtime: probes.pop(0))
    runtime = SimpleNamespace(settings=None)
    names = ["pgfleet001", "pgfleet002", "pgfleet003"]
    with pytest.raises(RuntimeError, match="4 of 12 checks did not find the server writable"):
        _session_costs(runtime, names)
    costs = _session_costs(runtime, names)
    assert costs.opened > 0 and costs.kept > 0 and costs.ratio == costs.kept / costs.opened
    assert all(probe.closed and len(probe.checked) == 12 for probe in made)  # its sessions closed


def test_a_server_counts_as_kept_only_when_its_one_consumer_sampled_it_in_both_ticks():
    def consumer(*samples: tuple[str, float]) -> Samples:
        noted = Samples()
        for server, at in samples:
            noted.add("db", server, at)
        return noted

    per_consumer = [
        consumer(("kept", 1.0), ("kept", 11.0), ("moved", 2.0), ("shared", 3.0), ("shared", 12.0)),
        consumer(("moved", 12.0), ("shared", 13.0), ("new", 14.0), ("gone", 4.0)),
    ]
    # Second tick: kept (same consumer), moved (other one), shared (both), new (not seen before).
    assert kept_by_their_consumer(per_consumer, 0.0, 10.0, 5.0) == 1 / 4
    assert math.isnan(kept_by_their_consumer(per_consumer, 0.0, 30.0, 5.0))
