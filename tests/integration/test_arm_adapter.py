"""ManagementApiInspector with the real azure-mgmt-postgresqlflexibleservers client against ArmEmulator."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from failover.adapters.arm import ManagementApiInspector, build_client_factory, static_credential
from failover.errors import InspectorError, InspectorUnavailableError, is_retryable
from local import pgpair
from local.arm_emulator import ReplicaSpec
from local.services import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_adapters_imports_no_sdk():
    code = (
        "import sys, failover.adapters.arm, failover.adapters.postgres;"
        "bad = sorted(m for m in sys.modules if m.startswith(('azure', 'psycopg', 'requests')));"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "", f"imported at module import: {out.stdout.strip()}"


def test_get_server_reads_every_field_and_replicas(arm_emulator, arm_inspector):
    rid = arm_emulator.add_server(
        "RG-Prod",
        "pg-prod-01",
        zones=("1", "2"),
        replicas=("pg-prod-01-r1", ReplicaSpec("pg-prod-01-r2", "westus", "Catchup")),
    )
    view = arm_inspector.get_server(rid)
    assert view.resource_id == rid.lower()
    assert view.server == "pg-prod-01"
    assert view.location == "eastus"
    assert view.state == "Ready" and type(view.state) is str
    assert view.ha_mode == "ZoneRedundant" and type(view.ha_mode) is str
    assert view.ha_state == "Healthy"
    assert (view.primary_zone, view.standby_zone) == ("1", "2")
    assert view.fqdn == "pg-prod-01.postgres.database.azure.com"
    assert view.replication_role == "Primary"
    assert [(r.name, r.location, r.replication_state) for r in view.replicas] == [
        ("pg-prod-01-r1", "eastus", "Active"),
        ("pg-prod-01-r2", "westus", "Catchup"),
    ]
    assert all(
        r.resource_id == r.resource_id.lower() and r.resource_id.endswith(r.name) for r in view.replicas
    )
    assert arm_inspector.list_replicas(rid) == view.replicas

    # A server without HA and a replica addressed directly.
    plain = arm_inspector.get_server(
        arm_emulator.add_server("rg-prod", "pg-dev", ha_mode="Disabled", replicas=())
    )
    assert (plain.ha_mode, plain.ha_state, plain.standby_zone, plain.replicas) == (
        "Disabled",
        "NotEnabled",
        None,
        (),
    )
    replica = arm_inspector.get_server(arm_emulator.resource_id("rg-prod", "pg-prod-01-r1"))
    assert replica.replication_role == "AsyncReplica"

    # What went over the wire: the SDK's shape, a bearer token, never recorded by the emulator.
    gets = [r for r in arm_emulator.requests if r.method == "GET"]
    assert gets and all(r.query.get("api-version") == ["2026-10-01"] for r in gets)
    assert all("authorization" not in {k.lower() for k in r.headers} for r in arm_emulator.requests)
    assert all(r.status == 200 for r in gets)


def test_discover_by_subscription_and_resource_group_follows_next_links(
    arm_emulator, arm_inspector, arm_subscription
):
    arm_emulator.page_size = 2  # force nextLink paging
    a = arm_emulator.add_server("rg-a", "pg-a1", replicas=("pg-a1-r1",))
    b = arm_emulator.add_server("rg-a", "pg-a2", ha_mode="SameZone")
    arm_emulator.add_server("rg-a", "pg-a3", ha_mode="Disabled")
    c = arm_emulator.add_server("rg-b", "pg-b1")
    found = arm_inspector.discover((f"/subscriptions/{arm_subscription}",))
    assert found == tuple(sorted(x.lower() for x in (a, b, c)))
    assert arm_inspector.discover((f"/subscriptions/{arm_subscription}/resourceGroups/RG-A",)) == tuple(
        sorted(x.lower() for x in (a, b))
    )
    both = arm_inspector.discover(
        (f"/subscriptions/{arm_subscription}/resourceGroups/rg-b", f"/subscriptions/{arm_subscription}")
    )
    assert both == found
    assert any("$skiptoken" in r.query for r in arm_emulator.requests)
    with pytest.raises(InspectorError):
        arm_inspector.discover(("/subscriptions",))


def test_not_found_forbidden_unauthorized_are_permanent(
    arm_emulator, arm_inspector, arm_subscription, arm_token
):
    rid = arm_emulator.add_server("rg", "pg1")
    errors: list[BaseException] = []
    with pytest.raises(InspectorError) as err:
        arm_inspector.get_server(arm_emulator.resource_id("rg", "missing"))
    assert err.value.status == 404 and not is_retryable(err.value)
    errors.append(err.value)

    arm_emulator.inject(r"/flexibleServers/pg1$", 403, count=1)
    started = time.monotonic()
    with pytest.raises(InspectorError) as err:
        arm_inspector.get_server(rid)
    assert err.value.status == 403
    assert "forbidden" in str(err.value) and "Reader" in str(err.value)
    assert time.monotonic() - started < 2
    errors.append(err.value)

    arm_emulator.inject(r"/flexibleServers/pg1/replicas$", 404, count=1)
    with pytest.raises(InspectorError) as err:
        arm_inspector.get_server(rid)
    assert err.value.status == 404
    errors.append(err.value)

    arm_emulator.inject(r"/flexibleServers$", 401, count=1)
    with pytest.raises(InspectorError) as err:
        arm_inspector.discover((f"/subscriptions/{arm_subscription}",))
    assert err.value.status == 401
    errors.append(err.value)

    with pytest.raises(InspectorError) as err:
        arm_inspector.get_server("/subscriptions/x/resourceGroups/rg/providers/Microsoft.Sql/servers/db")
    errors.append(err.value)
    for error in errors:
        text = str(error)
        assert arm_token not in text and "Bearer" not in text and "api-version" not in text, text
    assert [r.status for r in arm_emulator.requests].count(403) == 1  # permanent: never retried


def test_throttling_server_errors_and_timeouts_are_retryable_and_quick(
    arm_emulator, arm_token, make_arm_client_factory
):
    rid = arm_emulator.add_server("rg", "pg1")
    factory = make_arm_client_factory(arm_emulator.base_url, retry_total=1, read_timeout=0.5)
    inspector = ManagementApiInspector(factory)
    errors: list[BaseException] = []
    try:
        # 429 with a small Retry-After: the SDK retries once after 0.2 s, then we report it.
        arm_emulator.inject(r"/flexibleServers/pg1$", 429, count=2, retry_after=0.2)
        started = time.monotonic()
        with pytest.raises(InspectorUnavailableError) as err:
            inspector.get_server(rid)
        assert is_retryable(err.value)
        assert err.value.retry_after == pytest.approx(0.2)
        assert time.monotonic() - started < 2
        errors.append(err.value)

        arm_emulator.inject(r"/flexibleServers/pg1$", 500, count=2)
        with pytest.raises(InspectorUnavailableError) as err:
            inspector.get_server(rid)
        assert "500" in str(err.value) and err.value.retry_after is None
        errors.append(err.value)

        # A single transient failure is absorbed by the one retry.
        arm_emulator.inject(r"/flexibleServers/pg1$", 503, count=1)
        assert inspector.get_server(rid).ha_state == "Healthy"

        # A slow answer past read_timeout (0.5 s), twice: a timeout, quickly.
        arm_emulator.inject_delay(r"/flexibleServers/pg1$", 1.0, count=2)
        started = time.monotonic()
        with pytest.raises(InspectorUnavailableError) as err:
            inspector.get_server(rid)
        assert time.monotonic() - started < 3
        errors.append(err.value)
    finally:
        factory.close()

    # Nothing listening: connection refused is retryable.
    dead = make_arm_client_factory(f"http://127.0.0.1:{free_port()}", retry_total=0)
    try:
        with pytest.raises(InspectorUnavailableError) as err:
            ManagementApiInspector(dead).get_server(rid)
        errors.append(err.value)
    finally:
        dead.close()
    for error in errors:
        assert arm_token not in str(error) and "127.0.0.1" not in str(error), str(error)


def test_client_factory_caches_and_only_allows_loopback_http(arm_emulator, arm_subscription):
    factory = build_client_factory(static_credential(), base_url=arm_emulator.base_url)
    try:
        assert factory(arm_subscription) is factory(arm_subscription.upper())
        assert factory(arm_subscription) is not factory("other-subscription")
    finally:
        factory.close()
    with pytest.raises(ValueError):
        build_client_factory(static_credential(), base_url="http://management.example.com")
    build_client_factory(static_credential(), base_url="https://management.azure.com").close()


def test_start_failover_validates_mode_and_ha(arm_emulator, arm_inspector):
    plain = arm_emulator.add_server("rg", "pg-noha", ha_mode="Disabled")
    with pytest.raises(InspectorError):
        arm_inspector.start_failover(plain, "SomeOtherMode")
    with pytest.raises(InspectorError) as err:
        arm_inspector.start_failover(plain, "ForcedFailover")
    assert err.value.status == 400
    assert not any(r.method == "POST" and r.status == 202 for r in arm_emulator.requests)

    # A server without a pair: the emulator plays the phases with short sleeps.
    rid = arm_emulator.add_server("rg", "pg-fake", zones=("3", "1"))
    arm_inspector.start_failover(rid, "plannedfailover")  # modes are case-insensitive, sent canonical
    post = next(r for r in arm_emulator.requests if r.method == "POST" and r.status == 202)
    assert post.body == {"restartWithFailover": True, "failoverMode": "PlannedFailover"}
    view = arm_inspector.get_server(rid)
    assert (view.primary_zone, view.standby_zone) == ("1", "3")


def _poll_states(inspector, rid, *, until, timeout):
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 2):
        view = inspector.get_server(rid)
        if not seen or seen[-1] != view.ha_state:
            seen.append(view.ha_state)
        if until(view):
            return view, seen
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    pytest.fail(
        f"server did not reach the expected state within {timeout}s; HA states seen: {seen}", pytrace=False
    )


def test_forced_failover_of_a_real_pair(fresh_pg_pair, arm_emulator, arm_inspector, pg_password):
    pair = fresh_pg_pair
    old_primary, old_standby = pair.primary, pair.standby
    rid = arm_emulator.add_server("rg-ha", "pg-ha", pair=pair, zones=("1", "2"))

    arm_inspector.start_failover(rid, "ForcedFailover", wait=False)
    view, seen = _poll_states(
        arm_inspector, rid, until=lambda v: v.ha_state == "Healthy" and v.primary_zone == "2", timeout=30
    )
    assert (view.primary_zone, view.standby_zone) == ("2", "1")
    assert "FailingOver" in seen and seen[-1] == "Healthy"
    phases = [h.ha_state for h in arm_emulator.history("rg-ha", "pg-ha")]
    assert phases[0] == "Healthy" and phases[-1] == "Healthy"
    assert phases.index("FailingOver") < phases.index("ReplicatingData") < len(phases) - 1

    # The pair really failed over and is HA again.
    assert pair.primary is old_standby and pair.standby is old_primary
    assert pgpair.is_synchronous(pair)
    with psycopg.connect(pair.conninfo(), password=pg_password, autocommit=True) as conn:
        assert conn.execute("SELECT inet_server_port()").fetchone() == (old_standby.port,)

    # wait=True returns once the operation succeeded; the standby rebuild follows.
    arm_inspector.start_failover(rid, "PlannedFailover", wait=True)
    assert arm_inspector.get_server(rid).primary_zone == "1"
    assert pair.primary is old_primary
    _poll_states(arm_inspector, rid, until=lambda v: v.ha_state == "Healthy", timeout=30)
    ops = [r for r in arm_emulator.requests if "azureAsyncOperation" in r.path]
    assert ops and all(r.status == 200 for r in ops)


def test_watchdog_performs_an_unplanned_failover(fresh_pg_pair, arm_emulator, arm_inspector, pg_password):
    pair = fresh_pg_pair
    old_standby = pair.standby
    rid = arm_emulator.add_server("rg-ha", "pg-unplanned", pair=pair, zones=("1", "2"))
    arm_emulator.clear_requests()

    pgpair.kill_primary(pair)
    view, seen = _poll_states(
        arm_inspector, rid, until=lambda v: v.ha_state == "Healthy" and v.primary_zone == "2", timeout=30
    )
    assert "FailingOver" in seen
    assert view.standby_zone == "1"
    assert pair.primary is old_standby and pgpair.is_synchronous(pair)
    # As in Azure: no restart request, nothing but the server's own state tells.
    assert not [r for r in arm_emulator.requests if r.method != "GET"]
    reasons = [h.reason for h in arm_emulator.history("rg-ha", "pg-unplanned")]
    assert any(r.startswith("unplanned") for r in reasons)
    with psycopg.connect(pair.conninfo(), password=pg_password, autocommit=True) as conn:
        conn.execute("SELECT txid_current()")


def test_plain_restart_and_emulator_stop_leaves_no_threads(make_arm_client_factory, make_arm_emulator):
    emulator = make_arm_emulator()
    factory = make_arm_client_factory(emulator.base_url)
    try:
        rid = emulator.add_server("rg", "pg-restart")
        inspector = ManagementApiInspector(factory)
        assert inspector.get_server(rid).state == "Ready"
        # A restart without failover (the SDK call itself: the inspector only starts failovers).
        client = factory(emulator.subscription_id)
        client.servers.begin_restart("rg", "pg-restart").result()
        states = [h.state for h in emulator.history("rg", "pg-restart")]
        assert "Restarting" in states and states[-1] == "Ready"
        assert inspector.get_server(rid).ha_state == "Healthy"
    finally:
        factory.close()
        emulator.stop(timeout=10)
    emulator.stop()  # idempotent
    left = [t.name for t in threading.enumerate() if t.name.startswith("arm-emulator")]
    assert left == []


# --------------------------------------------------------------------------- API 2026-10-01


def test_maintenance_events_upcoming_and_past_in_the_real_rest_shape(arm_emulator, arm_inspector):
    rid = arm_emulator.add_server("rg-maint", "pg-maint", zones=("1", "2"))
    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=5)
    planned = arm_emulator.schedule_maintenance(
        "rg-maint", "pg-maint", start=soon, estimated_downtime="PT1M30S"
    )
    done = arm_emulator.schedule_maintenance(
        "rg-maint", "pg-maint", start=soon - timedelta(days=40), status="Complete", estimated_downtime=None
    )
    odd = arm_emulator.schedule_maintenance(
        "rg-maint",
        "pg-maint",
        start=soon + timedelta(days=1),
        status="PausedByPlatform",
        estimated_downtime="soon",
    )

    upcoming = arm_inspector.maintenance_events(rid, upcoming=True)
    assert [e.event_id for e in upcoming] == [planned, odd]
    first = upcoming[0]
    assert (first.server, first.status, first.maintenance_type) == (
        "pg-maint",
        "Planned",
        "PlannedMaintenance",
    )
    assert type(first.status) is str and first.start_at == soon and first.start_at.tzinfo is not None
    assert first.end_at == soon + timedelta(hours=1)
    assert (first.estimated_downtime, first.estimated_downtime_seconds) == ("PT1M30S", 90.0)
    assert first.deferrable is True and first.original_start_at == soon
    assert first.description and not first.covers(soon)  # Planned, not in progress
    # An unknown status and an unreadable duration are kept as sent, never an error.
    assert (upcoming[1].status, upcoming[1].estimated_downtime, upcoming[1].estimated_downtime_seconds) == (
        "PausedByPlatform",
        "soon",
        None,
    )

    past = arm_inspector.maintenance_events(rid, upcoming=False)
    assert [(e.event_id, e.status, e.estimated_downtime_seconds) for e in past] == [(done, "Complete", None)]

    lists = [r for r in arm_emulator.requests if r.path.endswith("/maintenanceEvents")]
    assert [r.query.get("maintenanceStatus") for r in lists] == [["Upcoming"], ["Past"]]
    assert all(r.query.get("api-version") == ["2026-10-01"] and r.status == 200 for r in lists)

    # The SDK's get by id reads the same resource.
    client = arm_inspector._client_for(arm_emulator.subscription_id)
    one = client.maintenance_events.get("rg-maint", "pg-maint", planned)
    assert one.properties.status == "Planned" and one.name == planned

    with pytest.raises(InspectorError) as err:
        arm_inspector.maintenance_events(arm_emulator.resource_id("rg-maint", "missing"))
    assert err.value.status == 404


def test_maintenance_runs_a_platform_failover_and_completes(arm_emulator, arm_inspector):
    rid = arm_emulator.add_server("rg-maint", "pg-m", zones=("1", "2"))
    event_id = arm_emulator.schedule_maintenance(
        "rg-maint", "pg-m", start=datetime.now(timezone.utc) + timedelta(minutes=1)
    )
    arm_emulator.clear_requests()
    arm_emulator.run_maintenance("rg-maint", "pg-m", event_id)
    [in_progress] = arm_inspector.maintenance_events(rid)
    assert in_progress.status == "InProgress" and in_progress.covers(datetime.now(timezone.utc))
    view, seen = _poll_states(
        arm_inspector, rid, until=lambda v: v.ha_state == "Healthy" and v.primary_zone == "2", timeout=30
    )
    assert "FailingOver" in seen and view.standby_zone == "1"
    arm_emulator.wait_for("rg-maint", "pg-m", lambda s: s.maintenance[0].status == "Complete", timeout=10)
    assert arm_inspector.maintenance_events(rid) == ()
    [past] = arm_inspector.maintenance_events(rid, upcoming=False)
    assert (
        past.event_id == event_id
        and past.status == "Complete"
        and not past.covers(datetime.now(timezone.utc))
    )
    # The platform did it: no restart request went over the wire.
    assert not [r for r in arm_emulator.requests if r.method != "GET"]


def test_scaling_failover_passes_through_compute_updating_by_failover(arm_emulator, arm_inspector):
    rid = arm_emulator.add_server("rg-scale", "pg-scale", zones=("1", "2"))
    arm_emulator.run_scaling("rg-scale", "pg-scale", sku_name="Standard_D8ds_v5")
    view, seen = _poll_states(
        arm_inspector,
        rid,
        until=lambda v: v.ha_state == "Healthy" and v.state == "Ready" and v.primary_zone == "2",
        timeout=30,
    )
    assert "ComputeUpdatingByFailover" in seen and "FailingOver" not in seen
    assert type(seen[seen.index("ComputeUpdatingByFailover")]) is str
    assert (view.primary_zone, view.standby_zone) == ("2", "1")
    history = arm_emulator.history("rg-scale", "pg-scale")
    assert any(h.ha_state == "ComputeUpdatingByFailover" and h.state == "Updating" for h in history)
    assert arm_emulator.snapshot("rg-scale", "pg-scale")["sku"]["name"] == "Standard_D8ds_v5"


def test_same_zone_converts_to_zone_redundant_without_a_failover(arm_emulator, arm_inspector):
    rid = arm_emulator.add_server("rg-sz", "pg-sz", ha_mode="SameZone", zones=("1", "1"))
    before = arm_inspector.get_server(rid)
    assert (before.ha_mode, before.primary_zone, before.standby_zone) == ("SameZone", "1", "1")
    arm_emulator.convert_to_zone_redundant("rg-sz", "pg-sz", standby_zone="3")
    view, seen = _poll_states(arm_inspector, rid, until=lambda v: v.ha_mode == "ZoneRedundant", timeout=30)
    assert "RecreatingStandby" in seen and "FailingOver" not in seen
    assert (view.ha_state, view.primary_zone, view.standby_zone) == ("Healthy", "1", "3")
    assert {h.primary_zone for h in arm_emulator.history("rg-sz", "pg-sz")} == {"1"}  # the primary stayed
    with pytest.raises(ValueError):
        arm_emulator.convert_to_zone_redundant("rg-sz", "pg-sz", standby_zone="2")


def test_unknown_states_are_kept_as_open_strings(arm_emulator, arm_inspector):
    rid = arm_emulator.add_server("rg", "pg-future")
    arm_emulator.update_server(
        "rg", "pg-future", state="Hibernating", ha_state="SomeFutureHaState", ha_mode="Quorum"
    )
    view = arm_inspector.get_server(rid)
    assert (view.state, view.ha_state, view.ha_mode) == ("Hibernating", "SomeFutureHaState", "Quorum")
    assert all(type(v) is str for v in (view.state, view.ha_state, view.ha_mode))
