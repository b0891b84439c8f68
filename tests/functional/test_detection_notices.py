"""Issue 11 through the probe: a failover inside a running maintenance is recorded with the cause
maintenance (from `maintenanceEvents`); ten minutes of refused probe logins give one card and no
incident; upcoming maintenance is kept for /api/servers. In-memory store, fake ports."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from failover.adapters.memory_store import MemoryStore
from failover.lookups import upcoming_maintenance
from failover.maintenance import MaintenanceWatch
from failover.model import Cause
from failover.ports import MaintenanceEvent
from failover.probe_notices import ProbeNotices
from failover.probing import Prober, ProbeReport, ProbeSchedule, ServerHealth
from failover.service import Responder
from failover.sources.db_faults import DbFault
from tests.probe_fakes import FailingOverInspector

SERVER = "pg-maint-01"
RID = (
    "/subscriptions/00000000-0000-0000-0000-000000000011/resourcegroups/rg/providers/"
    f"microsoft.dbforpostgresql/flexibleservers/{SERVER}"
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _run(status: str) -> tuple[MemoryStore, Cause]:
    store = MemoryStore()
    start = _now() - timedelta(minutes=1)
    event = MaintenanceEvent(
        "XY12-345", SERVER, status, "PlannedMaintenance", start, start + timedelta(hours=1)
    )
    # Healthy in zone 1, failing over, healthy in zone 2; a fake of the two calls the probe makes
    inspector: Any = FailingOverInspector(moved_at=4, maintenance=(event,))
    watch = MaintenanceWatch(inspector, _now)
    notices = ProbeNotices(store, _now, maintenance=watch)
    prober = Prober(
        responder=Responder(store=store, clock=_now),
        clock=_now,
        targets=lambda: (RID,),
        inspector=inspector,
        schedule=ProbeSchedule(window=timedelta(seconds=1.0), arm_interval=0.15),
        on_report=notices.on_report,
        maintenance=watch.check_hook,
    )
    prober.run_once()
    state, _ = store.read_state(SERVER)
    assert state is not None and state.records, "the failover opened no incident"
    incident = store.get_incident(state.records[-1].incident_id)
    assert incident is not None
    return store, incident.cause


def test_a_failover_during_an_in_progress_maintenance_event_is_maintenance():
    _, cause = _run("InProgress")

    assert cause is Cause.MAINTENANCE


def test_a_planned_event_is_shown_on_the_server_but_does_not_name_the_failover():
    store, cause = _run("Planned")

    assert cause is Cause.UNPLANNED
    shown = upcoming_maintenance(store, SERVER)
    assert [(m["event_id"], m["status"]) for m in shown] == [("XY12-345", "Planned")]


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 25, 10, 2, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.at


def test_ten_minutes_of_refused_probe_logins_give_one_card_and_no_incident():
    store, clock, cards = MemoryStore(), Clock(), []

    def post(server: str, card: Any) -> bool:
        cards.append((server, card))
        return True

    notices = ProbeNotices(store, clock, post=post)
    refused = ServerHealth(
        SERVER,
        RID,
        arm="ok",
        db="probe_fault",
        db_error="login refused: the server refused the probe's login",
        db_fault=DbFault.LOGIN_REFUSED.value,
    )
    for _ in range(12):  # one probe run a minute
        notices.on_report(ProbeReport({SERVER: refused}))
        (row,) = store.probe_health()
        assert row["db"] == "probe_fault" and row["db_fault_since"] == "2026-11-25T10:02:00Z"
        clock.at += timedelta(minutes=1)

    assert len(cards) == 1
    headline = cards[0][1]["body"][0]["items"][0]["text"]
    assert headline == "Cannot check pg-maint-01 since 2026-11-25 10:02:00 UTC: login refused"
    assert store.read_state(SERVER) == (None, None)  # nothing recorded: never an incident

    # The probe checks again, later fails again: a new probe outage, a second card after 10 minutes.
    notices.on_report(ProbeReport({SERVER: ServerHealth(SERVER, RID, arm="ok", db="ok")}))
    assert store.probe_health()[0]["db_fault_since"] == ""
    for _ in range(11):
        clock.at += timedelta(minutes=1)
        notices.on_report(ProbeReport({SERVER: refused}))
    assert len(cards) == 2


def test_a_failed_card_post_is_retried_by_the_next_run():
    from failover.errors import NotifierUnavailableError

    store, clock, cards = MemoryStore(), Clock(), []
    failing = [True]

    def post(server, card):
        if failing[0]:
            raise NotifierUnavailableError("teams webhook at *.logic.azure.com answered 503")
        cards.append(card)
        return True

    notices = ProbeNotices(store, clock, post=post, notify_after=timedelta(0))
    refused = ServerHealth(SERVER, RID, db="probe_fault", db_error="login refused", db_fault="login_refused")
    notices.on_report(ProbeReport({SERVER: refused}))
    assert store.probe_health()[0]["db_fault_notified_at"] == ""
    failing[0] = False
    clock.at += timedelta(minutes=1)
    notices.on_report(ProbeReport({SERVER: refused}))
    notices.on_report(ProbeReport({SERVER: refused}))
    assert len(cards) == 1
