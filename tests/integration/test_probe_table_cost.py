"""What a quiet probe run costs in Table requests, through the real Table client on Azurite.

The README's cost per 100 servers is counted here with `TableStore`'s own round-trip counter, and
a row another writer changed during a run is refused on its ETag by the real service and kept
whole (the same scenarios run on the memory store in tests/functional/test_probe_priority.py).
"""

from __future__ import annotations

import pytest

from tests.functional.test_probe_priority import (
    a_row_changed_during_a_run_keeps_both_writes,
    quiet_runs_cost_two_requests_per_server,
)

pytestmark = pytest.mark.integration


def test_a_quiet_run_costs_two_table_requests_per_server_on_table_storage(store):
    quiet_runs_cost_two_requests_per_server(store)


def test_a_row_another_writer_changed_during_the_run_keeps_both_writes_on_table_storage(store):
    a_row_changed_during_a_run_keeps_both_writes(store)
