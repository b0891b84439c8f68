"""Fixtures of the reliability suite: real Azurite, redis-server and Teams sink, the app over HTTP.

Nothing here skips: the services are started by the fixtures (tests/conftest.py starts Azurite
when nothing listens on its port; redis-server and the Teams sink are started per test).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from failover.wiring import Runtime
from handlers._runtime import set_runtime
from local.teams_sink import TeamsSink
from tests.conftest import FakeClock
from tests.integration.redis_fixtures import RedisServer
from tests.reliability.stack import Served, Subscriber, install_runtime
from tests.reliability.workload import T0

pytestmark = pytest.mark.integration


@dataclass
class Stack:
    """Everything one fault test drives: services, the runtime, the app over HTTP, observers."""

    runtime: Runtime
    served: Served
    sink: TeamsSink
    redis: RedisServer
    subscriber: Subscriber
    clock: FakeClock
    env: dict[str, str]


@pytest.fixture
def sink() -> Iterator[TeamsSink]:
    with TeamsSink() as teams:
        yield teams


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def make_stack(
    azurite: str, table_name: str, sink: TeamsSink, redis_server: RedisServer
) -> Iterator[Callable[..., Stack]]:
    """Build the stack (optionally against another Azurite); everything is torn down afterwards."""
    made: list[Stack] = []

    def make(*, storage: str | None = None, **extra: str) -> Stack:
        clock = FakeClock(T0 + timedelta(minutes=10))
        env = {
            "AzureWebJobsStorage": storage or azurite,
            "FAILOVER_TABLE": table_name,
            "REDIS_URL": redis_server.url,
            "TEAMS_WEBHOOK_URL": sink.url,
            "PUBLIC_BASE_URL": "https://pgfailover.example.net",
            **extra,
        }
        runtime = install_runtime(env, clock)
        served = Served().start()
        subscriber = Subscriber(redis_server.port, password=redis_server.password).start()
        stack = Stack(runtime, served, sink, redis_server, subscriber, clock, env)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.subscriber.stop()
        stack.served.stop()
        with contextlib.suppress(Exception):  # the table may live in an Azurite the test stopped
            stack.runtime.store._client.delete_table()
    set_runtime(None)
