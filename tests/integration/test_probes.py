"""Issue 4 acceptance: probes see every failover and measure what clients saw.

Real PostgreSQL primary and synchronous standby, the management API emulator driven by them, the
real `azure-mgmt-postgresqlflexibleservers` client, real Azurite; no alert is needed for an
unplanned failover.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from failover.model import Cause, IncidentStatus
from local import pgpair
from tests.integration import app_harness as app
from tests.integration.probe_harness import WritingClient, stamped

pytestmark = pytest.mark.integration

SUBSCRIPTION = "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e"


@pytest.fixture
def emulator(make_arm_emulator):
    emulator = make_arm_emulator(subscription_id=SUBSCRIPTION)
    yield emulator
    emulator.stop(timeout=30)


def _runtime(azurite, table_name, emulator, servers, pg_password, *, window=30, **extra):
    env = {
        "AzureWebJobsStorage": azurite,
        "FAILOVER_TABLE": table_name,
        "MONITORED_SERVERS": ";".join(rid for rid, _ in servers),
        "ARM_ENDPOINT": emulator.base_url,
        "PG_AUTH": "password",
        "PG_PASSWORD": pg_password,
        "PG_CONNINFO_OVERRIDES": json.dumps({name: conninfo for (rid, name), conninfo in servers.items()}),
        "PG_CREATE_HEARTBEAT_TABLE": "true",
        "PROBE_WINDOW_SECONDS": str(window),
        "PROBE_ARM_INTERVAL_SECONDS": "0.5",
        "INCIDENT_QUIET_SECONDS": "3",
        **extra,
    }
    return app.install(env)


def _probe_in_background(runtime, window):
    result: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("report", runtime.prober.run_once(window=timedelta(seconds=window))),
        daemon=True,
    )
    thread.start()
    return thread, result


def _only_incident(runtime, server):
    page = runtime.store.incidents_of_server(
        server, since=None, until=None, status=None, limit=10, after=None
    )
    assert len(page.incidents) == 1, [i.incident_id for i in page.incidents]
    return page.incidents[0]


def test_forced_failover_measured_like_a_client(azurite, table_name, emulator, fresh_pg_pair, pg_password):
    rid = emulator.add_server("rg-data", "pg-prod-01", pair=fresh_pg_pair)
    runtime = _runtime(
        azurite, table_name, emulator, {(rid, "pg-prod-01"): fresh_pg_pair.conninfo()}, pg_password, window=25
    )
    client = WritingClient(fresh_pg_pair.conninfo(include_password=True)).start()
    try:
        thread, result = _probe_in_background(runtime, 25)
        time.sleep(3)  # the probe has its baseline: zones and a good write
        status, _ = app.post_alert(
            stamped("monitor/activity_log_restart_forced_started.json", server="pg-prod-01")
        )
        assert status == 202
        runtime.inspector.start_failover(rid, "ForcedFailover", wait=True)
        thread.join(timeout=60)
    finally:
        client.stop()
    report = result["report"]
    assert report.servers["pg-prod-01"].arm == "ok"
    incident = _only_incident(runtime, "pg-prod-01")
    assert incident.cause is Cause.FORCED
    assert (incident.primary_zone_before, incident.primary_zone_after) == ("1", "2")
    assert incident.standby_zone_after == "1"
    assert incident.primary_restored_at is not None
    client_gap, _, _ = client.gap_within()
    # Locally a forced failover interrupts writes for 0.15-0.3 s: more than two client intervals.
    assert client_gap > 2 * client.interval, "the failover should have interrupted writes"
    timeline = runtime.store.timeline(incident)
    assert incident.write_downtime_seconds is not None, (
        report.servers,
        [(e.kind, e.summary) for e in timeline],
    )
    assert abs(incident.write_downtime_seconds - client_gap) <= 1.0, (
        incident.write_downtime_seconds,
        client_gap,
    )
    app.set_runtime(None)


def test_unplanned_failover_seen_by_probes_alone(azurite, table_name, emulator, fresh_pg_pair, pg_password):
    rid = emulator.add_server("rg-data", "pg-prod-01", pair=fresh_pg_pair)
    runtime = _runtime(
        azurite, table_name, emulator, {(rid, "pg-prod-01"): fresh_pg_pair.conninfo()}, pg_password, window=20
    )
    thread, _ = _probe_in_background(runtime, 20)
    time.sleep(3)
    pgpair.kill_primary(fresh_pg_pair)  # no alert, no Event Grid event: the platform just loses it
    thread.join(timeout=60)
    runtime.responder.settle_server("pg-prod-01")
    incident = _only_incident(runtime, "pg-prod-01")
    assert incident.cause is Cause.UNPLANNED
    assert (incident.primary_zone_before, incident.primary_zone_after) == ("1", "2")
    assert incident.write_downtime_seconds is not None and incident.write_downtime_seconds > 0
    assert incident.status in (IncidentStatus.OPEN, IncidentStatus.RESOLVED)
    app.set_runtime(None)


@pytest.mark.parametrize("status", [403, 404, 429, 500])
def test_probe_survives_management_api_errors(azurite, table_name, emulator, pg_pair, pg_password, status):
    broken = emulator.add_server("rg-data", "pg-broken-01")
    healthy = emulator.add_server("rg-data", "pg-prod-01", pair=pg_pair)
    refused = "host=127.0.0.1 port=1 dbname=app user=app connect_timeout=1 sslmode=disable"
    servers = {(broken, "pg-broken-01"): refused, (healthy, "pg-prod-01"): pg_pair.conninfo()}
    runtime = _runtime(azurite, table_name, emulator, servers, pg_password, window=2)
    # The identity may not list the subscription (403): the probe reads each server on its own,
    # and one server's failing read must not stop the others.
    emulator.inject(r"/providers/Microsoft\.DBforPostgreSQL/flexibleServers$", 403, count=1000)
    emulator.inject(r"flexibleServers/pg-broken-01$", status, count=1000, retry_after=None)
    report = runtime.prober.run_once(window=timedelta(seconds=2))
    broken_health = report.servers["pg-broken-01"]
    assert broken_health.arm in ("error", "unavailable")
    assert str(status) in (broken_health.arm_error or "") or broken_health.arm_error
    assert broken_health.db == "unavailable"
    assert report.servers["pg-prod-01"].arm == "ok"
    assert report.servers["pg-prod-01"].db == "ok"
    request = app.func.HttpRequest("GET", "http://localhost/api/health", params={}, route_params={}, body=b"")
    response = app.call("get_health", req=request)
    body = json.loads(response.get_body())
    assert response.status_code == 200
    rows = {s["server"]: s for s in body["servers"]}
    assert rows["pg-broken-01"]["arm"] != "ok" and rows["pg-broken-01"]["db"] == "unavailable"
    assert rows["pg-prod-01"]["arm"] == "ok"
    assert body["dependencies"]["probes"]["failing"] == ["pg-broken-01"]
    assert pg_password not in response.get_body().decode()
    app.set_runtime(None)
