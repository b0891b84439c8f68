"""What Azure sends during a failover, stamped for a given server and time (for the drill and benchmarks).

Layer: local tooling, never deployed. Builds Azure Monitor common-schema alerts and Event Grid
events from the documented-shape fixtures under `tests/fixtures/`, giving each its own identity
(as Azure does) and the times of the failover being simulated.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
_FIXTURE_SERVER = "pg-prod-01"
_FIXTURE_SUBSCRIPTION = "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e"
_FIXTURE_GROUP = "rg-data"


def _z(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _fixture(name: str, resource_id: str) -> Any:
    """The fixture, about the server of `resource_id` (subscription, group and name swapped)."""
    parts = resource_id.strip("/").split("/")
    subscription, group, server = parts[1], parts[3], parts[-1]
    text = (FIXTURES / name).read_text()
    for old, new in (
        (_FIXTURE_SUBSCRIPTION, subscription),
        (_FIXTURE_GROUP, group),
        (_FIXTURE_SERVER, server),
    ):
        text = text.replace(old, new).replace(old.upper(), new.upper())
    return json.loads(text)


def activity_log(
    status: str, *, resource_id: str, at: datetime, mode: str, operation_id: str
) -> dict[str, Any]:
    """An activity log alert for the restart action (Started or Succeeded)."""
    name = (
        "activity_log_restart_started.json" if status == "Started" else "activity_log_restart_succeeded.json"
    )
    payload: dict[str, Any] = _fixture(f"monitor/{name}", resource_id)
    context = payload["data"]["alertContext"]
    context.update(
        eventDataId=str(uuid.uuid4()), eventTimestamp=_z(at), operationId=operation_id, status=status
    )
    properties = context.setdefault("properties", {})
    if status == "Started":
        properties["requestbody"] = json.dumps({"restartWithFailover": True, "failoverMode": mode})
    payload["data"]["essentials"]["firedDateTime"] = _z(at)
    return payload


def resource_health(
    status: str, *, resource_id: str, at: datetime, cause: str | None, title: str
) -> dict[str, Any]:
    name = (
        "resource_health_available.json" if status == "Available" else "resource_health_degraded_planned.json"
    )
    payload: dict[str, Any] = _fixture(f"monitor/{name}", resource_id)
    context = payload["data"]["alertContext"]
    context.update(eventDataId=str(uuid.uuid4()), eventTimestamp=_z(at))
    context["properties"].update(currentHealthStatus=status, cause=cause, title=title)
    payload["data"]["essentials"]["firedDateTime"] = _z(at)
    return payload


def is_db_alive(
    *, resource_id: str, alert_id: str, fired: datetime, resolved: datetime | None
) -> dict[str, Any]:
    """The `is_db_alive` metric alert: Fired, or Resolved (which carries both times)."""
    name = "metric_is_db_alive_resolved.json" if resolved else "metric_is_db_alive_fired.json"
    payload: dict[str, Any] = _fixture(f"monitor/{name}", resource_id)
    essentials = payload["data"]["essentials"]
    essentials.update(alertId=alert_id, firedDateTime=_z(fired))
    if resolved is not None:
        essentials["resolvedDateTime"] = _z(resolved)
    return payload


def resource_action_success(*, resource_id: str, at: datetime, operation_id: str) -> dict[str, Any]:
    """The Event Grid `ResourceActionSuccess` event for the restart action (one event)."""
    (event,) = _fixture("event_grid/resource_action_success_restart.json", resource_id)
    event.update(id=str(uuid.uuid4()), eventTime=_z(at))
    event["data"]["operationId"] = operation_id
    return dict(event)
