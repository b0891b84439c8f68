"""Shared fixtures: real local services for integration tests, started when they are not running.

Azurite (Table storage) is started on 127.0.0.1:10002 unless something already listens there
(CI starts it once in `.ci/run`). Each test gets its own table, so tests never see each other's rows.
Nothing here skips: a service that cannot be started fails the test with the reason.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from local.services import LocalServices

# Real PostgreSQL pair and management API emulator fixtures, shared by every test module.
pytest_plugins = ["tests.integration.pg_fixtures"]

AZURITE_PORT = int(os.environ.get("AZURITE_TABLE_PORT", "10002"))
_tables = itertools.count()


@pytest.fixture(scope="session")
def local_services() -> Iterator[LocalServices]:
    services = LocalServices()
    yield services
    services.stop()


@pytest.fixture(scope="session")
def azurite(local_services: LocalServices) -> str:
    """The Table storage connection string of a running Azurite."""
    return local_services.azurite(AZURITE_PORT)


@pytest.fixture
def table_name() -> str:
    return f"t{uuid.uuid4().hex[:12]}{next(_tables)}"


@pytest.fixture
def store(azurite: str, table_name: str):
    from failover.adapters.table_store import TableStore

    table_store = TableStore.from_connection_string(azurite, table_name)
    table_store.ensure_table()
    yield table_store
    table_store._client.delete_table()


class FakeClock:
    """A settable clock for tests: aware UTC, moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 25, 7, 30, tzinfo=timezone.utc)
        self.tick = 0.0  # seconds each reading moves the clock on (0: it moves only when told)

    def __call__(self) -> datetime:
        now = self.now
        if self.tick:
            self.now += timedelta(seconds=self.tick)
        return now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
