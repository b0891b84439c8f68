"""Issue 15: the probe fans out over an Azure Storage queue, served the way the Functions host does.

Real Azurite queue service (127.0.0.1:10001, started when nothing listens), the real
azure-storage-queue client, the real `azure.functions` QueueMessage binding, the local runner's
queue listener; the management API is a fake that notes which shard run checked each server.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from failover.probing import ProbeReport
from failover.shards import PROBE_QUEUE, Shard
from local.runner import FunctionHost, QueueOptions
from local.services import azurite_connection_string
from tests.integration import app_harness as app
from tests.probe_fakes import CountingInspector

pytestmark = pytest.mark.integration

QUEUE_PORT = int(os.environ.get("AZURITE_QUEUE_PORT", "10001"))
TABLE_PORT = int(os.environ.get("AZURITE_TABLE_PORT", "10002"))
KEY = "fanout-test-key"
OPTIONS = QueueOptions(
    batch_size=2,
    new_batch_threshold=1,
    visibility_timeout=timedelta(0),
    max_dequeue_count=2,
    max_polling_interval=timedelta(seconds=0.2),
)


@pytest.fixture(scope="session")
def storage(local_services, azurite) -> str:
    """A connection string reaching Azurite's Table (10002) and Queue (10001) services."""
    local_services.azurite_queue(QUEUE_PORT)
    return azurite_connection_string(TABLE_PORT, QUEUE_PORT)


def _queue(storage: str, name: str) -> QueueClient:
    return QueueClient.from_connection_string(storage, name, message_encode_policy=TextBase64EncodePolicy())


def _wait(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _left(client: QueueClient) -> int:
    try:
        return int(client.get_queue_properties().approximate_message_count or 0)
    except ResourceNotFoundError:  # not created yet: nothing in it
        return 0


# --- the runner serves queue triggers ------------------------------------------------------------


def _queue_app(ok: str, flaky: str, seen: list[tuple[str, bytes, int | None]]) -> func.FunctionApp:
    queue_app = func.FunctionApp()

    @queue_app.queue_trigger(arg_name="msg", queue_name=ok, connection="FANOUT_TEST_STORAGE")
    def takes(msg: func.QueueMessage) -> None:
        seen.append(("ok", msg.get_body(), msg.dequeue_count))

    @queue_app.queue_trigger(arg_name="msg", queue_name=flaky, connection="FANOUT_TEST_STORAGE")
    def fails(msg: func.QueueMessage) -> None:
        seen.append(("flaky", msg.get_body(), msg.dequeue_count))
        raise RuntimeError("this function always fails")

    return queue_app


def test_queue_messages_are_run_once_retried_and_poisoned_like_the_host(storage, monkeypatch):
    monkeypatch.setenv("FANOUT_TEST_STORAGE", storage)
    ok, flaky = f"ok{uuid.uuid4().hex[:10]}", f"flaky{uuid.uuid4().hex[:10]}"
    seen: list[tuple[str, bytes, int | None]] = []
    host = FunctionHost(
        _queue_app(ok, flaky, seen), function_key=KEY, port=0, run_timers=False, queue_options=OPTIONS
    )
    host.start()
    try:
        ok_queue, flaky_queue = _queue(storage, ok), _queue(storage, flaky)
        for client in (ok_queue, flaky_queue):
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
        for n in range(5):
            ok_queue.send_message(f"message {n}")
        flaky_queue.send_message("doomed")
        raw = QueueClient.from_connection_string(storage, ok)  # no encoding: not base64
        raw.send_message("not base64 at all!")
        poison = _queue(storage, f"{ok}-poison")
        _wait(lambda: len([s for s in seen if s[0] == "ok"]) == 5)
        _wait(lambda: len([s for s in seen if s[0] == "flaky"]) == 2)
        _wait(lambda: _left(ok_queue) == 0 and _left(flaky_queue) == 0)
        flaky_poison = QueueClient.from_connection_string(storage, f"{flaky}-poison")
        _wait(lambda: _left(flaky_poison) == 1 and _left(poison) == 1)
    finally:
        host.stop()
    delivered = sorted(body for kind, body, _ in seen if kind == "ok")
    assert delivered == [f"message {n}".encode() for n in range(5)]  # each once, decoded
    assert all(count == 1 for kind, _, count in seen if kind == "ok")
    assert [count for kind, _, count in seen if kind == "flaky"] == [1, 2]  # maxDequeueCount = 2
    moved = [m.content for m in flaky_poison.receive_messages()]
    assert len(moved) == 1


def test_host_json_queue_settings_are_read():
    from local.services import ROOT

    options = QueueOptions.from_host_json(ROOT / "host.json")
    assert options.batch_size == 1 and options.threshold == 1
    assert options.max_dequeue_count == 3
    assert options.visibility_timeout == timedelta(seconds=5)
    assert options.max_polling_interval == timedelta(seconds=2)


# --- the probe timer fans out, the shard function watches ------------------------------------------

SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000015/resourcegroups/rg-fanout"


def test_the_probe_timer_fans_a_large_fleet_out_one_shard_per_message(storage, table_name, monkeypatch):
    import function_app

    ids = [f"{SUBSCRIPTION}/providers/microsoft.dbforpostgresql/flexibleservers/pg-fan-{n}" for n in range(7)]
    env = {
        "AzureWebJobsStorage": storage,
        "FAILOVER_TABLE": table_name,
        "MONITORED_SERVERS": ";".join(ids),
        "PROBE_DB": "off",
        "PROBE_SHARD_SIZE": "3",
        "PROBE_WINDOW_SECONDS": "3",
        "PROBE_ARM_INTERVAL_SECONDS": "0.5",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runtime = app.install(env)
    inspector = CountingInspector()
    runtime.inspector = inspector
    prober = runtime.prober
    runs: list[tuple[str, ...]] = []
    watch = prober.run_once

    def noted(**kwargs):
        runs.append(tuple(sorted(kwargs["targets"])))
        return watch(**kwargs)

    monkeypatch.setattr(prober, "run_once", noted)
    queue = QueueClient.from_connection_string(
        storage, PROBE_QUEUE, message_decode_policy=TextBase64DecodePolicy()
    )
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    queue.clear_messages()

    app.call("probe_servers", timer=None)  # a fleet over PROBE_SHARD_SIZE: the timer only enqueues

    shards = [Shard.from_json(m.content) for m in queue.peek_messages(max_messages=32)]
    assert sorted(len(s.targets) for s in shards) == [2, 2, 3]
    assert sorted(t for s in shards for t in s.targets) == sorted(ids)
    assert runs == [] and inspector.calls == {}

    # Room for every shard at once, as three instances would take them.
    options = replace(OPTIONS, batch_size=3, new_batch_threshold=0)
    host = FunctionHost(function_app.app, function_key=KEY, port=0, run_timers=False, queue_options=options)
    host.start()
    try:
        _wait(lambda: _left(queue) == 0 and len(runs) == 3)
        _wait(lambda: len(runtime.store.probe_health()) == 7)
    finally:
        host.stop()
        app.set_runtime(None)
    # One run per message, each watching its own servers, again and again within its window.
    assert sorted(runs) == sorted(tuple(sorted(s.targets)) for s in shards)
    assert min(inspector.calls.values()) >= 2, inspector.calls
    rows = runtime.store.probe_health()
    assert {r["arm"] for r in rows} == {"ok"}


def test_a_late_or_malformed_shard_message_is_dropped_without_watching():
    now = datetime.now(timezone.utc)
    late = Shard(
        0, 1, (f"{SUBSCRIPTION}/providers/microsoft.dbforpostgresql/flexibleservers/pg-x",), now, now
    )
    assert late.window_at(now + timedelta(seconds=1), timedelta(seconds=50)) is None
    with pytest.raises(ValueError):
        Shard.from_json('{"v": 1, "shard": 0, "of": 1, "targets": ["/not/a/server"]}')


def _shard_message(shard: Shard, message_id: str) -> func.QueueMessage:
    return func.QueueMessage(id=message_id, body=shard.to_json().encode())


def test_an_instance_takes_back_the_shard_it_watched_whichever_message_it_gets(
    storage, table_name, monkeypatch
):
    """Two instances (two runtimes on one Azurite table) swap messages between ticks: each watches
    the servers it watched before, through the real Table client's claims; a retried message
    watches what it claimed, and a message more than the tick has shards watches nothing."""
    from failover.shards import plan

    ids = tuple(
        f"{SUBSCRIPTION}/providers/microsoft.dbforpostgresql/flexibleservers/pg-aff-{n}" for n in range(6)
    )
    env = {"AzureWebJobsStorage": storage, "FAILOVER_TABLE": table_name, "MONITORED_SERVERS": ";".join(ids)}
    watched: list[tuple[str, tuple[str, ...]]] = []

    def instance(name: str):
        runtime = app.install({**env, "PROBE_DB": "off"})

        def noted(*, targets, window):
            watched.append((name, tuple(targets)))
            return ProbeReport()

        monkeypatch.setattr(runtime.prober, "run_once", noted)
        return runtime

    def deliver(*messages) -> list[tuple[str, tuple[str, ...]]]:
        """Each (instance, shard, message id) in turn, as the host calls the function; what ran."""
        watched.clear()
        for runtime, shard, message_id in messages:
            app.set_runtime(runtime)
            app.call("probe_shard", message=_shard_message(shard, message_id))
        return list(watched)

    a, b = instance("a"), instance("b")
    now = datetime.now(timezone.utc)
    first, second = (
        plan(ids, shard_size=3, issued_at=at, window=timedelta(seconds=50))
        for at in (now, now + timedelta(seconds=1))
    )
    try:
        ran = deliver((a, first[0], "t1-0"), (b, first[1], "t1-1"))
        assert ran == [("a", first[0].targets), ("b", first[1].targets)]
        # Next tick the host hands a the message of b's shard first, and b the other one.
        ran = deliver((a, second[1], "t2-1"), (b, second[0], "t2-0"))
        assert ran == [("a", second[0].targets), ("b", second[1].targets)]
        # The host's retry of b's message, then one message more than the tick has shards.
        ran = deliver((b, second[0], "t2-0"), (b, second[0], "t2-extra"))
        assert ran == [("b", second[1].targets)]
    finally:
        app.set_runtime(None)
