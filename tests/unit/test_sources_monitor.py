"""The common alert schema envelope: validation (400 reasons) and dispatch to the families."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from failover.errors import InvalidPayloadError
from failover.model import SignalKind
from failover.sources.monitor import MAX_ALERT_BYTES, parse_alert

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "monitor"
RECEIVED = datetime(2026, 11, 25, 7, 30, tzinfo=timezone.utc)
SIGNAL_FIXTURES = [
    "resource_health_degraded_unplanned.json",
    "activity_log_restart_started.json",
    "metric_is_db_alive_fired.json",
]


def load(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return body


def edited(name: str, path: tuple[str, ...], value: object = ..., *, drop: bool = False) -> dict[str, Any]:
    body = copy.deepcopy(load(name))
    node = body
    for key in path[:-1]:
        node = node[key]
    if drop:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


def parse(body: object):
    return parse_alert(body, received_at=RECEIVED)


def invalid(body: object) -> str:
    with pytest.raises(InvalidPayloadError) as caught:
        parse(body)
    return str(caught.value)


def test_max_alert_bytes_is_256_kib():
    assert MAX_ALERT_BYTES == 262144


@pytest.mark.parametrize("body", [None, [], ["x"], "payload", 3, 2.5, True])
def test_not_an_object(body):
    assert "JSON object" in invalid(body)


@pytest.mark.parametrize("name", SIGNAL_FIXTURES)
@pytest.mark.parametrize(
    ("path", "words"),
    [
        (("schemaId",), "schemaId is missing"),
        (("data",), "data must be a JSON object"),
        (("data", "essentials"), "data.essentials must be a JSON object"),
        (("data", "essentials", "alertId"), "alertId is required"),
    ],
)
def test_required_field_removed(name, path, words):
    assert words in invalid(edited(name, path, drop=True))


@pytest.mark.parametrize("name", SIGNAL_FIXTURES)
@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (("schemaId",), 7, "is not azureMonitorCommonAlertSchema"),
        (("schemaId",), "Microsoft.Insights/activityLogs", "common alert schema"),
        (("data",), [], "data must be a JSON object"),
        (("data",), "x", "data must be a JSON object"),
        (("data", "essentials"), ["x"], "data.essentials must be a JSON object"),
        (("data", "alertContext"), "text", "alertContext must be a JSON object"),
        (("data", "essentials", "alertId"), 12345, "alertId must be a string"),
        (("data", "essentials", "alertId"), "bad\nid", "not a valid identifier"),
        (("data", "essentials", "alertTargetIDs"), "/subscriptions/x", "list of strings"),
        (("data", "essentials", "alertTargetIDs"), [1], "list of strings"),
        (("data", "essentials", "firedDateTime"), "yesterday", "firedDateTime is not an ISO 8601"),
        (("data", "essentials", "firedDateTime"), "2026-11-25T07:16:45", "firedDateTime is not an ISO 8601"),
        (("data", "essentials", "firedDateTime"), 1795590958, "firedDateTime is not an ISO 8601"),
    ],
)
def test_wrong_type(name, path, value, words):
    assert words in invalid(edited(name, path, value))


@pytest.mark.parametrize(
    "name", ["resource_health_degraded_unplanned.json", "activity_log_restart_started.json"]
)
@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (("data", "alertContext", "eventTimestamp"), "soon", "eventTimestamp is not an ISO 8601"),
        (("data", "alertContext", "eventDataId"), 42, "eventDataId must be a string"),
    ],
)
def test_wrong_type_in_context(name, path, value, words):
    assert words in invalid(edited(name, path, value))


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("resource_health_degraded_unplanned.json", "correlationId"),
        ("activity_log_restart_started.json", "operationId"),
    ],
)
def test_non_string_fallback_identity_is_malformed(name, key):
    assert f"{key} must be a string" in invalid(edited(name, ("data", "alertContext", key), {"a": 1}))


def test_legacy_schema_is_refused_with_guidance():
    reason = invalid(load("legacy_schema_metric.json"))
    assert "AzureMonitorMetricAlert" in reason
    assert "Use common alert schema" in reason


def test_legacy_log_alert_without_schema_id_is_refused():
    assert "schemaId is missing" in invalid({"SubscriptionId": "x", "AlertRuleName": "y", "SearchQuery": "z"})


def test_schema_id_letter_case_is_tolerated():
    body = edited("metric_is_db_alive_fired.json", ("schemaId",), "AzureMonitorCommonAlertSchema")
    assert parse(body).signals[0].kind is SignalKind.DB_DOWN


def test_null_alert_context_is_tolerated():
    body = edited("resource_health_degraded_unplanned.json", ("data", "alertContext"), None)
    result = parse(body)
    assert result.signals[0].kind is SignalKind.HEALTH_UNKNOWN
    assert result.signals[0].observed_at == datetime(2026, 11, 25, 7, 16, 9, 447182, tzinfo=timezone.utc)


def test_unknown_extra_fields_are_ignored():
    body = load("resource_health_degraded_unplanned.json")
    body["extra"] = {"x": 1}
    body["data"]["essentials"]["investigationLink"] = "https://portal.azure.com/#x"
    body["data"]["alertContext"]["properties"]["newField"] = [1, 2]
    assert parse(body).signals[0].kind is SignalKind.HEALTH_DEGRADED


@pytest.mark.parametrize(
    ("service", "signal_type"),
    [("Log Alerts V2", "Log"), ("CostAlerts", None), ("SmartDetector", "Log"), ("Prometheus", "Metric ")],
)
def test_monitoring_services_we_do_not_watch_are_ignored(service, signal_type):
    body = load("metric_cpu_fired.json")
    body["data"]["essentials"]["monitoringService"] = service
    body["data"]["essentials"]["signalType"] = signal_type
    body["data"]["alertContext"] = {"AlertCategory": "budgets"}
    result = parse(body)
    assert result.ignored


def test_dispatch_falls_back_to_event_source():
    body = edited(
        "resource_health_degraded_unplanned.json", ("data", "essentials", "monitoringService"), None
    )
    assert parse(body).signals[0].kind is SignalKind.HEALTH_DEGRADED


def test_dispatch_falls_back_to_signal_type():
    body = edited("metric_is_db_alive_fired.json", ("data", "essentials", "monitoringService"), drop=True)
    assert parse(body).signals[0].kind is SignalKind.DB_DOWN


def test_monitoring_service_spelling_variants():
    body = edited(
        "resource_health_degraded_unplanned.json",
        ("data", "essentials", "monitoringService"),
        "ResourceHealth",
    )
    assert parse(body).signals[0].kind is SignalKind.HEALTH_DEGRADED
    body = edited(
        "activity_log_restart_started.json",
        ("data", "essentials", "monitoringService"),
        "activity log - administrative",
    )
    assert parse(body).signals[0].kind is SignalKind.FAILOVER_STARTED


def test_naive_received_at_is_a_programming_error():
    with pytest.raises(ValueError):
        parse_alert(load("metric_is_db_alive_fired.json"), received_at=datetime(2026, 11, 25, 7, 30))  # noqa: DTZ001
