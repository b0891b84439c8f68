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

from failover.timeutil import iso

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
# The subscription, resource group and server name the fixtures are about.
_FIXTURE_IDS = ("aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e", "rg-data", "pg-prod-01")


def _fixture(name: str, resource_id: str) -> Any:
    """The fixture, about the server of `resource_id` (subscription, group and name swapped)."""
    parts = resource_id.strip("/").split("/")
    text = (FIXTURES / name).read_text()
    for old, new in zip(_FIXTURE_IDS, (parts[1], parts[3], parts[-1]), strict=True):
        text = text.replace(old, new).replace(old.upper(), new.upper())
    return json.loads(text)


def _alert(name: str, resource_id: str, fired: datetime, **context: Any) -> dict[str, Any]:
    """The alert `monitor/<name>.json` fired at `fired`, `context` merged into its alert context. An
    alert for one logged event (it has an `eventDataId`) gets an event of its own, at that time."""
    payload: dict[str, Any] = _fixture(f"monitor/{name}.json", resource_id)
    payload["data"]["essentials"]["firedDateTime"] = iso(fired)
    alert_context = payload["data"]["alertContext"]
    if "eventDataId" in alert_context:
        context.update(eventDataId=str(uuid.uuid4()), eventTimestamp=iso(fired))
    alert_context.update(context)
    return payload


def activity_log(
    status: str, *, resource_id: str, at: datetime, mode: str, operation_id: str
) -> dict[str, Any]:
    """An activity log alert for the restart action (Started or Succeeded)."""
    payload = _alert(f"activity_log_restart_{status.lower()}", resource_id, at, operationId=operation_id)
    if status == "Started":
        request = {"restartWithFailover": True, "failoverMode": mode}
        payload["data"]["alertContext"].setdefault("properties", {})["requestbody"] = json.dumps(request)
    return payload


def resource_health(
    status: str, *, resource_id: str, at: datetime, cause: str | None, title: str
) -> dict[str, Any]:
    """A Resource Health alert: the server Degraded (a failover under way) or Available again."""
    name = "resource_health_available" if status == "Available" else "resource_health_degraded_planned"
    payload = _alert(name, resource_id, at)
    payload["data"]["alertContext"]["properties"].update(currentHealthStatus=status, cause=cause, title=title)
    return payload


def is_db_alive(*, resource_id: str, fired: datetime, resolved: datetime | None) -> dict[str, Any]:
    """The `is_db_alive` metric alert: Fired, or Resolved (which carries both times and repeats the
    firing's `alertId`: here a name-based UUID of the server and the time it fired)."""
    payload = _alert(f"metric_is_db_alive_{'resolved' if resolved else 'fired'}", resource_id, fired)
    essentials = payload["data"]["essentials"]
    firing = uuid.uuid5(uuid.NAMESPACE_URL, f"{resource_id} {fired.isoformat()}")
    essentials["alertId"] = f"{essentials['alertId'].rsplit('/', 1)[0]}/{firing}"
    if resolved is not None:
        essentials["resolvedDateTime"] = iso(resolved)
    return payload


def resource_action_success(*, resource_id: str, at: datetime, operation_id: str) -> dict[str, Any]:
    """The Event Grid `ResourceActionSuccess` event for the restart action (one event)."""
    (event,) = _fixture("event_grid/resource_action_success_restart.json", resource_id)
    event.update(id=str(uuid.uuid4()), eventTime=iso(at))
    event["data"]["operationId"] = operation_id
    return dict(event)
