"""Alert storms built from the documented payload fixtures, and the truth to check them against.

Layer: test support, shared by the reliability suite and `bench/storm.py`. A zone outage hits
`servers` flexible servers at once; each server sends its full set of signals, each one a real
fixture (tests/fixtures) with its own identity and time:

- Resource Health Degraded (cause PlatformInitiated) and Available,
- the `is_db_alive` metric alert Fired and Resolved (the Resolved payload also replays the Fired
  signal, exactly as Azure Monitor does),
- the activity log restart (ForcedFailover) Started and Succeeded,
- the Event Grid `ResourceActionSuccess` for the same restart (delivered to the Event Grid webhook).

A share of the deliveries is repeated (Azure delivers at least once) and the whole lot is shuffled.
The signal ids each delivery carries are computed with the product's own pure parsers, so the
expected timeline of every server is known exactly.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from failover.sources.event_grid import parse_event
from failover.sources.monitor import parse_alert
from failover.timeutil import iso
from tests.payloads import for_server, load, resource_health

T0 = datetime(2026, 11, 25, 7, 16, 2, tzinfo=timezone.utc)
SUBSCRIPTION = "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e"
ALERT = "alert"
EVENT_GRID = "eventgrid"
# Seconds after a server's first sign of trouble at which each of its signals is observed.
_OFFSETS = {
    "health_degraded": 0.0,
    "restart_started": 5.0,
    "event_grid_restart": 6.0,
    "metric_fired": 40.0,
    "restart_succeeded": 100.0,
    "health_available": 150.0,
    "metric_resolved": 170.0,
}
SIGNALS_PER_SERVER = 7  # distinct signals each server sends (the metric pair carries two)


@dataclass(frozen=True)
class Delivery:
    """One POST: an alert to /api/alerts or an array of Event Grid events to the webhook."""

    key: str  # the original payload this delivery carries (duplicates share it)
    kind: str  # ALERT | EVENT_GRID
    server: str
    body: Any
    signal_ids: tuple[str, ...]
    duplicate: bool = False


@dataclass
class Workload:
    deliveries: list[Delivery]
    expected: dict[str, set[str]] = field(default_factory=dict)  # server -> distinct signal ids
    last_observed: datetime = T0

    @property
    def servers(self) -> list[str]:
        return sorted(self.expected)

    @property
    def distinct_signals(self) -> int:
        return sum(len(ids) for ids in self.expected.values())

    def originals(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.duplicate]


def _z(when: datetime) -> str:
    text = iso(when)
    assert text is not None
    return text


def _metric(server: str, alert_id: str, fired: datetime, resolved: datetime | None) -> dict[str, Any]:
    name = "monitor/metric_is_db_alive_resolved.json" if resolved else "monitor/metric_is_db_alive_fired.json"
    payload = for_server(load(name), server)
    essentials = payload["data"]["essentials"]
    essentials["alertId"] = (
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.AlertsManagement/alerts/{alert_id}"
    )
    essentials["firedDateTime"] = _z(fired)
    if resolved is not None:
        essentials["resolvedDateTime"] = _z(resolved)
    return dict(payload)


def _activity(server: str, name: str, event_id: str, at: datetime) -> dict[str, Any]:
    payload = copy.deepcopy(for_server(load(name), server))
    context = payload["data"]["alertContext"]
    context["eventDataId"] = event_id
    context["eventTimestamp"] = _z(at)
    context["submissionTimestamp"] = _z(at + timedelta(seconds=20))
    payload["data"]["essentials"]["firedDateTime"] = _z(at + timedelta(seconds=20))
    payload["data"]["essentials"]["alertId"] = (
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.AlertsManagement/alerts/{event_id}"
    )
    return dict(payload)


def _event_grid(server: str, event_id: str, at: datetime) -> list[dict[str, Any]]:
    events = for_server(load("event_grid/resource_action_success_restart.json"), server)
    events[0]["id"] = event_id
    events[0]["eventTime"] = _z(at)
    return list(events)


def signal_ids(kind: str, body: Any) -> tuple[str, ...]:
    """The ids of the signals a delivery carries, from the product's own (pure) parsers."""
    received = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)
    if kind == ALERT:
        return tuple(s.signal_id for s in parse_alert(body, received_at=received).signals)
    ids: list[str] = []
    for event in body:
        ids.extend(s.signal_id for s in parse_event(event, received_at=received).signals)
    return tuple(ids)


def server_payloads(server: str, base: datetime, rng: random.Random) -> list[tuple[str, Any]]:
    """The seven payloads one server sends during the outage, as (kind, body)."""

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    at = {name: base + timedelta(seconds=offset) for name, offset in _OFFSETS.items()}
    metric_id = uid()
    return [
        (ALERT, resource_health(event_id=uid(), at=at["health_degraded"], server=server,
                                status="Degraded", cause="PlatformInitiated")),
        (ALERT, resource_health(event_id=uid(), at=at["health_available"], server=server,
                                status="Available")),
        (ALERT, _metric(server, metric_id, at["metric_fired"], None)),
        (ALERT, _metric(server, metric_id, at["metric_fired"], at["metric_resolved"])),
        (ALERT, _activity(server, "monitor/activity_log_restart_forced_started.json", uid(),
                          at["restart_started"])),
        (ALERT, _activity(server, "monitor/activity_log_restart_succeeded.json", uid(),
                          at["restart_succeeded"])),
        (EVENT_GRID, _event_grid(server, uid(), at["event_grid_restart"])),
    ]  # fmt: skip


def zone_outage(
    servers: int | Iterable[str],
    *,
    duplicates: float = 0.3,
    seed: int = 20261125,
    prefix: str = "pg-zone",
    base: datetime = T0,
    spacing: float = 1.0,
) -> Workload:
    """Every server's full set of signals, `duplicates` of them delivered again, all shuffled."""
    rng = random.Random(seed)
    names = [f"{prefix}-{i:03d}" for i in range(servers)] if isinstance(servers, int) else list(servers)
    originals: list[Delivery] = []
    expected: dict[str, set[str]] = {}
    for index, server in enumerate(names):
        start = base + timedelta(seconds=index * spacing)
        for number, (kind, body) in enumerate(server_payloads(server, start, rng)):
            ids = signal_ids(kind, body)
            assert ids, f"fixture-derived payload {number} for {server} carries no signal"
            originals.append(Delivery(f"{server}#{number}", kind, server, body, ids))
            expected.setdefault(server, set()).update(ids)
    repeats = [
        Delivery(d.key, d.kind, d.server, d.body, d.signal_ids, duplicate=True)
        for d in rng.sample(originals, round(len(originals) * duplicates))
    ]
    deliveries = originals + repeats
    rng.shuffle(deliveries)
    last = base + timedelta(seconds=(len(names) - 1) * spacing + max(_OFFSETS.values()))
    return Workload(deliveries, expected, last)


def one_server_storm(server: str, *, failovers: int, seed: int = 7, gap: float = 3600.0) -> Workload:
    """Several failovers of one server (an hour apart), each with the full set of signals."""
    rng = random.Random(seed)
    originals: list[Delivery] = []
    expected: dict[str, set[str]] = {server: set()}
    for n in range(failovers):
        start = T0 + timedelta(seconds=n * gap)
        for number, (kind, body) in enumerate(server_payloads(server, start, rng)):
            ids = signal_ids(kind, body)
            originals.append(Delivery(f"{server}#{n}#{number}", kind, server, body, ids))
            expected[server].update(ids)
    deliveries = list(originals)
    rng.shuffle(deliveries)
    last = T0 + timedelta(seconds=(failovers - 1) * gap + max(_OFFSETS.values()))
    return Workload(deliveries, expected, last)
