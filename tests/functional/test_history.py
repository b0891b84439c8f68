"""Generated failover histories (hypothesis): the incident model's invariants hold for any delivery.

Each example is 1 to 5 failovers of one server (planned, forced, unplanned, maintenance) seen by a
random subset of sources, with recovery alerts sometimes lost, delivered twice, shuffled within the
documented lag bounds (`failover.lags`), through concurrent senders and injected storage faults
(a 503 is redelivered, as Azure does). Invariants (issue 10):
- one incident per failover, announced opened once, and never two cards for one transition;
- another schedule of the same deliveries gives the same incidents (start, count, cause, status,
  zones, downtime);
- nothing recorded is lost: every signal is on the timeline, and each incident's count is its timeline.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.model import EffectName, Transition
from tests.histories import (
    SERVER,
    deliver,
    expected_status,
    fingerprint,
    histories,
    lost_recoveries,
    schedule,
)

EXAMPLES = 500


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), seed=st.integers(0, 2**32 - 1))
def test_any_schedule_of_a_history_gives_one_incident_per_failover_and_the_same_incidents(history, seed):
    check_history(history, seed)


def check_history(history, seed):
    """Two schedules of one history; every invariant (shared with bench/history.py's long run)."""
    rng = random.Random(seed)
    lost = lost_recoveries(history, rng)
    first = deliver(history, schedule(history, rng, lose=lost), rng, senders=1)
    second = deliver(history, schedule(history, rng, lose=lost), rng, senders=4, fault_rate=0.15)

    assert len(first.incidents) == len(history)
    assert [fingerprint(i) for i in first.incidents] == [fingerprint(i) for i in second.incidents]
    for n, (failover, incident) in enumerate(zip(history, first.incidents, strict=True)):
        assert incident.cause is failover.expected_cause, (n, failover.sources)
        assert incident.status is expected_status(failover, lost, n)
    for outcome in (first, second):
        _nothing_lost_and_one_opened_each(outcome, history, lost)


def _nothing_lost_and_one_opened_each(outcome, history, lost):
    store = outcome.store
    timelines = [store.timeline(i) for i in outcome.incidents]
    for incident, timeline in zip(outcome.incidents, timelines, strict=True):
        assert incident.signal_count == len(timeline)
        # Opened once: the transition is announced once, and the first card says where things stand
        # (several transitions reached by one late signal give one card, for the latest).
        cards = [
            e.transition for e in store.effects_of(incident.incident_id) if e.name is EffectName.NOTIFY_TEAMS
        ]
        assert Transition.OPENED in incident.transitions
        assert cards and len(cards) == len(set(cards))
    entries = {e["RowKey"] for e in store.entities(SERVER) if e["RowKey"].startswith("signal~")}
    delivered = {
        s.signal_id
        for n, f in enumerate(history)
        for s in f.signals
        if f"{n}:{s.signal_id.split(':', 1)[1]}" not in lost
    }
    assert len(entries) == len(delivered) == outcome.recorded
