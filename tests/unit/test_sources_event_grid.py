"""Event Grid resource events, in the Event Grid schema and as CloudEvents 1.0."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from failover.errors import InvalidPayloadError
from failover.model import Cause, SignalKind, Source
from failover.sources.event_grid import parse_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "event_grid"
RECEIVED = datetime(2026, 11, 25, 7, 30, tzinfo=timezone.utc)
SUCCESS = "resource_action_success_restart.json"


def load(name: str = SUCCESS) -> dict[str, Any]:
    (event,) = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return copy.deepcopy(event)


def parse(event: object):
    return parse_event(event, received_at=RECEIVED)  # type: ignore[arg-type]


def as_cloud_event(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": event["eventType"],
        "source": event["topic"],
        "subject": event["subject"],
        "id": event["id"],
        "time": event["eventTime"],
        "datacontenttype": "application/json",
        "data": event["data"],
    }


def test_restart_accepted_is_failover_started_not_completed():
    (signal,) = parse(load()).signals
    assert signal.kind is SignalKind.FAILOVER_STARTED
    assert (signal.cause, signal.cause_confidence) == (Cause.PLANNED, 1)
    assert signal.source is Source.EVENT_GRID
    assert signal.signal_id == "eventgrid:b0e1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"
    assert "not confirmed" in signal.summary


@pytest.mark.parametrize(
    "name", [SUCCESS, "resource_action_failure_restart.json", "resource_write_success_flexible_server.json"]
)
def test_cloud_events_give_the_same_signal(name):
    event = load(name)
    assert parse(as_cloud_event(event)) == parse(event)


def test_cancel_is_failover_failed():
    event = load()
    event["eventType"] = "Microsoft.Resources.ResourceActionCancel"
    assert parse(event).signals[0].kind is SignalKind.FAILOVER_FAILED


def test_event_type_letter_case_is_tolerated():
    event = load()
    event["eventType"] = "microsoft.resources.resourceactionsuccess"
    assert parse(event).signals[0].kind is SignalKind.FAILOVER_STARTED


@pytest.mark.parametrize(
    "event_type",
    [
        "Microsoft.Resources.ResourceDeleteSuccess",
        "Microsoft.Resources.ResourceWriteFailure",
        "Microsoft.Storage.BlobCreated",
        "Microsoft.EventGrid.SubscriptionDeletedEvent",
    ],
)
def test_other_event_types_are_ignored(event_type):
    event = load()
    event["eventType"] = event_type
    result = parse(event)
    assert result.ignored
    assert event_type in (result.ignored_reason or "")


def test_validation_event_is_ignored_even_without_resource_data():
    result = parse(load("subscription_validation.json"))
    assert result.ignored
    assert "handshake" in (result.ignored_reason or "")


def test_write_on_a_child_resource_is_ignored():
    event = load("resource_write_success_flexible_server.json")
    child = event["data"]["resourceUri"] + "/firewallRules/office"
    event["subject"] = event["data"]["resourceUri"] = child
    event["data"]["operationName"] = "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules/write"
    result = parse(event)
    assert result.ignored
    assert "firewallRules/write" in (result.ignored_reason or "")


def test_action_other_than_restart_is_ignored():
    event = load()
    event["data"]["operationName"] = "Microsoft.DBforPostgreSQL/flexibleServers/stop/action"
    assert parse(event).ignored


def test_resource_uri_falls_back_to_subject():
    event = load()
    del event["data"]["resourceUri"]
    assert parse(event).signals[0].server == "pg-prod-01"


def test_upper_case_resource_id_is_canonicalised():
    (signal,) = parse(load("resource_action_failure_restart.json")).signals
    assert signal.resource_id == signal.resource_id.lower()
    assert "/resourcegroups/rg-data/" in signal.resource_id


@pytest.mark.parametrize("event", [None, [], "event", 1, [{"id": "x"}]])
def test_not_an_object(event):
    with pytest.raises(InvalidPayloadError, match="JSON object"):
        parse(event)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("id", None, "id is required"),
        ("id", 17, "id must be a string"),
        ("eventType", None, "eventType is required"),
        ("eventType", ["x"], "eventType is required"),
        ("eventTime", None, "eventTime is required"),
        ("eventTime", "2026-11-25 07:15", "eventTime is not an ISO 8601"),
        ("data", "x", "data must be a JSON object"),
        ("data", None, "data must be a JSON object"),
    ],
)
def test_malformed_event(key, value, words):
    event = load()
    event[key] = value
    with pytest.raises(InvalidPayloadError, match=words):
        parse(event)


def test_operation_name_is_required_for_our_resources():
    event = load()
    event["data"]["operationName"] = None
    with pytest.raises(InvalidPayloadError, match="operationName"):
        parse(event)


def test_cloud_event_without_time_is_malformed():
    event = as_cloud_event(load())
    del event["time"]
    with pytest.raises(InvalidPayloadError, match="time is required"):
        parse(event)


def test_claims_and_http_request_stay_out():
    dumped = json.dumps([s.to_dict() for s in parse(load()).signals])
    for secret in ("203.0.113.7", "ops@contoso.com", "Olivia", "principalId", "22223333", "api-version"):
        assert secret not in dumped
