"""Generated failovers and failbacks minutes apart (hypothesis): one epoch per primary change (issue 12).

Invariant: whatever reports a change (the database probe, the management API probe, Event Grid) and in
whatever order and delay the reports arrive (within `failover.lags`), through one or four concurrent
senders with storage faults, each primary change is one incident and bumps the epoch exactly once:
a failover and its failback bump it twice, two sources of one change bump it once. The topology
applications read names the zone the last change put the primary in.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.incidents import topology_of
from failover.model import Transition
from tests.histories import SERVER, deliver, primary_changes, schedule


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=primary_changes(), seed=st.integers(0, 2**32 - 1), senders=st.sampled_from((1, 4)))
def test_every_primary_change_bumps_the_epoch_exactly_once(history, seed, senders):
    rng = random.Random(seed)
    outcome = deliver(history, schedule(history, rng, lose=frozenset()), rng, senders=senders, fault_rate=0.1)
    state, _ = outcome.store.read_state(SERVER)
    assert state is not None
    assert len(outcome.incidents) == len(history)
    assert all(Transition.PRIMARY_RESTORED in i.transitions for i in outcome.incidents)
    assert state.epoch == len(history)
    before, landed = history[-1].zones
    if "arm_probe" in history[-1].sources and before != landed:  # the management API saw it move
        assert topology_of(state, None, now=outcome.incidents[-1].last_signal_at).primary_zone == landed
