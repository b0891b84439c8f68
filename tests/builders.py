"""Small builders for signals in tests (pure values; no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from failover.model import Cause, Signal, SignalKind, Source

T0 = datetime(2026, 11, 25, 7, 16, 2, tzinfo=timezone.utc)
RESOURCE = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-data/providers/"
    "microsoft.dbforpostgresql/flexibleservers/{server}"
)


def signal(
    kind: SignalKind,
    seconds: float = 0,
    *,
    server: str = "pg-prod-01",
    cause: Cause = Cause.UNKNOWN,
    confidence: int = 0,
    source: Source = Source.MONITOR_ALERT,
    signal_id: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Signal:
    observed = (at or T0) + timedelta(seconds=seconds)
    return Signal(
        signal_id=signal_id or f"test:{server}:{kind.value}:{seconds}",
        server=server,
        resource_id=RESOURCE.format(server=server),
        source=source,
        kind=kind,
        cause=cause,
        cause_confidence=confidence,
        observed_at=observed,
        received_at=observed + timedelta(seconds=5),
        summary=f"{kind.value} at +{seconds}s",
        details=details or {},
    )
