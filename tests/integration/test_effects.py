"""Invariants 5-7 with real services: Azurite, redis-server and a loopback Workflows webhook.

Nothing lost downstream (a failing effect stays pending, the sweeper finishes it exactly once,
permanent failures end dead and show on the timeline), leases stop two workers running one
effect, the Redis topology is monotonic, and the webhook URL never leaks.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta

import pytest
import requests

from failover import lookups
from failover.model import EffectName, EffectStatus, Transition
from failover.notify.http import JsonPoster
from failover.notify.registry import build_channels
from failover.ports import Check
from local.teams_sink import SinkResponse, TeamsSink
from tests.builders import T0
from tests.integration import app_harness as app
from tests.integration.redis_fixtures import RedisServer
from tests.payloads import load

pytestmark = pytest.mark.integration

OPENING = "monitor/resource_health_degraded_unplanned.json"


@pytest.fixture
def sink():
    with TeamsSink() as teams:
        yield teams


@pytest.fixture
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture
def make_runtime(azurite, table_name, clock, sink, redis_server):
    created = []

    def make(**extra):
        clock.now = T0 + timedelta(minutes=1)
        env = {
            "AzureWebJobsStorage": azurite,
            "FAILOVER_TABLE": table_name,
            "REDIS_URL": redis_server.url,
            "TEAMS_WEBHOOK_URL": sink.url,
            "EFFECT_MAX_ATTEMPTS": "4",
            "PUBLIC_BASE_URL": "https://pgfailover.example.net",
            **extra,
        }
        rt = app.install(env, clock=clock)
        # A short read timeout, so a hung webhook is seen quickly.
        poster = JsonPoster(requests.Session(), timeout=(1.0, 1.5))
        rt.responder.integrations.notify.channels = build_channels(rt.settings, poster)
        created.append(rt)
        return rt

    yield make
    for rt in created:
        rt.store._client.delete_table()
    app.set_runtime(None)


PAGERDUTY = EffectName.notify("pagerduty")  # not configured here: always skipped


def _effects(rt, incident_id):
    return {(e.transition, e.name): e for e in rt.store.effects_of(incident_id) if e.name is not PAGERDUTY}


def _owed_effects(rt, clock):
    """Outbox pointers to effects (settle checks are not effects)."""
    return [w for w in rt.store.due_work(clock.now + timedelta(days=30), 100) if w.kind == "effect"]


def _open(rt):
    status, body = app.post_alert(load(OPENING))
    assert status == 202
    return body["incident_id"]


def test_an_opening_refreshes_redis_posts_one_card_and_indexes_the_day(
    make_runtime, sink, redis_server, clock
):
    rt = make_runtime()
    incident_id = _open(rt)
    effects = _effects(rt, incident_id)
    assert {e.status for e in effects.values()} == {EffectStatus.DONE}
    topology = redis_server.client().hgetall("pgha:{pg-prod-01}:topology")
    assert topology["incident_id"] == incident_id
    assert topology["version"] == "1"
    (received,) = sink.accepted
    assert received.headers["content-type"].startswith("application/json")
    assert received.json["type"] == "message"
    assert received.json["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert "pg-prod-01" in json.dumps(received.card)
    incident = rt.store.get_incident(incident_id)
    assert [(n.transition, n.status) for n in incident.notifications] == [
        (Transition.OPENED, EffectStatus.DONE)
    ]
    assert _owed_effects(rt, clock) == []
    across = lookups.list_incidents(rt.store, rt.settings, until="2026-11-26T00:00:00Z", now=clock())
    (listed,) = across["incidents"]
    assert listed["notifications"][0]["transition"] == "opened"
    assert listed["notifications"][0]["status"] == "done"


def test_redis_down_keeps_the_record_and_the_sweeper_finishes_once(make_runtime, redis_server, clock):
    rt = make_runtime()
    redis_server.stop()
    incident_id = _open(rt)  # still 202: the record never waits on Redis
    redis_effect = _effects(rt, incident_id)[(Transition.OPENED, EffectName.REDIS_TOPOLOGY)]
    assert redis_effect.status is EffectStatus.PENDING
    assert redis_effect.attempts == 1
    assert redis_effect.last_error
    assert rt.store.get_incident(incident_id).signal_count == 1
    redis_server.start()
    client = redis_server.client()
    pubsub = client.pubsub()
    pubsub.subscribe("pgha:{pg-prod-01}:events")
    pubsub.get_message(timeout=1)
    assert rt.responder.sweep().done == 0  # not due yet: backoff
    clock.advance(3600)
    report = rt.responder.sweep()
    assert report.done == 1
    assert rt.responder.sweep().examined == 0
    assert (
        _effects(rt, incident_id)[(Transition.OPENED, EffectName.REDIS_TOPOLOGY)].status is EffectStatus.DONE
    )
    messages = [m for m in iter(lambda: pubsub.get_message(timeout=0.5), None) if m["type"] == "message"]
    assert len(messages) == 1
    assert client.get("pgha:{pg-prod-01}:epoch") in (None, "0")


def test_429_with_retry_after_is_left_to_the_outbox_then_delivers_exactly_one_card(make_runtime, sink, clock):
    sink.script([SinkResponse(429, {"Retry-After": "120"}), 202])
    rt = make_runtime()
    incident_id = _open(rt)
    card = _effects(rt, incident_id)[(Transition.OPENED, EffectName.NOTIFY_TEAMS)]
    assert [r.status for r in sink.received] == [429]  # no retry, no sleep inside the request
    assert card.status is EffectStatus.PENDING
    assert card.next_attempt_at is not None and card.next_attempt_at >= clock.now + timedelta(seconds=120)
    rt.responder.sweep()
    assert len(sink.received) == 1  # not due yet
    clock.advance(121)
    rt.responder.sweep()
    assert [r.status for r in sink.received] == [429, 202]
    assert _effects(rt, incident_id)[(Transition.OPENED, EffectName.NOTIFY_TEAMS)].status is EffectStatus.DONE


def test_500_three_times_then_200_delivers_one_card(make_runtime, sink, clock):
    sink.script([500, 500, 500, 202])
    rt = make_runtime()
    incident_id = _open(rt)
    card = _effects(rt, incident_id)[(Transition.OPENED, EffectName.NOTIFY_TEAMS)]
    assert card.status is EffectStatus.PENDING
    assert "500" in card.last_error
    for _ in range(3):
        clock.advance(600)
        rt.responder.sweep()
    assert [r.status for r in sink.received] == [500, 500, 500, 202]
    assert len(sink.accepted) == 1
    assert _effects(rt, incident_id)[(Transition.OPENED, EffectName.NOTIFY_TEAMS)].status is EffectStatus.DONE


def test_400_ends_the_effect_dead_and_the_incident_says_so(make_runtime, sink, clock):
    sink.script([SinkResponse(400, body="Bad card")])
    rt = make_runtime()
    incident_id = _open(rt)
    card = _effects(rt, incident_id)[(Transition.OPENED, EffectName.NOTIFY_TEAMS)]
    assert card.status is EffectStatus.DEAD
    assert "400" in card.last_error
    incident = rt.store.get_incident(incident_id)
    assert [(n.transition, n.status) for n in incident.notifications] == [
        (Transition.OPENED, EffectStatus.DEAD)
    ]
    assert _owed_effects(rt, clock) == []


def test_a_hung_webhook_times_out_and_stays_pending(make_runtime, sink):
    sink.hang(10)
    rt = make_runtime()
    incident_id = _open(rt)
    card = _effects(rt, incident_id)[(Transition.OPENED, EffectName.NOTIFY_TEAMS)]
    assert card.status is EffectStatus.PENDING
    assert card.last_error


def test_two_workers_on_the_same_pending_effects_run_each_once(make_runtime, redis_server, sink, clock):
    rt = make_runtime()
    redis_server.stop()
    sink.script([500])
    incident_id = _open(rt)
    assert {e.status for n, e in _effects(rt, incident_id).items() if n[1] is not EffectName.DAY_INDEX} == {
        EffectStatus.PENDING
    }
    redis_server.start()
    clock.advance(3600)
    publishes = []
    cache = rt.responder.integrations.cache
    real_publish = cache.publish

    def counting_publish(*args, **kwargs):
        publishes.append(1)
        return real_publish(*args, **kwargs)

    cache.publish = counting_publish
    barrier = threading.Barrier(2)

    def worker():
        barrier.wait(timeout=10)
        rt.responder.sweep()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(publishes) == 1
    assert len(sink.accepted) == 1
    assert {e.status for e in _effects(rt, incident_id).values()} == {EffectStatus.DONE}


def test_an_alert_storm_for_one_failover_gives_at_most_three_cards(make_runtime, sink, clock):
    rt = make_runtime()
    names = [
        "monitor/activity_log_restart_started.json",
        "monitor/resource_health_degraded_planned.json",
        "monitor/metric_is_db_alive_fired.json",
        "monitor/activity_log_restart_succeeded.json",
        "monitor/metric_is_db_alive_resolved.json",
        "monitor/resource_health_available.json",
    ]
    for _ in range(3):
        for name in names:
            app.post_alert(load(name))
    clock.advance(3600)
    rt.responder.sweep()
    for server in ("pg-prod-01",):
        rt.responder.settle_server(server)
    transitions = [r.card for r in sink.accepted]
    assert 1 <= len(transitions) <= 3
    assert len(sink.accepted) == len({json.dumps(c, sort_keys=True) for c in transitions})


def test_cards_held_back_in_a_maintenance_window_and_resolved_after_it(make_runtime, sink, clock):
    window = "pg-prod-*@2026-11-25T07:00Z/2026-11-25T08:00Z"
    rt = make_runtime(MAINTENANCE_WINDOWS=window, INCIDENT_QUIET_SECONDS="60")
    incident_id = _open(rt)
    assert sink.accepted == []
    app.post_alert(load("monitor/resource_health_available.json"))
    clock.now = T0 + timedelta(minutes=30)
    rt.responder.sweep()  # settles: the resolved card waits for the window's end too
    assert sink.accepted == []
    assert (
        _effects(rt, incident_id)[(Transition.OPENED, EffectName.NOTIFY_TEAMS)].status is EffectStatus.PENDING
    )
    clock.now = T0 + timedelta(hours=1, minutes=1)
    rt.responder.sweep()
    (resolved_card,) = sink.accepted  # the opened card was superseded: the incident ended in the window
    assert "resolved" in json.dumps(resolved_card.card).lower()
    statuses = {
        (n.transition, n.status)
        for n in rt.store.get_incident(incident_id).notifications
        if n.channel == "teams"
    }
    assert (Transition.OPENED, EffectStatus.SUPPRESSED) in statuses
    assert (Transition.RESOLVED, EffectStatus.DONE) in statuses


def test_a_card_held_in_a_window_goes_out_at_its_end_while_the_incident_is_open(make_runtime, sink, clock):
    rt = make_runtime(MAINTENANCE_WINDOWS="pg-prod-*@2026-11-25T07:00Z/2026-11-25T07:30Z")
    incident_id = _open(rt)
    assert sink.accepted == []
    clock.now = T0 + timedelta(minutes=31)
    rt.responder.sweep()
    (opened_card,) = sink.accepted
    assert "Failover in progress" in json.dumps(opened_card.card)
    card = _effects(rt, incident_id)[(Transition.OPENED, EffectName.NOTIFY_TEAMS)]
    assert card.status is EffectStatus.DONE and card.attempts == 1


def test_the_webhook_url_never_leaks(make_runtime, sink, caplog):
    caplog.set_level(logging.DEBUG)
    sink.script([SinkResponse(400, body=f"echo {sink.url}"), 500, 500, 500])
    rt = make_runtime()
    _open(rt)
    app.post_alert(load("monitor/activity_log_restart_succeeded.json"))
    secrets = (sink.url, sink.secret)
    entities = [json.dumps(dict(e), default=str) for e in rt.store._client.list_entities()]
    texts = [r.getMessage() for r in caplog.records] + [str(r.exc_info) for r in caplog.records] + entities
    assert not [t for t in texts if any(s in t for s in secrets)]


def test_removing_a_pointer_twice_is_harmless(make_runtime, clock):
    rt = make_runtime()
    rt.store.schedule_work((), now=clock.now, checks=[Check("settle", "pg-prod-01", clock.now)])
    work = rt.store.due_work(clock.now, 10)
    assert len(work) == 1
    rt.store.finish_work(work)
    rt.store.finish_work(work)  # two sweepers raced: no error
    assert rt.store.pending_work_count() == 0
