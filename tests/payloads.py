"""Load and vary the JSON payload fixtures (documented Azure shapes) for tests."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text())


def for_server(payload: Any, server: str) -> Any:
    """The same payload about another server (every occurrence of the fixture's server renamed)."""
    return json.loads(json.dumps(payload).replace("pg-prod-01", server))


def resource_health(
    *,
    event_id: str,
    at: datetime,
    server: str = "pg-prod-01",
    status: str = "Degraded",
    cause: str | None = None,
) -> dict[str, Any]:
    """A Resource Health common-schema alert with its own identity and time."""
    payload = copy.deepcopy(for_server(load("monitor/resource_health_degraded_unplanned.json"), server))
    context = payload["data"]["alertContext"]
    context["eventDataId"] = event_id
    context["operationId"] = event_id
    context["eventTimestamp"] = at.isoformat().replace("+00:00", "Z")
    context["properties"]["currentHealthStatus"] = status
    context["properties"]["cause"] = cause
    if status == "Available":
        context["properties"]["previousHealthStatus"] = "Degraded"
        context["properties"]["title"] = "Available"
    return dict(payload)
