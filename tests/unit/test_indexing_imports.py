"""Issue 15, cold start: indexing the app loads the handlers and nothing of the core they do not need.

A worker imports `function_app` on every cold start; every project module imported there is paid on
each start (from a read-only package). The handlers import the core on first use instead, so the
only core modules loaded at indexing are the package itself and `failover.shards` (the queue
trigger's queue name), and that one without its parsing helpers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
import function_app
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("failover", "handlers"))))
"""


def _project_modules_after_indexing() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_indexing_the_app_loads_only_the_handlers_and_the_shard_queue_name():
    loaded = _project_modules_after_indexing()
    core = [m for m in loaded if m.startswith("failover")]
    assert core == ["failover", "failover.shards"]
    assert set(loaded) - set(core) == {
        "handlers",
        "handlers._http",
        "handlers._runtime",
        "handlers.alerts",
        "handlers.eventgrid",
        "handlers.health",
        "handlers.lookups",
        "handlers.queues",
        "handlers.timers",
    }


def test_a_shard_still_round_trips_with_its_helpers_imported_on_use():
    from datetime import datetime, timedelta, timezone

    from failover.shards import Shard, plan

    rid = "/subscriptions/s/resourcegroups/rg/providers/microsoft.dbforpostgresql/flexibleservers/pg-1"
    issued = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    (shard,) = plan((rid,), shard_size=5, issued_at=issued, window=timedelta(seconds=50))
    assert Shard.from_json(shard.to_json()) == shard
