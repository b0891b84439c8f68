"""Resource Health alerts: status and cause tables, title hints, field-name variants, identity."""

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
UNPLANNED = "resource_health_degraded_unplanned.json"
PG_ID = (
    "/subscriptions/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e/resourcegroups/rg-data"
    "/providers/microsoft.dbforpostgresql/flexibleservers/pg-prod-01"
)


def load(name: str = UNPLANNED) -> dict[str, Any]:
    return copy.deepcopy(json.loads((FIXTURES / name).read_text(encoding="utf-8")))


def with_properties(**props: object) -> dict[str, Any]:
    body = load()
    body["data"]["alertContext"]["properties"] = props
    return body


def only_signal(body: dict[str, Any]):
    result = parse_alert(body, received_at=RECEIVED)
    assert not result.ignored, result.ignored_reason
    (signal,) = result.signals
    return signal


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("Available", SignalKind.HEALTH_AVAILABLE),
        ("Degraded", SignalKind.HEALTH_DEGRADED),
        ("Unavailable", SignalKind.HEALTH_UNAVAILABLE),
        ("Unknown", SignalKind.HEALTH_UNKNOWN),
        ("degraded", SignalKind.HEALTH_DEGRADED),
        ("UNAVAILABLE", SignalKind.HEALTH_UNAVAILABLE),
        (None, SignalKind.HEALTH_UNKNOWN),
        ("", SignalKind.HEALTH_UNKNOWN),
        ("SomethingNew", SignalKind.HEALTH_UNKNOWN),
        (3, SignalKind.HEALTH_UNKNOWN),
    ],
)
def test_health_status_table(status, kind):
    signal = only_signal(with_properties(currentHealthStatus=status, cause="PlatformInitiated"))
    assert signal.kind is kind


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        ("PlatformInitiated", (Cause.UNPLANNED, 2)),
        ("UserInitiated", (Cause.PLANNED, 1)),
        ("platforminitiated", (Cause.UNPLANNED, 2)),
        ("Platform Initiated", (Cause.UNPLANNED, 2)),
    ],
)
def test_cause_table(cause, expected):
    signal = only_signal(with_properties(currentHealthStatus="Degraded", cause=cause, title="Degraded"))
    assert (signal.cause, signal.cause_confidence) == expected


@pytest.mark.parametrize(
    ("title", "details", "expected"),
    [
        ("Unplanned Failover Initiated", None, (Cause.UNPLANNED, 1)),
        ("Planned Failover Initiated", None, (Cause.PLANNED, 1)),
        ("Forced Failover Initiated", None, (Cause.FORCED, 1)),
        ("Upgrade Failover Initiated", None, (Cause.MAINTENANCE, 1)),
        ("Degraded", "The server is under planned maintenance", (Cause.MAINTENANCE, 1)),
        ("Degraded", "An unplanned failover was triggered", (Cause.UNPLANNED, 1)),
        ("HA is in a degraded state", None, (Cause.UNKNOWN, 0)),
        (None, None, (Cause.UNKNOWN, 0)),
    ],
)
def test_null_cause_takes_a_hint_from_title_or_details(title, details, expected):
    signal = only_signal(
        with_properties(currentHealthStatus="Degraded", cause=None, title=title, details=details)
    )
    assert (signal.cause, signal.cause_confidence) == expected


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"cause": "PlatformInitiated", "title": "Upgrade Failover Initiated"}, (Cause.MAINTENANCE, 2)),
        (
            {"cause": "PlatformInitiated", "title": "Degraded", "healthEventCategory": "Planned"},
            (Cause.MAINTENANCE, 2),
        ),
        (
            {"cause": "PlatformInitiated", "title": "Degraded", "healthEventCategory": "Unplanned"},
            (Cause.UNPLANNED, 2),
        ),
        ({"cause": "UserInitiated", "title": "Forced Failover Initiated"}, (Cause.FORCED, 1)),
        # A title that contradicts the stated cause does not override it.
        ({"cause": "PlatformInitiated", "title": "Planned Failover Initiated"}, (Cause.UNPLANNED, 2)),
        ({"cause": "UserInitiated", "title": "Unplanned Failover Initiated"}, (Cause.PLANNED, 1)),
    ],
)
def test_stated_cause_refined_only_by_agreeing_hints(props, expected):
    signal = only_signal(with_properties(currentHealthStatus="Degraded", **props))
    assert (signal.cause, signal.cause_confidence) == expected


def test_activity_log_record_field_names():
    signal = only_signal(
        with_properties(
            title="Unplanned Failover Initiated",
            details="The server failed over to its standby",
            healthStatus="Unavailable",
            healthEventType="Downtime",
            healthEventCause="PlatformInitiated",
            healthEventCategory="Unplanned",
        )
    )
    assert (signal.kind, signal.cause, signal.cause_confidence) == (
        SignalKind.HEALTH_UNAVAILABLE,
        Cause.UNPLANNED,
        2,
    )
    assert signal.details["health_cause"] == "PlatformInitiated"
    assert signal.details["health_event_type"] == "Downtime"


def test_details_hold_the_health_transition():
    signal = only_signal(load())
    assert signal.details == {
        "health_status": "Degraded",
        "previous_health_status": "Available",
        "health_cause": "PlatformInitiated",
        "title": "Unplanned Failover Initiated",
        "health_event_type": "Downtime",
        "event_status": "Active",
        "correlation_id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "alert_rule": "pg-prod-01-resource-health",
    }


def test_observed_at_is_event_timestamp_not_fired_or_received():
    signal = only_signal(load())
    assert signal.observed_at == datetime(2026, 11, 25, 7, 16, 2, 345678, tzinfo=timezone.utc)
    assert signal.received_at == RECEIVED


def test_observed_at_falls_back_to_fired_date_time():
    body = load()
    del body["data"]["alertContext"]["eventTimestamp"]
    signal = only_signal(body)
    assert signal.observed_at == datetime(2026, 11, 25, 7, 16, 9, 447182, tzinfo=timezone.utc)


def test_signal_id_fallbacks():
    body = load()
    del body["data"]["alertContext"]["eventDataId"]
    assert only_signal(body).signal_id == (
        "monitor:rh:a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d:2026-11-25T07:16:02.345678+00:00"
    )
    del body["data"]["alertContext"]["correlationId"]
    assert only_signal(body).signal_id == "monitor:rh:" + body["data"]["essentials"]["alertId"]


def test_upper_case_target_and_resource_id_fallback():
    body = load()
    body["data"]["essentials"]["alertTargetIDs"] = [PG_ID.upper()]
    assert only_signal(body).resource_id == PG_ID
    body["data"]["essentials"]["alertTargetIDs"] = None
    body["data"]["alertContext"]["resourceId"] = PG_ID.upper()
    assert only_signal(body).server == "pg-prod-01"


def test_no_target_at_all_is_ignored():
    body = load()
    body["data"]["essentials"]["alertTargetIDs"] = []
    result = parse_alert(body, received_at=RECEIVED)
    assert result.ignored
    assert "no resource" in (result.ignored_reason or "")


def test_long_or_dirty_titles_are_clipped_and_cleaned():
    signal = only_signal(with_properties(currentHealthStatus="Degraded", title="Bad\x00\ntitle " + "x" * 500))
    title = signal.details["title"]
    assert "\x00" not in title and "\n" not in title
    assert len(title) <= 200
    assert "\n" not in signal.summary


def test_numbers_for_strings_are_tolerated():
    body = load()
    ctx = body["data"]["alertContext"]
    ctx["level"], ctx["channels"], ctx["status"] = 3, 1, 2
    assert only_signal(body).details["event_status"] == "2"
