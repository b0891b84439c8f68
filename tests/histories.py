"""Generated failover histories: what Azure and the probes deliver for 1 to 5 failovers of a server.

Used by the generated-history test (tests/functional/test_history.py) and its longer run in the
benchmarks (bench/history.py). Every signal is shaped as its parser produces it; observed times follow
each source's behaviour and delivery lags stay inside the documented bounds (`failover.lags.LAGS`).

A history is a list of `Failover`s with their signals; a *schedule* is one way of delivering them
(lags drawn within the bounds, lost alerts, duplicates, concurrent senders, storage faults).
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from failover.adapters.memory_store import MemoryStore
from failover.errors import StorageUnavailableError
from failover.incidents import Policy, derive
from failover.lags import LAGS, family_of
from failover.model import Cause, Incident, IncidentStatus, Signal, SignalKind, Source
from failover.notify.pipeline import NotifyPipeline
from failover.service import Integrations, Responder
from tests.builders import RESOURCE, T0, Recorder

SERVER = "pg-prod-01"
KINDS = ("planned", "forced", "unplanned", "maintenance")
SOURCES = ("db_probe", "arm_probe", "metric", "resource_health", "activity_log", "event_grid")
POLICY = Policy()
_CAUSE = {
    "planned": Cause.PLANNED,
    "forced": Cause.FORCED,
    "unplanned": Cause.UNPLANNED,
    "maintenance": Cause.MAINTENANCE,
}


@dataclass(frozen=True)
class Failover:
    kind: str
    at: datetime
    downtime: float
    sources: tuple[str, ...]
    zones: tuple[str, str]  # primary before, primary after (the same zone for same-zone HA)
    signals: tuple[Signal, ...] = field(default=())
    healthy_after: float = 600  # seconds from the restore to HA Healthy (the standby rebuilt)

    @property
    def expected_cause(self) -> Cause:
        """The best a correct model can know from the sources that saw this failover."""
        seen = set(self.sources)
        if self.kind == "maintenance" or "activity_log" in seen:
            return _CAUSE[self.kind]  # the announced window; the restart request's failoverMode
        if self.kind in ("planned", "forced") and seen & {"resource_health", "event_grid"}:
            return Cause.PLANNED  # a user action, its mode unknown
        if seen & {"resource_health", "db_probe", "arm_probe"}:
            return Cause.UNPLANNED  # Resource Health's PlatformInitiated, or only the probes saw it
        return Cause.UNKNOWN


@st.composite
def histories(draw: Any, max_failovers: int = 5) -> list[Failover]:
    """1 to `max_failovers` failovers of one server, spaced beyond the stale bound, random sources."""
    count = draw(st.integers(1, max_failovers))
    at = T0
    zones = ("1", "2")
    found: list[Failover] = []
    for n in range(count):
        kind = draw(st.sampled_from(KINDS))
        usable = [
            s for s in SOURCES if kind in ("planned", "forced") or s not in ("activity_log", "event_grid")
        ]
        sources = tuple(
            draw(st.lists(st.sampled_from(usable), min_size=1, max_size=len(usable), unique=True))
        )
        downtime = draw(st.floats(5, 120))
        failover = Failover(kind, at, round(downtime, 3), sources, zones)
        found.append(replace(failover, signals=tuple(_signals(failover, n))))
        zones = (zones[1], zones[0])
        at += timedelta(minutes=draw(st.integers(150, 600)))
    return found


_SAMPLED = ("arm:failing", "arm:healthy")


@st.composite
def primary_changes(draw: Any, max_changes: int = 4) -> list[Failover]:
    """1 to `max_changes` failovers and failbacks minutes apart, seen by the probes (and Event Grid).

    Azure allows the next failover once the standby is rebuilt (HA Healthy), so a change starts after
    the previous one's Healthy when the management API watches, else a short gap after its restore.
    Zone-redundant HA moves the primary between zones; same-zone HA keeps it in one zone.
    """
    same_zone = draw(st.booleans())
    # The probes are the deployment's: the same ones watch every change.
    probes = draw(st.lists(st.sampled_from(("db_probe", "arm_probe")), min_size=1, unique=True))
    zones = ("1", "1") if same_zone else ("1", "2")
    at = T0
    found: list[Failover] = []
    for n in range(draw(st.integers(1, max_changes))):
        kind = draw(st.sampled_from(("planned", "forced", "unplanned")))
        alerts = ("event_grid",) if kind != "unplanned" and draw(st.booleans()) else ()
        downtime = round(draw(st.floats(5, 60)), 3)
        healthy = draw(st.floats(30, 600))
        failover = Failover(kind, at, downtime, (*probes, *alerts), zones, healthy_after=healthy)
        # The management API is sampled: it may miss the short FailingOver and Healthy states, but
        # never a zone move (the view keeps it), so a same-zone change it alone watches keeps them.
        missable = probes != ["arm_probe"] or zones[0] != zones[1]
        missed = set(draw(st.lists(st.sampled_from(_SAMPLED), unique=True))) if missable else set()
        signals = [s for s in _signals(failover, n) if s.signal_id.split(":", 1)[1] not in missed]
        found.append(replace(failover, signals=tuple(signals)))
        settled = downtime + (healthy if "arm_probe" in probes else 0)
        at += timedelta(seconds=settled + draw(st.floats(30, 600)))
        zones = (zones[1], zones[0])
    return found


def _signals(f: Failover, n: int) -> list[Signal]:
    """The signals every chosen source emits for one failover, stamped with observed times."""
    out: list[Signal] = []
    cause = f.expected_cause
    end = f.downtime

    def add(source: Source, kind: SignalKind, seconds: float, tag: str, **extra: Any) -> None:
        confidence = extra.pop("confidence", 0)
        out.append(
            Signal(
                signal_id=f"h{n}:{tag}",
                server=SERVER,
                resource_id=RESOURCE.format(server=SERVER),
                source=source,
                kind=kind,
                cause=extra.pop("cause", Cause.UNKNOWN),
                cause_confidence=confidence,
                observed_at=f.at + timedelta(seconds=seconds),
                received_at=f.at + timedelta(seconds=seconds),
                summary=f"{tag} of failover {n}",
                details=extra,
            )
        )

    if "activity_log" in f.sources:
        add(Source.MONITOR_ALERT, SignalKind.FAILOVER_STARTED, -1, "al:start", cause=cause, confidence=3)
        add(
            Source.MONITOR_ALERT, SignalKind.FAILOVER_COMPLETED, end + 5, "al:done", cause=cause, confidence=3
        )
    if "event_grid" in f.sources:
        add(Source.EVENT_GRID, SignalKind.FAILOVER_STARTED, end + 2, "eg", cause=Cause.PLANNED, confidence=1)
    if "resource_health" in f.sources:
        health_cause = Cause.UNPLANNED if f.kind == "unplanned" else Cause.PLANNED
        add(
            Source.MONITOR_ALERT,
            SignalKind.HEALTH_UNAVAILABLE,
            2,
            "rh:down",
            cause=health_cause,
            confidence=1,
        )
        add(Source.MONITOR_ALERT, SignalKind.HEALTH_AVAILABLE, end + 60, "rh:up")
    if "metric" in f.sources:
        add(Source.MONITOR_ALERT, SignalKind.DB_DOWN, 90, "m:fired")
        add(Source.MONITOR_ALERT, SignalKind.DB_UP, end + 240, "m:resolved")
    if "db_probe" in f.sources:
        add(Source.DB_PROBE, SignalKind.WRITE_UNAVAILABLE, 0.5, "db:down", cause=Cause.UNPLANNED)
        add(Source.DB_PROBE, SignalKind.WRITE_RESTORED, end, "db:up", downtime_seconds=round(end - 0.4, 3))
    if "arm_probe" in f.sources:
        before, after = f.zones
        add(
            Source.ARM_PROBE,
            SignalKind.HA_STATE_CHANGED,
            3,
            "arm:failing",
            ha_state="FailingOver",
            cause=Cause.UNPLANNED,
        )
        if before != after:  # same-zone HA: the management API sees no zone move
            view = {"primary_zone": after, "standby_zone": before, "ha_state": "Healthy"}
            add(
                Source.ARM_PROBE,
                SignalKind.FAILOVER_COMPLETED,
                end + 5,
                "arm:zone",
                zone_before=before,
                view=view,
            )
        add(
            Source.ARM_PROBE,
            SignalKind.HA_STATE_CHANGED,
            end + f.healthy_after,
            "arm:healthy",
            ha_state="Healthy",
        )
    if f.kind == "maintenance":
        window = {"tracking_id": f"M{n}", "impact_start": _iso(f.at, -3600), "impact_end": _iso(f.at, 3600)}
        add(Source.MONITOR_ALERT, SignalKind.MAINTENANCE_SCHEDULED, -5 * 86400, "sh", **window)
    return out


def _iso(at: datetime, seconds: float) -> str:
    return (at + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- schedules ------------------------------------------------------------------------------------

# Alerts whose recovery may be lost on the way (stateless Resource Health, a lost Resolved).
_LOSABLE = ("rh:up", "m:resolved")


@dataclass(frozen=True)
class Delivery:
    signal: Signal
    duplicate: bool = False


def schedule(history: list[Failover], rng: random.Random, *, lose: frozenset[str]) -> list[Delivery]:
    """One delivery order: lags within bounds (probes in their own order), some duplicates."""
    deliveries: list[Delivery] = []
    probe_clock: dict[Source, datetime] = {}
    for n, failover in enumerate(history):
        for s in failover.signals:
            if f"{n}:{s.signal_id.split(':', 1)[1]}" in lose:
                continue
            bound = LAGS[family_of(s.source, s.kind)].delivery.total_seconds()
            received = s.observed_at + timedelta(seconds=rng.uniform(0, bound))
            if s.source in (Source.DB_PROBE, Source.ARM_PROBE):  # a probe records in its own order
                received = max(received, probe_clock.get(s.source, received))
                probe_clock[s.source] = received
            deliveries.append(Delivery(replace(s, received_at=received)))
            if rng.random() < 0.2:
                later = received + timedelta(seconds=rng.uniform(0, 600))
                deliveries.append(Delivery(replace(s, received_at=later), duplicate=True))
    return sorted(deliveries, key=lambda d: d.signal.received_at)


def lost_recoveries(history: list[Failover], rng: random.Random) -> frozenset[str]:
    """Recovery alerts that never arrive (the same set for every schedule of one history)."""
    return frozenset(f"{n}:{tag}" for n, f in enumerate(history) for tag in _LOSABLE if rng.random() < 0.25)


_TOGETHER = timedelta(seconds=5)


class _ThreadClock:
    """Each sender thread records at its own delivery's receipt time."""

    def __init__(self, start: datetime) -> None:
        self._local = threading.local()
        self._start = start

    def set(self, when: datetime) -> None:
        self._local.now = when

    def __call__(self) -> datetime:
        return getattr(self._local, "now", self._start)


@dataclass
class Outcome:
    store: MemoryStore
    responder: Responder
    incidents: list[Incident]
    recorded: int
    faults: int


def deliver(
    history: list[Failover],
    deliveries: list[Delivery],
    rng: random.Random,
    *,
    senders: int = 1,
    fault_rate: float = 0.0,
) -> Outcome:
    """Record every delivery through a Responder on a memory store; faulted ones are redelivered."""
    store = MemoryStore()
    clock = _ThreadClock(T0)
    # A channel that renders and records every card: the effects the invariants count are real.
    teams = Integrations(notify=NotifyPipeline(channels={"teams": Recorder()}))
    responder = Responder(
        store=store, clock=clock, policy=POLICY, sleep=lambda _: None, rand=rng.random, integrations=teams
    )
    faults = 0
    pending = list(deliveries)
    recorded = 0
    lock = threading.Lock()

    def send(delivery: Delivery) -> Delivery | None:
        nonlocal recorded
        clock.set(delivery.signal.received_at)
        try:
            outcome = responder.record(delivery.signal)
        except StorageUnavailableError:  # Azure redelivers what got a 503
            later = delivery.signal.received_at + timedelta(seconds=30)
            return replace(delivery, signal=replace(delivery.signal, received_at=later))
        with lock:
            recorded += outcome.status == "recorded"
        return None

    with ThreadPoolExecutor(max_workers=senders) as pool:
        while pending:
            # Concurrent senders take deliveries that arrive together (within a few seconds).
            horizon = pending[0].signal.received_at + _TOGETHER
            size = next(
                (i for i, d in enumerate(pending[:senders]) if d.signal.received_at > horizon), senders
            )
            batch, pending = pending[: max(size, 1)], pending[max(size, 1) :]
            if fault_rate and rng.random() < fault_rate:
                store.fail_next(rng.choice(["commit", "read_for_signal"]))
                faults += 1
            retried = [r for r in pool.map(send, batch) if r is not None]
            pending = sorted(pending + retried, key=lambda d: d.signal.received_at)
    end = max(d.signal.received_at for d in deliveries) + timedelta(days=2)
    clock.set(end)
    store.clear_faults()
    responder.settle_server(SERVER)
    state, _ = store.read_state(SERVER)
    assert state is not None
    incidents = list(derive(state, now=end, policy=POLICY))
    return Outcome(store, responder, incidents, recorded, faults)


def fingerprint(incident: Incident) -> tuple[Any, ...]:
    """What must not depend on delivery order (the id's time is the first evidence to arrive)."""
    return (
        incident.opened_at,
        incident.signal_count,
        incident.cause,
        incident.status,
        incident.primary_zone_before,
        incident.primary_zone_after,
        incident.write_downtime_seconds,
        incident.primary_restored_at,
    )


def expected_status(failover: Failover, lost: frozenset[str], n: int) -> IncidentStatus:
    """Resolved when the probes that watch say so, or when any recovery evidence arrived at all."""
    sources = set(failover.sources)
    if sources & {"db_probe", "arm_probe", "activity_log", "event_grid"}:
        return IncidentStatus.RESOLVED  # these always report the end of the failover
    recoveries = {"resource_health": f"{n}:rh:up", "metric": f"{n}:m:resolved"}
    whole = any(recoveries[s] not in lost for s in sources)
    return IncidentStatus.RESOLVED if whole else IncidentStatus.STALE
