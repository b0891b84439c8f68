"""Faults during an alert storm, through the real HTTP endpoints, against real Azurite and Redis.

Every test ends with the same checks (`stack.check_outcome`): each signal recorded once (timeline
length = signal_count = distinct signals sent, per server), every incident consistent and
resolved, every effect done exactly once (cards counted at the Teams sink, Redis publishes
counted by a subscriber) or dead and shown on the timeline, and Redis at the newest version.
Every wait is bounded; the whole module runs in about a minute and a half.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from failover.adapters import table_codec as codec
from failover.model import EffectName, EffectStatus, Signal
from failover.sources.event_grid import parse_event
from failover.sources.monitor import parse_alert
from local.services import LocalServices, azurite_binary, azurite_connection_string, free_port, wait_for_port
from local.teams_sink import SinkResponse
from tests.integration.redis_fixtures import RedisServer
from tests.reliability.stack import (
    Sent,
    check_outcome,
    install_runtime,
    replay_failed,
    send_all,
    settle_everything,
)
from tests.reliability.workload import ALERT, Delivery, Workload, one_server_storm, zone_outage

pytestmark = pytest.mark.integration


def thirds(workload: Workload) -> tuple[list[Delivery], list[Delivery], list[Delivery]]:
    items = workload.deliveries
    a, b = len(items) // 3, 2 * len(items) // 3
    return items[:a], items[a:b], items[b:]


def signals_of(delivery: Delivery, received: datetime) -> list[Signal]:
    if delivery.kind == ALERT:
        return list(parse_alert(delivery.body, received_at=received).signals)
    return [s for event in delivery.body for s in parse_event(event, received_at=received).signals]


# --- Redis down ------------------------------------------------------------------------------


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server that keeps its data across stop/start (append-only file), like a managed cache."""
    with RedisServer(extra=("--appendonly", "yes", "--appendfsync", "always")) as server:
        yield server


def test_redis_stopped_for_30_seconds_mid_storm(make_stack, redis_server: RedisServer) -> None:
    stack = make_stack()
    workload = zone_outage(24, prefix="pg-redis", seed=1)
    before, during, after = thirds(workload)
    sent = send_all(stack.served, before)
    redis_server.stop()
    stopped = time.monotonic()
    sent += send_all(stack.served, during)  # the record never waits for Redis: still 202
    time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
    subscriptions = stack.subscriber.subscriptions
    redis_server.start()
    stack.subscriber.wait_resubscribed(subscriptions)
    sent += send_all(stack.served, after)
    assert Counter(s.status for s in sent) == {202: len(workload.deliveries)}

    waiting = [
        e
        for server in workload.servers
        for i in stack.runtime.store.incidents_of_server(
            server, since=None, until=None, status=None, limit=10, after=None
        ).incidents
        for e in stack.runtime.store.effects_of(i.incident_id)
        if e.name is EffectName.REDIS_TOPOLOGY and e.status is EffectStatus.PENDING
    ]
    assert waiting, "the outage should have left Redis refreshes pending for the sweeper"
    assert all(e.last_error and "redis" in e.last_error for e in waiting)

    settle_everything(stack.runtime, stack.clock.advance)
    check_outcome(stack.runtime, workload, sink=stack.sink, subscriber=stack.subscriber).check()


# --- Teams throttling and failing ------------------------------------------------------------


def test_teams_answering_429_and_500_for_a_while(make_stack) -> None:
    stack = make_stack()
    trouble: list[SinkResponse | int] = []
    for n in range(36):
        trouble.append(SinkResponse(429, {"Retry-After": "1"}) if n % 3 == 0 else 500 if n % 3 == 1 else 503)
    stack.sink.script(trouble)
    workload = zone_outage(20, prefix="pg-teams", seed=2)
    sent = send_all(stack.served, workload.deliveries)
    assert Counter(s.status for s in sent) == {202: len(workload.deliveries)}
    settle_everything(stack.runtime, stack.clock.advance)  # the outbox is the one retry policy
    refused = [r for r in stack.sink.received if r.status >= 400]
    assert len(refused) == len(trouble), "every scripted 429/500/503 should have been met"
    outcome = check_outcome(stack.runtime, workload, sink=stack.sink, subscriber=stack.subscriber)
    outcome.check()
    assert outcome.dead == 0  # 429 and 5xx are retried, never given up on within 8 attempts
    assert len(stack.sink.accepted) == outcome.cards


# --- Azurite restarted -----------------------------------------------------------------------


class DiskAzurite:
    """An Azurite of this test's own, keeping its data on disk so that a restart loses nothing."""

    def __init__(self, services: LocalServices) -> None:
        self.services = services
        self.port = free_port()
        self.location = tempfile.mkdtemp(prefix="azurite-disk-")
        services.temp_dirs.append(self.location)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return azurite_connection_string(self.port)

    def start(self) -> None:
        process = subprocess.Popen(
            [
                str(azurite_binary()),
                "--tableHost", "127.0.0.1",
                "--tablePort", str(self.port),
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--location", self.location,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.process = process
        self.services.processes.append(process)
        wait_for_port(self.port, seconds=30, process=process)

    def stop(self) -> None:
        """A clean shutdown (SIGINT): Azurite writes its database before it exits."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def disk_azurite() -> Iterator[DiskAzurite]:
    services = LocalServices()
    azurite = DiskAzurite(services)
    azurite.start()
    try:
        yield azurite
    finally:
        services.stop()
        shutil.rmtree(azurite.location, ignore_errors=True)


def test_azurite_restarted_mid_storm(make_stack, disk_azurite: DiskAzurite) -> None:
    stack = make_stack(storage=disk_azurite.connection_string)
    workload = zone_outage(24, prefix="pg-azurite", seed=3)
    before, during, after = thirds(workload)
    sent = send_all(stack.served, before)

    results: list[Sent] = []
    # paced, so that the storm goes on before, during and after the outage
    storm = threading.Thread(
        target=lambda: results.extend(send_all(stack.served, during, workers=4, pace=0.1))
    )
    storm.start()
    time.sleep(0.3)  # requests are in flight when storage goes away
    disk_azurite.stop()
    time.sleep(3.0)
    disk_azurite.start()
    storm.join(timeout=120)
    assert not storm.is_alive()
    sent += results + send_all(stack.served, after)

    failed = [s for s in sent if s.failed]
    assert failed, "the restart should have failed some deliveries"
    assert {s.status for s in failed} <= {500, 503}, "storage outages answer 503 (alerts) or 500 (Event Grid)"
    assert all(s.status != 500 for s in failed if s.delivery.kind == ALERT)
    _assert_all_or_nothing(stack, failed)

    sent = replay_failed(stack.served, sent)
    assert not [s for s in sent if s.failed], "Azure-style retries after the restart must succeed"
    settle_everything(stack.runtime, stack.clock.advance)
    check_outcome(stack.runtime, workload, sink=stack.sink, subscriber=stack.subscriber).check()


def _assert_all_or_nothing(stack, failed: list[Sent]) -> None:
    """A refused delivery left each of its signals either fully recorded or not at all."""
    store = stack.runtime.store
    for sent in failed:
        for signal_ in signals_of(sent.delivery, stack.clock()):
            rows = store._query(
                "PartitionKey eq @pk and ( RowKey eq @seen or RowKey eq @entry )",
                {
                    "pk": signal_.server,
                    "seen": codec.seen_key(signal_.key_hash),
                    "entry": codec.signal_key(signal_),
                },
            )
            assert len(rows) in (0, 2), f"{signal_.signal_id}: partial record {[r['RowKey'] for r in rows]}"


# --- a worker killed between recording and running effects -----------------------------------


class WorkerKilled(BaseException):
    """The worker process dies: nothing after this point runs (not an Exception: nothing catches it)."""


def test_worker_killed_between_recording_and_effects(make_stack) -> None:
    stack = make_stack()
    workload = zone_outage(12, prefix="pg-killed", seed=4)
    dead = stack.runtime.responder

    def die_before_effects(pointers: object) -> None:
        raise WorkerKilled

    def die_holding_the_lease(effect: object) -> object:
        raise WorkerKilled  # the lease (RUNNING, attempts + 1) is already stored

    killed = 0
    for n, delivery in enumerate(workload.deliveries):
        # half of the servers die right after the record, the other half in the middle of an effect
        if int(delivery.server.rsplit("-", 1)[1]) % 2:
            dead._run_now = die_before_effects
        else:
            dead._perform = die_holding_the_lease
        for signal_ in signals_of(delivery, stack.clock()):
            try:
                dead.record(signal_)
            except WorkerKilled:
                killed += 1
        for name in ("_run_now", "_perform"):
            vars(dead).pop(name, None)
        assert n < 10_000
    assert killed > 0
    assert stack.sink.accepted == [] and stack.subscriber.messages == []

    fresh = install_runtime(stack.env, stack.clock)  # a new worker: its own clients and responder
    stack.runtime = fresh
    leased = _effects(fresh, workload, EffectStatus.RUNNING)
    assert leased, "the killed workers should have left effects under a live lease"
    fresh.responder.sweep(limit=1000)  # the lease is still live: those effects must not run yet
    assert _effects(fresh, workload, EffectStatus.RUNNING) == leased
    stack.clock.advance(61)  # past the 60 s lease
    settle_everything(fresh, stack.clock.advance)
    check_outcome(fresh, workload, sink=stack.sink, subscriber=stack.subscriber).check()
    taken_over = [e for e in _effects(fresh, workload, None) if (e.incident_id, e.effect_key) in leased]
    assert len(taken_over) == len(leased)
    assert all(e.status is EffectStatus.DONE and e.attempts == 2 for e in taken_over)


def _effects(runtime, workload: Workload, status: EffectStatus | None) -> set | list:
    found = [
        e
        for s in workload.servers
        for i in runtime.store.incidents_of_server(
            s, since=None, until=None, status=None, limit=10, after=None
        ).incidents
        for e in runtime.store.effects_of(i.incident_id)
    ]
    if status is None:
        return found
    return {(e.incident_id, e.effect_key) for e in found if e.status is status}


# --- eight workers on one server -------------------------------------------------------------


def test_eight_workers_on_the_same_server(make_stack) -> None:
    stack = make_stack()
    workload = one_server_storm("pg-hot-01", failovers=5, seed=5)
    stack.clock.now = workload.last_observed + timedelta(minutes=1)
    sent: list[Sent] = []
    for failover in range(5):  # one failover after the other; within one, everything at once
        batch = [d for d in workload.deliveries if d.key.split("#")[1] == str(failover)]
        # every payload is delivered twice, by different workers, at the same time
        sent += send_all(stack.served, [d for d in batch for _ in range(2)], workers=8)
    retried = sum(1 for s in sent if s.failed)
    sent = replay_failed(stack.served, sent)
    assert not [s for s in sent if s.failed]
    assert retried == 0, f"{retried} deliveries answered 503 after every compare-and-swap retry"
    recorded = Counter(
        o["signal_id"]
        for s in sent
        if s.delivery.kind == ALERT
        for o in s.body["signals"]
        if o["status"] == "recorded"
    )
    assert all(n == 1 for n in recorded.values()), "a signal was recorded by two workers"
    settle_everything(stack.runtime, stack.clock.advance)
    outcome = check_outcome(stack.runtime, workload, sink=stack.sink, subscriber=stack.subscriber)
    outcome.check()
    assert outcome.incidents == 5


def test_the_checks_catch_a_lost_signal(make_stack) -> None:
    """The end-of-test checks are not vacuous: a timeline entry deleted behind the app's back is reported."""
    stack = make_stack()
    workload = zone_outage(3, prefix="pg-check", seed=6, duplicates=0)
    send_all(stack.served, workload.deliveries)
    settle_everything(stack.runtime, stack.clock.advance)
    check_outcome(stack.runtime, workload, sink=stack.sink, subscriber=stack.subscriber).check()
    client = stack.runtime.store._client
    entry = next(e for e in client.list_entities() if e["RowKey"].startswith("signal~"))
    client.delete_entity(entry["PartitionKey"], entry["RowKey"])
    outcome = check_outcome(stack.runtime, workload, sink=stack.sink, subscriber=stack.subscriber)
    assert any(p.startswith(entry["PartitionKey"]) for p in outcome.problems)
