"""Issue 15: the Table client keeps a connection for every thread a probe run uses.

Found by the fleet benchmark: with 8 recording and 16 sampling threads on one instance, the SDK's
default HTTP pool (10 connections) logged "Connection pool is full, discarding connection" all run
long, and each discarded connection was opened again (a TCP and, in Azure, a TLS handshake). Here
24 threads read through one real `TableStore` on Azurite at once.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

THREADS = 24  # PROBE_MAX_WORKERS + PROBE_RECORD_WORKERS, the defaults


def test_two_dozen_threads_share_the_table_client_without_discarding_connections(store, caplog):
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda n: store.read_state(f"pg-pool-{n % THREADS:02d}"), range(THREADS * 8)))
    assert all(state is None for state, _ in results)
    discarded = [r for r in caplog.records if "Connection pool is full" in r.getMessage()]
    assert not discarded, f"{len(discarded)} connections discarded"
