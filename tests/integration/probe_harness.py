"""Helpers for probe tests: an independent client that measures the outage, and alerts stamped now."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime, timezone
from typing import Any

from local.clients import WritingClient
from tests.payloads import load

__all__ = ["WritingClient", "now_iso", "stamped"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def stamped(fixture: str, *, server: str) -> dict[str, Any]:
    """A fixture alert about `server`, with a fresh identity and the current time."""
    payload = copy.deepcopy(json.loads(json.dumps(load(fixture)).replace("pg-prod-01", server)))
    context = payload["data"]["alertContext"]
    context["eventDataId"] = str(uuid.uuid4())
    context["eventTimestamp"] = now_iso()
    payload["data"]["essentials"]["firedDateTime"] = now_iso()
    return dict(payload)
