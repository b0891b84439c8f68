"""What a quiet probe run and a shard's claim cost in Table requests, through the real Table client
on Azurite; and claims under generated races, refused on their ETags by the real service.

The README's cost per 100 servers is counted here with `TableStore`'s own round-trip counter, and
a row another writer changed during a run is refused on its ETag by the real service and kept
whole (the same scenarios run on the memory store in tests/functional/test_probe_priority.py).
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings

from tests.functional.test_probe_priority import (
    a_row_changed_during_a_run_keeps_both_writes,
    quiet_runs_cost_two_requests_per_server,
)
from tests.functional.test_shard_claims import (
    TICK,
    claims_cost_three_requests_a_message,
    each_shard_once_and_instances_keep_theirs,
    histories,
)

pytestmark = pytest.mark.integration
_EXAMPLES = itertools.count(1)


def test_a_quiet_run_costs_two_table_requests_per_server_on_table_storage(store):
    quiet_runs_cost_two_requests_per_server(store)


def test_a_row_another_writer_changed_during_the_run_keeps_both_writes_on_table_storage(store):
    a_row_changed_during_a_run_keeps_both_writes(store)


def test_a_claim_costs_three_table_requests_a_message_on_table_storage(store):
    claims_cost_three_requests_a_message(store)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
def test_each_shard_once_per_tick_and_instances_keep_theirs_on_table_storage(store, history):
    # One table for every example: each starts hours after the last, so earlier claims are stale.
    each_shard_once_and_instances_keep_theirs(
        store.side_rows(), history, TICK + timedelta(hours=next(_EXAMPLES))
    )
