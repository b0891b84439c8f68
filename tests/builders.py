"""Small builders for signals and incidents in tests (pure values; no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from failover.model import Cause, Incident, IncidentStatus, Signal, SignalKind, Source, Transition
from failover.notify.channel import Links
from failover.presentation import IncidentView

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


def incident(
    transition: Transition = Transition.OPENED, *, server: str = "pg-prod-01", **changes: Any
) -> Incident:
    """A planned failover of `server` as it stands after `transition` (zones 1 -> 2), then `changes`."""
    base = Incident(
        incident_id=f"{server}~20261125T071602Z",
        server=server,
        resource_id=RESOURCE.format(server=server),
        status=IncidentStatus.OPEN,
        cause=Cause.PLANNED,
        cause_confidence=3,
        opened_at=T0,
        last_signal_at=T0,
        primary_zone_before="1",
        ha_state="FailingOver",
        transitions=(Transition.OPENED,),
    )
    if transition is not Transition.OPENED:
        base = replace(
            base,
            primary_restored_at=T0 + timedelta(seconds=41),
            primary_zone_after="2",
            standby_zone_after="1",
            write_downtime_seconds=12.43,
            ha_state="ReplicatingData",
            transitions=(Transition.OPENED, Transition.PRIMARY_RESTORED),
        )
    if transition is Transition.RESOLVED:
        base = replace(
            base,
            status=IncidentStatus.RESOLVED,
            resolved_at=T0 + timedelta(minutes=9),
            ha_state="Healthy",
            transitions=(*base.transitions, Transition.RESOLVED),
        )
    if transition is Transition.STALE:
        base = replace(
            base,
            status=IncidentStatus.STALE,
            stale_at=T0 + timedelta(hours=2),
            transitions=(*base.transitions, Transition.STALE),
        )
    return replace(base, **changes)


class Recorder:
    """A channel that records what it was asked to send."""

    name = "teams"

    def __init__(
        self, *, target: str | None = "https://hook.example/w", fail: Exception | None = None
    ) -> None:
        self.target = target
        self.fail = fail
        self.sent: list[tuple[str, Mapping[str, Any]]] = []

    def target_for(self, server: str) -> str | None:
        return self.target

    def render(self, view: IncidentView, transition: Transition, links: Links) -> Mapping[str, Any]:
        return {"headline": view.headline(transition), "timeline": links.timeline_url}

    def send(self, target: str, message: Mapping[str, Any]) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append((target, message))
