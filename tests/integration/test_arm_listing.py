"""Issue 15: the probe reads the management API by subscription listing, under ARM's read throttle.

Measured on the earlier main: a check of one server was two ARM reads (GET server, list replicas), so
watching 500 servers every 5 s asked for 200 reads a second, where ARM refills 25 a second per
subscription and principal (request-limits-and-throttling). Through the real SDK and the emulator:
every view read from the listing equals the server's own GET (replicas included), a fleet's checks
cost the listing's pages, the listing is taken again only when older than its bound, and a refused
or failing listing is handled as the issue names it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from failover.adapters.arm_listing import ListedInspector
from failover.errors import InspectorUnavailableError
from local.arm_emulator import ReplicaSpec

pytestmark = pytest.mark.integration

LIST_PATH = r"/providers/Microsoft\.DBforPostgreSQL/flexibleServers$"


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fleet(emulator, count: int) -> list[str]:
    ids = [emulator.add_server(f"rg-{n % 3}", f"pg-{n:03d}") for n in range(count)]
    ids.append(
        emulator.add_server(
            "rg-1", "pg-with-replicas", replicas=("pg-r1", ReplicaSpec("pg-r2", "westus", "Catchup"))
        )
    )
    return ids


def _reads(emulator) -> int:
    return sum(1 for r in emulator.requests if r.method == "GET")


def _listings(emulator) -> int:
    """Listings started: first pages of the subscription's servers (a next page carries $skiptoken)."""
    return sum(
        1 for r in emulator.requests if r.path.endswith("flexibleServers") and "$skiptoken" not in r.query
    )


def test_views_from_the_listing_equal_the_servers_own_reads(arm_emulator, arm_inspector):
    ids = _fleet(arm_emulator, 12)
    listed = ListedInspector(arm_inspector, max_age=60, monotonic=Ticks())
    for rid in ids:
        assert listed.get_server(rid) == arm_inspector.get_server(rid)
    view = listed.get_server(ids[-1])
    assert [(r.name, r.location, r.replication_state) for r in view.replicas] == [
        ("pg-r1", "eastus", "Active"),
        ("pg-r2", "westus", "Catchup"),
    ]


def test_a_fleets_checks_cost_the_listings_pages_not_two_reads_a_server(arm_emulator, arm_inspector):
    arm_emulator.page_size = 50
    ids = _fleet(arm_emulator, 119)  # 120 servers and 2 replicas: 3 pages
    listed = ListedInspector(arm_inspector, max_age=2.5, monotonic=(ticks := Ticks()))
    arm_emulator.clear_requests()
    for _ in range(2):  # two rounds of checks within the bound: one listing
        for rid in ids:
            listed.get_server(rid)
    assert _reads(arm_emulator) == 3 and _listings(arm_emulator) == 1

    ticks.now += 2.5  # older than its bound: the next check lists again, once
    arm_emulator.update_server("rg-0", "pg-000", ha_state="FailingOver")
    assert listed.get_server(ids[0]).ha_state == "FailingOver"
    for rid in ids:
        listed.get_server(rid)
    assert _reads(arm_emulator) == 6 and _listings(arm_emulator) == 2


def test_a_server_missing_from_the_listing_is_read_on_its_own(arm_emulator, arm_inspector):
    first = arm_emulator.add_server("rg-0", "pg-old")
    listed = ListedInspector(arm_inspector, max_age=60, monotonic=Ticks())
    listed.get_server(first)
    created = arm_emulator.add_server("rg-0", "pg-new", zones=("3", "1"))
    assert listed.get_server(created).primary_zone == "3"


def test_a_refused_listing_falls_back_to_reads_server_by_server(arm_emulator, arm_inspector):
    ids = _fleet(arm_emulator, 4)
    listed = ListedInspector(arm_inspector, max_age=1, refused_for=900, monotonic=(ticks := Ticks()))
    arm_emulator.inject(LIST_PATH, 403)
    assert listed.get_server(ids[0]) == arm_inspector.get_server(ids[0])
    arm_emulator.clear_requests()
    ticks.now += 10  # older than its bound, but the subscription stays refused: no listing asked
    listed.get_server(ids[1])
    assert not any(r.path.endswith("flexibleServers") for r in arm_emulator.requests)
    ticks.now += 900
    listed.get_server(ids[1])
    assert any(r.path.endswith("flexibleServers") for r in arm_emulator.requests)


def test_checks_that_waited_on_a_slow_listing_are_served_by_it(arm_emulator, arm_inspector):
    """Measured in the fleet benchmark on a loaded machine: a listing that took longer than its bound
    was already "too old" for every check that had waited on it, so each of them listed again, one
    after the other: 8 of 62 servers got a management API check in a 30 s window, and the recording
    workers those checks held kept a detected failover unrecorded for half a minute. A listing
    asked for after a check arrived is as fresh as that check can have: it serves it."""
    ids = _fleet(arm_emulator, 8)
    listed = ListedInspector(arm_inspector, max_age=0.2)  # the real clock: the delay is real
    arm_emulator.inject_delay(LIST_PATH, 0.6, count=len(ids))
    arm_emulator.clear_requests()
    with ThreadPoolExecutor(len(ids)) as pool:
        views = list(pool.map(listed.get_server, ids))
    assert [v.resource_id.lower() for v in views] == [rid.lower() for rid in ids]
    assert _listings(arm_emulator) == 1

    time.sleep(0.2)  # a check arriving once the listing is older than its bound lists again
    listed.get_server(ids[0])
    assert _listings(arm_emulator) == 2


def test_a_throttled_listing_fails_the_check_as_a_throttled_read_did(arm_emulator, arm_inspector):
    ids = _fleet(arm_emulator, 2)
    listed = ListedInspector(arm_inspector, max_age=1, monotonic=Ticks())
    arm_emulator.inject(LIST_PATH, 429, retry_after=3)
    with pytest.raises(InspectorUnavailableError) as raised:
        listed.get_server(ids[0])
    assert raised.value.retry_after == pytest.approx(3, abs=1)
    assert listed.get_server(ids[0]).server == "pg-000"  # the next check lists again


def test_the_apps_probe_checks_a_fleet_within_arms_read_refill(arm_emulator, azurite, table_name):
    """The probe as the app wires it: 60 servers checked every second for 5 s. One server at a time
    asked for 2 reads per check: 120 reads a second. The listing keeps it to a few."""
    from failover.config import Settings
    from failover.wiring import build_runtime

    arm_emulator.page_size = 100
    ids = [arm_emulator.add_server("rg-fleet", f"pg-{n:02d}") for n in range(60)]
    settings = Settings.from_env(
        {
            "AzureWebJobsStorage": azurite,
            "FAILOVER_TABLE": table_name,
            "ARM_ENDPOINT": arm_emulator.base_url,
            "MONITORED_SERVERS": ";".join(ids),
            "PROBE_DB": "off",
            "PROBE_WINDOW_SECONDS": "5",
            "PROBE_ARM_INTERVAL_SECONDS": "1",
        }
    )
    runtime = build_runtime(settings)
    arm_emulator.clear_requests()
    report = runtime.prober.run_once()

    assert {h.arm for h in report.servers.values()} == {"ok"}
    checks = sum(h.checked_at is not None for h in report.servers.values())
    # Server reads only: the maintenance watch's own polls (once per server per MAINTENANCE_POLL)
    # are not checks.
    reads = sum(1 for r in arm_emulator.requests if r.method == "GET" and "maintenance" not in r.path)
    assert checks == 60
    assert reads <= 5 / 0.5 + 1, f"{reads} server reads in 5 s"  # one listing per half interval
    assert reads / 5 <= 25 / 2  # at most half ARM's refill rate
