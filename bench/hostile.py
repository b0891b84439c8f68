"""The hostile-input run's figures (issue 13), next to the storm: what hostile payloads cost and leave.

Through the registered functions and a real Azurite (its own, on a free port), with `ALERT_SCOPES` set:
- one Service Health notice listing 500 servers (499 outside the accepted scope), window 2026-2099:
  Table round trips of that request, servers recorded, maintenance window kept;
- 40 Resource Health alerts dated backwards from 2099, then a real failover: the state row's largest
  string property against the 32,768 characters a Table string holds, and the failover's answer;
- 20 alerts naming the real server under another subscription: incidents made, round trips.
The same cases are tests in tests/reliability/test_hostile.py; this prints their figures.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from bench.common import Result

OURS = "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e"
THEIRS = "99999999-9999-9999-9999-999999999999"
STRING_LIMIT = 32 * 1024


def _degraded(n: int, when: datetime, subscription: str = OURS) -> dict[str, Any]:
    from tests.payloads import load

    payload: dict[str, Any] = json.loads(
        json.dumps(load("monitor/resource_health_degraded_unplanned.json")).replace(OURS, subscription)
    )
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
    payload["data"]["alertContext"]["eventDataId"] = f"hostile-{n}"
    payload["data"]["alertContext"]["eventTimestamp"] = stamp
    payload["data"]["essentials"]["firedDateTime"] = stamp
    return payload


def run(*, quick: bool = False) -> Result:
    from local.services import LocalServices, free_port
    from tests.builders import T0
    from tests.conftest import FakeClock
    from tests.integration import app_harness as app
    from tests.payloads import load

    result = Result(
        "hostile", "Hostile input: spoofed scopes, oversized notices, dates from 2099", "see module docstring"
    )
    services = LocalServices()
    try:
        storage = services.azurite(free_port())
        clock = FakeClock(T0 + timedelta(minutes=1))
        rt = app.install(
            {
                "AzureWebJobsStorage": storage,
                "FAILOVER_TABLE": "hostile",
                "ALERT_SCOPES": f"/subscriptions/{OURS}",
            },
            clock=clock,
        )
        provider = "providers/microsoft.dbforpostgresql/flexibleservers"
        rid = f"/subscriptions/{OURS}/resourcegroups/rg-data/{provider}/pg-prod-01"
        notice = load("monitor/service_health_maintenance.json")
        props = notice["data"]["alertContext"]["properties"]
        foreign = [f"/subscriptions/{THEIRS}/resourcegroups/evil/{provider}/pg-x{n:03d}" for n in range(499)]
        props["impactedResources"] = [{"resourceId": r} for r in [rid, *foreign]]
        props["impactStartTime"], props["impactMitigationTime"] = (
            "2026-11-25T00:00:00Z",
            "2099-01-01T00:00:00Z",
        )
        before = rt.store.round_trips
        _, body = app.post_alert(notice)
        trips = rt.store.round_trips - before
        recorded = [s["status"] for s in body["signals"]].count("recorded")
        result.add(
            "500-server notice: Table round trips", str(trips), "< 20 (was 1,000 operations)", trips < 20
        )
        result.add(
            "500-server notice: servers recorded",
            f"{recorded} of 500",
            "only the accepted one",
            recorded == 1,
        )
        state, _ = rt.store.read_state("pg-prod-01")
        days = (state.maintenance[0].ends_at - state.maintenance[0].starts_at).days if state else -1
        result.add("maintenance window kept", f"{days} days", "<= 7 days (was 2026-2099)", 0 <= days <= 7)
        for n in range(40):
            app.post_alert(_degraded(n, datetime(2099, 12, 31, tzinfo=timezone.utc) - timedelta(days=n)))
        entity = rt.store._client.get_entity("pg-prod-01", "state")
        longest = max(len(v) for v in entity.values() if isinstance(v, str))
        result.add(
            "state row after 40 alerts dated to 2099: largest string property",
            f"{longest:,} chars",
            f"< {STRING_LIMIT:,} (was 32,757)",
            longest < STRING_LIMIT,
        )
        clock.now = T0 + timedelta(hours=5)
        status, _ = app.post_alert(_degraded(99, clock.now - timedelta(seconds=30)))
        result.add("the next real failover", f"HTTP {status}", "202 (was 503 for a day)", status == 202)
        before = rt.store.round_trips
        spoofed = [app.post_alert(_degraded(100 + n, T0, THEIRS))[0] for n in range(20)]
        result.add(
            "20 alerts naming pg-prod-01 under another subscription",
            f"answers {sorted(set(spoofed))}, {rt.store.round_trips - before} round trips",
            "200 ignored, no storage (was five incidents)",
            set(spoofed) == {200} and rt.store.round_trips == before,
        )
        rt.store._client.delete_table()
        app.set_runtime(None)
    finally:
        services.stop()
    return result
