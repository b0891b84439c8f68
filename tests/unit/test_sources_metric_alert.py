"""Metric alerts: is_db_alive and replication lag, Fired/Resolved identity, tolerant numbers."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from failover.errors import InvalidPayloadError
from failover.model import Cause, SignalKind
from failover.sources.monitor import parse_alert

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "monitor"
RECEIVED = datetime(2026, 11, 25, 7, 30, tzinfo=timezone.utc)
FIRED = "metric_is_db_alive_fired.json"
RESOLVED = "metric_is_db_alive_resolved.json"
LAG = "metric_replication_lag_fired.json"
ALERT_ID = (
    "/subscriptions/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e/providers/Microsoft.AlertsManagement"
    "/alerts/0f9e8d7c-6b5a-4f3e-9d2c-1b0a9f8e7d6c"
)


def load(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((FIXTURES / name).read_text(encoding="utf-8")))


def essentials(body: dict[str, Any]) -> Any:
    return body["data"]["essentials"]


def criterion(body: dict[str, Any]) -> Any:
    return body["data"]["alertContext"]["condition"]["allOf"][0]


def parse(body: dict[str, Any]):
    return parse_alert(body, received_at=RECEIVED)


def test_fired_is_db_down_at_fired_time():
    (signal,) = parse(load(FIRED)).signals
    assert signal.kind is SignalKind.DB_DOWN
    assert (signal.cause, signal.cause_confidence) == (Cause.UNKNOWN, 0)
    assert signal.signal_id == f"monitor:metric:{ALERT_ID}:fired"
    assert signal.observed_at == datetime(2026, 11, 25, 7, 16, 45, 661234, tzinfo=timezone.utc)
    assert signal.details["metric"] == "is_db_alive"
    assert signal.details["metric_value"] == 0
    assert signal.details["threshold"] == 1  # sent as the string "1"
    assert signal.details["operator"] == "LessThan"


def test_resolved_gives_the_outage_and_the_recovery():
    down, up = parse(load(RESOLVED)).signals
    assert (down.kind, down.signal_id) == (SignalKind.DB_DOWN, f"monitor:metric:{ALERT_ID}:fired")
    assert down.observed_at == datetime(2026, 11, 25, 7, 16, 45, 661234, tzinfo=timezone.utc)
    assert (up.kind, up.signal_id) == (SignalKind.DB_UP, f"monitor:metric:{ALERT_ID}:resolved")
    assert up.observed_at == datetime(2026, 11, 25, 7, 19, 10, 224631, tzinfo=timezone.utc)
    assert "metric_value" not in down.details  # the Resolved payload's value is not the outage's
    assert up.details["metric_value"] == 1


@pytest.mark.parametrize(
    "metric",
    [
        "physical_replication_delay_in_seconds",
        "physical_replication_delay_in_bytes",
        "logical_replication_delay_in_bytes",
    ],
)
def test_replication_lag_metrics(metric):
    body = load(LAG)
    criterion(body)["metricName"] = metric
    (high,) = parse(body).signals
    assert high.kind is SignalKind.REPLICATION_LAG_HIGH
    essentials(body)["monitorCondition"] = "Resolved"
    essentials(body)["resolvedDateTime"] = "2026-11-25T07:24:05.0000000Z"
    (normal,) = parse(body).signals
    assert normal.kind is SignalKind.REPLICATION_LAG_NORMAL
    assert normal.signal_id.endswith(":resolved")
    assert normal.observed_at == datetime(2026, 11, 25, 7, 24, 5, tzinfo=timezone.utc)


def test_metric_name_and_condition_letter_case():
    body = load(FIRED)
    criterion(body)["metricName"] = "IS_DB_ALIVE"
    essentials(body)["monitorCondition"] = "fired"
    assert parse(body).signals[0].kind is SignalKind.DB_DOWN


def test_numbers_sent_as_strings_or_numbers():
    body = load(LAG)
    criterion(body)["threshold"] = 1073741824
    criterion(body)["metricValue"] = "2147483648"
    (signal,) = parse(body).signals
    assert signal.details["threshold"] == 1073741824
    assert signal.details["metric_value"] == 2147483648
    criterion(body)["threshold"] = "NaN"
    criterion(body)["metricValue"] = "lots"
    (signal,) = parse(body).signals
    assert "metric_value" not in signal.details


def test_watched_metric_found_among_several_criteria():
    body = load(FIRED)
    cpu = dict(criterion(body), metricName="cpu_percent")
    body["data"]["alertContext"]["condition"]["allOf"] = ["junk", cpu, criterion(body)]
    assert parse(body).signals[0].kind is SignalKind.DB_DOWN


@pytest.mark.parametrize(
    "condition", [None, {}, {"allOf": None}, {"allOf": "is_db_alive"}, {"allOf": [None, 3]}]
)
def test_missing_criteria_are_ignored(condition):
    body = load(FIRED)
    body["data"]["alertContext"]["condition"] = condition
    result = parse(body)
    assert result.ignored
    assert "no metric" in (result.ignored_reason or "")


def test_other_metric_is_ignored():
    result = parse(load("metric_cpu_fired.json"))
    assert result.ignored
    assert "cpu_percent" in (result.ignored_reason or "")


def test_log_alert_under_platform_is_ignored():
    body = load(FIRED)
    essentials(body)["signalType"] = "Log"
    assert parse(body).ignored


def test_foreign_target_is_ignored():
    body = load(FIRED)
    essentials(body)["alertTargetIDs"] = [
        "/subscriptions/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e/resourcegroups/rg/providers/microsoft.storage/storageaccounts/st"
    ]
    result = parse(body)
    assert result.ignored
    assert "microsoft.storage/storageaccounts" in (result.ignored_reason or "")


def test_upper_case_target():
    body = load(FIRED)
    essentials(body)["alertTargetIDs"] = [essentials(body)["alertTargetIDs"][0].upper()]
    signal = parse(body).signals[0]
    assert signal.server == "pg-prod-01"
    assert signal.resource_id == signal.resource_id.lower()


@pytest.mark.parametrize("condition", [None, "Activated", "", 1])
def test_monitor_condition_must_be_fired_or_resolved(condition):
    body = load(FIRED)
    essentials(body)["monitorCondition"] = condition
    with pytest.raises(InvalidPayloadError, match="monitorCondition"):
        parse(body)


def test_fired_date_time_is_required():
    body = load(FIRED)
    del essentials(body)["firedDateTime"]
    with pytest.raises(InvalidPayloadError, match="firedDateTime"):
        parse(body)


def test_resolved_time_falls_back_to_window_end_then_fails():
    body = load(RESOLVED)
    del essentials(body)["resolvedDateTime"]
    _, up = parse(body).signals
    assert up.observed_at == datetime(2026, 11, 25, 7, 19, 9, 512000, tzinfo=timezone.utc)
    del body["data"]["alertContext"]["condition"]["windowEndTime"]
    with pytest.raises(InvalidPayloadError, match="resolvedDateTime"):
        parse(body)
