"""Service Health alerts: maintenance notices, ignored unless they name a flexible server."""

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
MAINTENANCE = "service_health_maintenance.json"
SUB = "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e"
SERVERS = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.DBforPostgreSQL/flexibleServers"
PG = f"{SERVERS}/pg-prod-01"
PG2 = f"{SERVERS}/pg-prod-02"


def load(name: str = MAINTENANCE) -> dict[str, Any]:
    return copy.deepcopy(json.loads((FIXTURES / name).read_text(encoding="utf-8")))


def props(body: dict[str, Any]) -> Any:
    return body["data"]["alertContext"]["properties"]


def parse(body: dict[str, Any]):
    return parse_alert(body, received_at=RECEIVED)


def test_documented_maintenance_notice_names_no_server():
    result = parse(load())
    assert result.ignored
    assert result.ignored_reason == (
        "Service Health maintenance KT7Q-5ZW names no PostgreSQL flexible server: "
        "the notice lists services and regions, not resources"
    )


@pytest.mark.parametrize(
    "incident_type", ["Incident", "Informational", "ActionRequired", "Security", None, 5]
)
def test_other_incident_types_are_ignored(incident_type):
    body = load()
    props(body)["incidentType"] = incident_type
    result = parse(body)
    assert result.ignored
    assert "is not planned maintenance" in (result.ignored_reason or "")


# Hypothetical shapes (no documented payload names resources): the parser accepts them if they appear.
@pytest.mark.parametrize(
    "named",
    [
        {"impactedResources": [PG]},
        {"impactedResources": json.dumps([PG])},
        {"impactedResources": [{"resourceId": PG, "resourceName": "pg-prod-01"}]},
        {"impactedResources": json.dumps([{"ResourceId": PG.upper()}])},
        {"resourceId": PG},
        {
            "impactedServices": [
                {
                    "ServiceName": "x",
                    "ImpactedRegions": [{"RegionName": "East US 2"}],
                    "ImpactedResources": [PG],
                }
            ]
        },
    ],
)
def test_maintenance_naming_a_server_is_scheduled_maintenance(named):
    body = load()
    props(body).update(named)
    (signal,) = parse(body).signals
    assert signal.kind is SignalKind.MAINTENANCE_SCHEDULED
    assert (signal.cause, signal.cause_confidence) == (Cause.MAINTENANCE, 2)
    assert signal.server == "pg-prod-01"
    assert signal.signal_id == "monitor:sh:0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e:pg-prod-01"
    assert signal.observed_at == datetime(2026, 11, 25, 7, 16, 19, 31269, tzinfo=timezone.utc)
    assert signal.details["tracking_id"] == "KT7Q-5ZW"
    assert signal.details["impact_start"] == "2026-11-30T22:00:00Z"
    assert signal.details["impact_end"] == "2026-12-01T06:00:00Z"
    assert signal.details["regions"] == "East US 2"
    assert "KT7Q-5ZW" in signal.summary


def test_server_in_alert_targets():
    body = load()
    body["data"]["essentials"]["alertTargetIDs"].append(PG.lower())
    assert parse(body).signals[0].server == "pg-prod-01"


def test_two_named_servers_give_two_signals_with_distinct_ids():
    body = load()
    props(body)["impactedResources"] = [PG, PG2, PG.upper()]
    signals = parse(body).signals
    assert [s.server for s in signals] == ["pg-prod-01", "pg-prod-02"]
    assert len({s.signal_id for s in signals}) == 2


def test_string_and_int_variants_of_channels_source_level():
    body = load()
    ctx = body["data"]["alertContext"]
    ctx.update({"channels": "Admin", "eventSource": "ServiceHealth", "level": "Informational"})
    props(body)["incidentType"] = "maintenance"
    props(body)["impactedResources"] = [PG]
    assert parse(body).signals[0].kind is SignalKind.MAINTENANCE_SCHEDULED


def test_signal_id_fallback_is_tracking_and_communication():
    body = load()
    del body["data"]["alertContext"]["eventDataId"]
    props(body)["impactedResources"] = [PG]
    assert parse(body).signals[0].signal_id == "monitor:sh:KT7Q-5ZW:11223344556677:pg-prod-01"


def test_unreadable_impact_window_is_left_out():
    body = load()
    props(body).update(impactedResources=[PG], impactStartTime="soon", impactMitigationTime=None)
    (signal,) = parse(body).signals
    assert "impact_start" not in signal.details
    assert "from" not in signal.summary
