"""Activity log alerts on the flexible server restart action: status and mode tables, request body."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from failover.model import Cause, SignalKind
from failover.sources.monitor import parse_alert

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "monitor"
RECEIVED = datetime(2026, 11, 25, 7, 30, tzinfo=timezone.utc)
STARTED = "activity_log_restart_started.json"


def load(name: str = STARTED) -> dict[str, Any]:
    return copy.deepcopy(json.loads((FIXTURES / name).read_text(encoding="utf-8")))


def ctx(body: dict[str, Any]) -> Any:
    return body["data"]["alertContext"]


def parse(body: dict[str, Any]):
    return parse_alert(body, received_at=RECEIVED)


def only_signal(body: dict[str, Any]):
    result = parse(body)
    assert not result.ignored, result.ignored_reason
    (signal,) = result.signals
    return signal


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("Started", SignalKind.FAILOVER_STARTED),
        ("Accepted", SignalKind.FAILOVER_STARTED),
        ("Succeeded", SignalKind.FAILOVER_COMPLETED),
        ("Failed", SignalKind.FAILOVER_FAILED),
        ("Canceled", SignalKind.FAILOVER_FAILED),
        ("Cancelled", SignalKind.FAILOVER_FAILED),
        ("succeeded", SignalKind.FAILOVER_COMPLETED),
        ({"value": "Succeeded", "localizedValue": "Succeeded"}, SignalKind.FAILOVER_COMPLETED),
    ],
)
def test_status_table(status, kind):
    body = load()
    ctx(body)["status"] = status
    assert only_signal(body).kind is kind


@pytest.mark.parametrize("status", ["In Progress", "Active", None, "", 7])
def test_other_statuses_are_ignored(status):
    body = load()
    ctx(body)["status"] = status
    result = parse(body)
    assert result.ignored
    assert "pg-prod-01" in (result.ignored_reason or "")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("PlannedFailover", (Cause.PLANNED, 3)),
        ("PlannedSwitchover", (Cause.PLANNED, 3)),
        ("ForcedFailover", (Cause.FORCED, 3)),
        ("ForcedSwitchover", (Cause.FORCED, 3)),
        ("forcedfailover", (Cause.FORCED, 3)),
        ("SomeFutureMode", (Cause.PLANNED, 1)),
    ],
)
def test_failover_mode_table(mode, expected):
    body = load()
    ctx(body)["properties"]["requestbody"] = json.dumps({"restartWithFailover": True, "failoverMode": mode})
    signal = only_signal(body)
    assert (signal.kind, signal.cause, signal.cause_confidence) == (SignalKind.FAILOVER_STARTED, *expected)


@pytest.mark.parametrize(
    "requestbody",
    [
        None,
        "",
        "not json",
        "[1, 2]",
        '{"restartWithFailover": true}',
        "{" * 5000,
        "[" * 30000 + "]" * 30000,
        '{"properties": {}}',
    ],
)
def test_mode_unknown_is_a_planned_user_action_with_low_confidence(requestbody):
    body = load()
    ctx(body)["properties"]["requestbody"] = requestbody
    signal = only_signal(body)
    assert (signal.kind, signal.cause, signal.cause_confidence) == (
        SignalKind.FAILOVER_STARTED,
        Cause.PLANNED,
        1,
    )
    assert "failover_mode" not in signal.details


def test_request_body_absent():
    body = load()
    del ctx(body)["properties"]["requestbody"]
    assert only_signal(body).summary == "Activity Log: restart Started (failover mode not in the event)"


@pytest.mark.parametrize(
    "requestbody",
    [
        '{"restartWithFailover": false}',
        '{"restartWithFailover": "false"}',
        {"restartWithFailover": False, "failoverMode": "PlannedFailover"},
        '{"properties": {"restartWithFailover": false}}',
    ],
)
def test_plain_restart_is_context(requestbody):
    body = load()
    ctx(body)["properties"]["requestbody"] = requestbody
    signal = only_signal(body)
    assert (signal.kind, signal.cause, signal.cause_confidence) == (
        SignalKind.SERVER_RESTARTED,
        Cause.UNKNOWN,
        0,
    )
    assert signal.details["restart_with_failover"] is False
    assert "without failover" in signal.summary


def test_request_body_key_letter_case_and_wrapping():
    body = load()
    props = ctx(body)["properties"]
    props["requestBody"] = props.pop("requestbody")
    assert only_signal(body).cause_confidence == 3
    props["requestBody"] = json.dumps(
        {"properties": {"restartWithFailover": True, "failoverMode": "ForcedSwitchover"}}
    )
    assert only_signal(body).cause is Cause.FORCED


def test_upper_case_operation_and_resource_id():
    signal = only_signal(load("activity_log_restart_failed.json"))
    assert signal.server == "pg-prod-01"
    assert signal.resource_id.endswith(
        "/resourcegroups/rg-data/providers/microsoft.dbforpostgresql/flexibleservers/pg-prod-01"
    )
    assert signal.details["sub_status"] == "Conflict"


@pytest.mark.parametrize(
    "operation",
    [
        "Microsoft.DBforPostgreSQL/flexibleServers/write",
        "Microsoft.DBforPostgreSQL/flexibleServers/start/action",
        "Microsoft.DBforPostgreSQL/flexibleServers/stop/action",
        "Microsoft.DBforPostgreSQL/servers/restart/action",
        None,
    ],
)
def test_other_operations_on_the_server_are_ignored(operation):
    body = load()
    ctx(body)["operationName"] = operation
    result = parse(body)
    assert result.ignored


def test_resource_from_authorization_scope_when_targets_are_missing():
    body = load()
    body["data"]["essentials"]["alertTargetIDs"] = None
    ctx(body)["properties"].pop("entity")
    assert only_signal(body).server == "pg-prod-01"


def test_foreign_resource_restart_is_ignored():
    body = load()
    vm = (
        "/subscriptions/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e/resourceGroups/rg-data"
        "/providers/Microsoft.Compute/virtualMachines/vm"
    )
    body["data"]["essentials"]["alertTargetIDs"] = [vm.lower()]
    ctx(body)["authorization"]["scope"] = vm
    ctx(body)["properties"]["entity"] = vm
    ctx(body)["operationName"] = "Microsoft.Compute/virtualMachines/restart/action"
    result = parse(body)
    assert result.ignored
    assert "microsoft.compute/virtualmachines" in (result.ignored_reason or "")


def test_signal_id_fallback_is_operation_and_status():
    body = load()
    del ctx(body)["eventDataId"]
    assert only_signal(body).signal_id == "monitor:al:c3a9e7f1-2b4d-4e6f-8a0b-1c2d3e4f5a6b:started"
    del ctx(body)["operationId"]
    assert only_signal(body).signal_id == "monitor:al:" + body["data"]["essentials"]["alertId"]


def test_started_and_succeeded_of_one_operation_have_distinct_ids():
    started = only_signal(load())
    succeeded = only_signal(load("activity_log_restart_succeeded.json"))
    assert started.details["operation_id"] == succeeded.details["operation_id"]
    assert started.signal_id != succeeded.signal_id


def test_caller_claims_and_ips_stay_out():
    dumped = json.dumps(only_signal(load()).to_dict())
    for secret in ("ops@contoso.com", "203.0.113.7", "claims", "caller", "22223333"):
        assert secret not in dumped
