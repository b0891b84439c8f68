"""Issue 11: maintenance comes from Azure's `maintenanceEvents`, never from a guess; probe outages
are announced once and are never incidents (pure parts: parser, read schedule, outage steps)."""

from __future__ import annotations

from datetime import timedelta

from failover.incidents import Policy, ServerState, decide
from failover.maintenance import MaintenancePolls, _Read, due
from failover.model import Cause, SignalKind, Source
from failover.ports import MaintenanceEvent
from failover.probe_notices import ProbeOutage, probe_outage_card, step_outage
from failover.probing import ServerHealth
from failover.sources.maintenance_events import upcoming, window_signals
from tests.builders import RESOURCE, T0, signal

SERVER = "pg-prod-01"
RID = RESOURCE.format(server=SERVER)


def _event(
    status: str, start: float, end: float | None = 3600, event_id: str = "AB12-C3D"
) -> MaintenanceEvent:
    return MaintenanceEvent(
        event_id=event_id,
        server=SERVER,
        status=status,
        maintenance_type="PlannedMaintenance",
        start_at=T0 + timedelta(seconds=start),
        end_at=None if end is None else T0 + timedelta(seconds=end),
        estimated_downtime_seconds=60.0,
    )


def _failover_cause(*notices) -> Cause:
    state = ServerState(server=SERVER, resource_id=RID)
    for notice in notices:
        state = decide(state, notice, now=T0 + timedelta(seconds=10), policy=Policy()).state
    opening = signal(SignalKind.WRITE_UNAVAILABLE, 5, source=Source.DB_PROBE, cause=Cause.UNPLANNED)
    decision = decide(state, opening, now=T0 + timedelta(seconds=10), policy=Policy())
    assert decision.incident is not None
    return decision.incident.cause


def test_an_in_progress_event_names_a_failover_inside_its_window_maintenance():
    signals = window_signals([_event("InProgress", -60)], resource_id=RID, observed_at=T0)

    assert [s.kind for s in signals] == [SignalKind.MAINTENANCE_SCHEDULED]
    assert signals[0].details["impact_start"] == "2026-11-25T07:15:02Z"
    assert _failover_cause(*signals) is Cause.MAINTENANCE


def test_a_planned_event_is_listed_but_never_a_cause():
    events = [_event("Planned", -60)]

    assert window_signals(events, resource_id=RID, observed_at=T0) == ()
    assert [u.event_id for u in upcoming(events, now=T0)] == ["AB12-C3D"]
    assert _failover_cause() is Cause.UNPLANNED


def test_a_running_event_without_an_end_covers_up_to_when_it_was_seen():
    (notice,) = window_signals([_event("InProgress", -60, end=None)], resource_id=RID, observed_at=T0)

    assert notice.details["impact_end"] == "2026-11-25T07:16:02Z"


def test_statuses_are_open_strings_and_canceled_or_finished_events_are_not_upcoming():
    events = [
        _event("Canceled", 600, event_id="A"),
        _event("Complete", -7200, end=-3600, event_id="B"),
        _event("SomethingNew", 1200, event_id="C"),
        _event("Rescheduled", 900, event_id="D"),
        _event("Planned", -7200, end=-60, event_id="E"),  # its window is over
    ]

    assert [u.event_id for u in upcoming(events, now=T0)] == ["D", "C"]


def test_a_rescheduled_window_is_a_new_signal_and_a_repeated_read_a_duplicate():
    first = window_signals([_event("InProgress", -60)], resource_id=RID, observed_at=T0)
    again = window_signals(
        [_event("InProgress", -60)], resource_id=RID, observed_at=T0 + timedelta(minutes=1)
    )
    moved = window_signals([_event("InProgress", -30)], resource_id=RID, observed_at=T0)

    assert first[0].signal_id == again[0].signal_id != moved[0].signal_id


def test_reads_are_hourly_every_minute_near_a_window_and_every_two_seconds_during_a_failover():
    polls = MaintenancePolls()
    far = _Read(T0, ok=True, upcoming=upcoming([_event("Planned", 86400)], now=T0))
    near = _Read(T0, ok=True, upcoming=upcoming([_event("Planned", 120)], now=T0))

    assert due(None, T0, urgent=False, polls=polls)
    assert not due(far, T0 + timedelta(minutes=59), urgent=False, polls=polls)
    assert due(far, T0 + timedelta(minutes=60), urgent=False, polls=polls)
    assert due(near, T0 + timedelta(minutes=1), urgent=False, polls=polls)
    assert not due(far, T0 + timedelta(seconds=1), urgent=True, polls=polls)
    assert due(far, T0 + timedelta(seconds=2), urgent=True, polls=polls)
    assert due(near, T0 + timedelta(seconds=1), urgent=True, polls=polls)  # a window may have begun


def _health(db: str, fault: str | None = None) -> ServerHealth:
    reason = "login refused: the server refused the probe's login" if fault else None
    return ServerHealth(SERVER, RID, arm="ok", db=db, db_error=reason, db_fault=fault)


def test_a_probe_outage_is_announced_once_after_the_notify_delay():
    after = timedelta(seconds=600)
    outage, due_now = step_outage(None, _health("probe_fault", "login_refused"), now=T0, notify_after=after)
    assert outage is not None and not due_now
    later = T0 + timedelta(seconds=600)
    outage, due_now = step_outage(
        outage, _health("probe_fault", "login_refused"), now=later, notify_after=after
    )
    assert due_now and outage is not None and outage.since == T0
    outage = ProbeOutage(outage.since, outage.fault, outage.reason, notified_at=later)
    outage, due_now = step_outage(
        outage, _health("probe_fault", "login_refused"), now=later + after, notify_after=after
    )
    assert not due_now

    # The probe checks again: the outage is over; a new fault is a new outage with its own card.
    assert step_outage(outage, _health("ok"), now=later + after, notify_after=after) == (None, False)
    # A run that never reached the database learns nothing.
    assert step_outage(outage, _health("not_checked"), now=later, notify_after=after) == (outage, False)


def test_the_probe_outage_card_says_what_cannot_be_checked_since_when_and_why():
    outage = ProbeOutage(T0, "login_refused", "login refused: the server refused the probe's login")
    card = probe_outage_card(SERVER, outage)

    headline = card["body"][0]["items"][0]["text"]
    assert headline == "Cannot check pg-prod-01 since 2026-11-25 07:16:02 UTC: login refused"
    assert card["version"] == "1.4"
    assert all(b.get("wrap") for b in card["body"][0]["items"] if b["type"] == "TextBlock")
