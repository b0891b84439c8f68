"""The registered functions, called the way the host calls them, answer the contract's status codes.

Real `func.HttpRequest` / `func.EventGridEvent` objects through `app.get_functions()`; storage is a
real Azurite table (and a closed port for "storage down").
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from failover.adapters.table_store import TableStore
from failover.sources.monitor import MAX_ALERT_BYTES
from local.services import azurite_connection_string, free_port
from tests.builders import T0
from tests.integration import app_harness as app
from tests.payloads import load

EXPECTED_FUNCTIONS = {
    "post_alert",
    "on_resource_event",
    "get_health",
    "list_incidents",
    "get_incident",
    "get_incident_timeline",
    "get_server",
    "get_digest",
    "probe_servers",
    "sweep_outbox",
    "probe_shard",
}


@pytest.fixture
def runtime(azurite, table_name, clock):
    clock.now = T0 + timedelta(minutes=1)
    rt = app.install({"AzureWebJobsStorage": azurite, "FAILOVER_TABLE": table_name}, clock=clock)
    store = rt.store
    yield rt
    store._client.delete_table()
    app.set_runtime(None)


@pytest.fixture
def storage_down(runtime):
    dead = TableStore.from_connection_string(azurite_connection_string(free_port()), "unreachable")
    runtime.store = dead
    runtime.responder.store = dead
    return runtime


def test_the_app_registers_exactly_these_functions():
    assert set(app.functions()) == EXPECTED_FUNCTIONS


def test_every_http_route_requires_a_function_key():
    for function in app.functions().values():
        if function.is_http_function():
            assert function.get_trigger().auth_level.value == "function", function.get_function_name()


def test_recorded_then_duplicate(runtime):
    payload = load("monitor/resource_health_degraded_unplanned.json")
    status, body = app.post_alert(payload)
    assert status == 202
    assert body["status"] == "recorded"
    assert body["incident_id"] == "pg-prod-01~20261125T071602Z"
    assert body["signals"][0]["kind"] == "health_degraded"
    status, body = app.post_alert(payload)
    assert (status, body["status"]) == (202, "duplicate")


@pytest.mark.parametrize(
    "fixture",
    [
        "monitor/foreign_vm_resource_health.json",
        "monitor/metric_cpu_fired.json",
        "monitor/service_health_incident.json",
    ],
)
def test_alerts_about_other_things_are_ignored(runtime, fixture):
    status, body = app.post_alert(load(fixture))
    assert status == 200
    assert body["status"] == "ignored"
    assert body["reason"]
    assert runtime.store.read_state("pg-prod-01") == (None, None)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "object"),
        (json.dumps(load("monitor/legacy_schema_metric.json")).encode(), "common"),
        (json.dumps({"schemaId": "azureMonitorCommonAlertSchema"}).encode(), "data"),
        (b"\xff\xfe\x00", "not JSON"),
    ],
)
def test_malformed_alerts_get_400_with_a_reason(runtime, raw, reason):
    status, body = app.post_alert(None, raw=raw)
    assert status == 400
    assert reason.lower() in body["error"].lower()


def test_oversized_alerts_get_413_before_parsing(runtime):
    big = b"{" + b" " * MAX_ALERT_BYTES + b"}"
    assert app.post_alert(None, raw=big)[0] == 413
    declared = app.post_alert(None, raw=b"{}", headers={"content-length": str(MAX_ALERT_BYTES + 1)})
    assert declared[0] == 413


def test_storage_down_answers_503_so_azure_retries(storage_down):
    status, body = app.post_alert(load("monitor/resource_health_degraded_unplanned.json"))
    assert status == 503
    assert "retry" in body["error"]


def test_event_grid_recorded_duplicate_ignored_and_malformed_return_normally(runtime):
    (event,) = load("event_grid/resource_action_success_restart.json")
    app.deliver(event)
    app.deliver(event)
    (other,) = load("event_grid/resource_action_success_other_resource.json")
    app.deliver(other)
    app.deliver({"id": "x", "eventType": "Microsoft.Resources.ResourceActionSuccess", "data": "garbage"})
    state, _ = runtime.store.read_state("pg-prod-01")
    assert state is not None and state.signals_recorded == 1


def test_event_grid_raises_when_storage_is_down(storage_down):
    (event,) = load("event_grid/resource_action_success_restart.json")
    with pytest.raises(Exception, match="storage"):
        app.deliver(event)


def _renamed(fixture: str, name: str):
    """A fixture payload about a server called `name` instead of pg-prod-01 (ids, rule, everything)."""
    return json.loads(json.dumps(load(fixture)).replace("pg-prod-01", name))


def _no_rows(runtime) -> bool:
    return list(runtime.store._client.list_entities()) == []


THIRD_PARTY = {"azure", "urllib3", "requests", "redis", "psycopg", "msal"}
IMPOSSIBLE_NAMES = ["a", "ab", "pg-prod-", "-pg-prod", "pg_prod", "x" * 64]


@pytest.mark.parametrize("name", IMPOSSIBLE_NAMES)
def test_an_alert_about_an_impossible_server_name_is_400_at_parse_time(runtime, name):
    status, body = app.post_alert(_renamed("monitor/resource_health_degraded_unplanned.json", name))
    assert status == 400
    assert "3-63" in body["error"]
    assert _no_rows(runtime)


@pytest.mark.parametrize("name", IMPOSSIBLE_NAMES)
def test_an_event_about_an_impossible_server_name_is_dropped_not_raised(runtime, name, caplog):
    (event,) = _renamed("event_grid/resource_action_success_restart.json", name)
    with caplog.at_level(logging.WARNING, logger="handlers.eventgrid"):
        app.deliver(event)  # returns: Event Grid must not redeliver it for 24 hours
    assert any("dropped as malformed" in r.getMessage() for r in caplog.records)
    assert _no_rows(runtime)


@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_json_nested_deeper_than_the_decoder_reads_is_400_not_503(runtime, opening):
    closing = b"]" if opening == b"[" else b"}"
    depth = (MAX_ALERT_BYTES - 2) // (len(opening) + 1)
    raw = opening * depth + b"1" + closing * depth
    assert len(raw) < MAX_ALERT_BYTES
    status, body = app.post_alert(None, raw=raw)
    assert status == 400
    assert "nests JSON deeper" in body["error"]
    assert _no_rows(runtime)


def test_a_storm_logs_the_apps_info_lines_and_no_third_party_chatter(runtime, caplog):
    caplog.set_level(logging.INFO)  # what the worker and the local runner let through
    alert = load("monitor/resource_health_degraded_unplanned.json")
    (event,) = load("event_grid/resource_action_success_restart.json")
    for n in range(25):
        alert["data"]["essentials"]["alertId"] = (
            f"/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/{n}"
        )
        assert app.post_alert(alert)[0] == 202
        app.deliver({**event, "id": f"storm-{n}"})
    chatter = [
        r for r in caplog.records if r.name.split(".")[0] in THIRD_PARTY and r.levelno < logging.WARNING
    ]
    assert chatter == [], (
        f"{len(chatter)} third-party lines, e.g. {chatter[0].name}: {chatter[0].getMessage()}"
    )
    own = [r for r in caplog.records if r.name.startswith("handlers.") and r.levelno == logging.INFO]
    assert len(own) >= 25  # one line per Event Grid signal recorded
