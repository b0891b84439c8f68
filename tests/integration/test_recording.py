"""Invariants 1-4 through the real registered functions, the real SDK and a real Azurite.

Exactly once under redelivery and concurrency, atomic records, no lost update, time order, and
one incident with the right cause for a planned and for an unplanned failover.
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import timedelta

import pytest

from failover.model import Cause, IncidentStatus
from tests.builders import T0
from tests.integration import app_harness as app
from tests.payloads import load, resource_health

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(azurite, table_name, clock):
    clock.now = T0 + timedelta(minutes=1)
    rt = app.install({"AzureWebJobsStorage": azurite, "FAILOVER_TABLE": table_name}, clock=clock)
    yield rt
    rt.store._client.delete_table()
    app.set_runtime(None)


def _incidents(runtime, server="pg-prod-01"):
    page = runtime.store.incidents_of_server(
        server, since=None, until=None, status=None, limit=200, after=None
    )
    return list(page.incidents)


def _timeline(runtime, incident):
    return runtime.store.timeline(incident)


def test_same_alert_posted_five_times_records_one_signal(runtime):
    payload = load("monitor/resource_health_degraded_unplanned.json")
    answers = [app.post_alert(payload) for _ in range(5)]
    assert [status for status, _ in answers] == [202] * 5
    assert [body["status"] for _, body in answers] == ["recorded"] + ["duplicate"] * 4
    assert len({body["incident_id"] for _, body in answers}) == 1
    (incident,) = _incidents(runtime)
    assert incident.signal_count == 1
    assert len(_timeline(runtime, incident)) == 1


def test_concurrent_posts_lose_nothing(runtime):
    servers = ["pg-prod-01", "pg-prod-02", "pg-prod-03"]
    payloads = [
        resource_health(event_id=str(uuid.uuid4()), at=T0 + timedelta(seconds=i), server=servers[i % 3])
        for i in range(200)
    ]
    errors: list[BaseException] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def worker(chunk):
        for payload in chunk:
            try:
                status, _ = app.post_alert(payload)
                with lock:
                    statuses.append(status)
            except BaseException as exc:  # collected: a thread's exception must fail the test
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(payloads[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert statuses == [202] * 200
    for index, server in enumerate(servers):
        (incident,) = _incidents(runtime, server)
        expected = len(range(index, 200, 3))
        timeline = _timeline(runtime, incident)
        assert incident.signal_count == expected == len(timeline)
        assert len({entry.signal_id for entry in timeline}) == expected
        state, _ = runtime.store.read_state(server)
        assert state.signals_recorded == expected


def test_reverse_order_gives_time_ordered_timeline(runtime):
    times = [T0 + timedelta(seconds=s) for s in (0, 7, 19, 42, 61, 95)]
    statuses = ["Degraded", "Degraded", "Degraded", "Degraded", "Degraded", "Available"]
    payloads = [
        resource_health(event_id=f"evt-{i}", at=at, status=status, cause="PlatformInitiated")
        for i, (at, status) in enumerate(zip(times, statuses, strict=True))
    ]
    for payload in reversed(payloads):
        assert app.post_alert(payload)[0] == 202
    (incident,) = _incidents(runtime)
    timeline = _timeline(runtime, incident)
    assert [entry.at for entry in timeline] == times
    assert incident.signal_count == 6
    assert incident.opened_at == times[0]
    assert incident.cause is Cause.UNPLANNED


def test_planned_failover_is_one_planned_incident(runtime, clock):
    clock.now = T0 + timedelta(minutes=2)
    sequence = [
        "monitor/activity_log_restart_started.json",
        "monitor/resource_health_degraded_planned.json",
        "monitor/activity_log_restart_succeeded.json",
        "monitor/resource_health_available.json",
    ]
    for name in sequence:
        assert app.post_alert(load(name))[0] == 202
    for raw in load("event_grid/resource_action_success_restart.json"):
        app.deliver(raw)
    (incident,) = _incidents(runtime)
    assert incident.cause is Cause.PLANNED
    assert incident.signal_count == 5
    assert incident.status is IncidentStatus.OPEN  # quiet period not over yet
    clock.advance(600)
    assert runtime.responder.settle_server("pg-prod-01") == 1
    (resolved,) = _incidents(runtime)
    assert resolved.status is IncidentStatus.RESOLVED
    assert resolved.primary_restored_at is not None


def test_unplanned_failover_is_one_unplanned_incident(runtime, clock):
    clock.now = T0 + timedelta(hours=1)  # long after: recovery is already quiet, it resolves at once
    sequence = [
        "monitor/metric_is_db_alive_resolved.json",
        "monitor/resource_health_degraded_unplanned.json",
        "monitor/metric_is_db_alive_fired.json",
    ]
    answers = [app.post_alert(load(name)) for name in sequence]
    assert [body["status"] for _, body in answers] == ["recorded", "recorded", "duplicate"]
    (incident,) = _incidents(runtime)
    assert incident.cause is Cause.UNPLANNED
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.signal_count == 3


def test_shuffled_storm_with_duplicates_gives_one_incident(runtime, clock):
    clock.now = T0 + timedelta(minutes=3)
    names = [
        "monitor/activity_log_restart_forced_started.json",
        "monitor/resource_health_degraded_planned.json",
        "monitor/metric_is_db_alive_fired.json",
        "monitor/metric_is_db_alive_resolved.json",
        "monitor/activity_log_restart_succeeded.json",
        "monitor/resource_health_available.json",
    ]
    deliveries = names * 3
    random.Random(7).shuffle(deliveries)
    for name in deliveries:
        assert app.post_alert(load(name))[0] == 202
    (incident,) = _incidents(runtime)
    assert incident.cause is Cause.FORCED
    # six distinct signals: the resolved metric alert's fired signal is the fired alert's own
    assert incident.signal_count == 6
    assert incident.opened_at == min(entry.at for entry in _timeline(runtime, incident))
