"""Pytest fixtures for real PostgreSQL pairs and the local ARM emulator.

Layer: test support. Load it with ``pytest_plugins = ["tests.integration.pg_fixtures"]`` (in a
test module, as this project's integration tests do, or in the root ``conftest.py``): then one
session pair is shared by every module. Importing fixtures directly
(``from tests.integration.pg_fixtures import pg_pair  # noqa: F401``) also works, but gives each
importing module its own session-scoped instances. It never skips: a missing PostgreSQL 15
fails with a clear message. Every pair it starts is stopped at the end (function pairs after
their test, the shared one at session end) and its directory removed; nothing is left running.

The plain helpers ``wait_until``, ``make_client_factory``, ``make_emulator`` and
``require_postgres`` can be imported; ``wait_until``, ``make_arm_client_factory``,
``make_arm_emulator``, ``arm_subscription`` and ``arm_token`` are also fixtures, so that a module
that loads this file with ``pytest_plugins`` need not import it (importing it first defeats
pytest's assertion rewriting here and warns).

Fixtures:
- ``pg_password`` (session): the ``app`` role's password, random per session.
- ``pg_pair_factory`` (session): ``factory(label) -> PgPair``; ``factory.discard(pair)`` stops one early.
- ``pg_pair`` (session): a shared healthy pair; tests must leave it healthy (primary ``a``-or-``b``
  writable, standby synchronous) and must not fail it over.
- ``fresh_pg_pair`` (function): a pair of the test's own, to fail over, kill or restart.
- ``arm_emulator`` (function): a started ``ArmEmulator`` (subscription ``TEST_SUBSCRIPTION``,
  watchdog every 0.25 s, each HA phase shown for at least 0.3 s); stopped after the test.
- ``arm_inspector`` (function): a ``ManagementApiInspector`` on the real SDK against ``arm_emulator``
  (static token, one attempt, short timeouts, fast polling).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from failover.adapters.arm import (
    CachedClientFactory,
    ManagementApiInspector,
    build_client_factory,
    static_credential,
)
from local import pgpair
from local.arm_emulator import ArmEmulator
from local.pgpair import PgPair

logger = logging.getLogger(__name__)

TEST_SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
TEST_TOKEN = "local-test-token-0f9e8d7c"  # a fake bearer token; tests check it never leaks


def require_postgres() -> None:
    """Fail (never skip) with a clear message when PostgreSQL 15 cannot be used here."""
    initdb = pgpair.PG_BIN / "initdb"
    if not initdb.exists():
        pytest.fail(
            f"PostgreSQL 15 binaries not found at {pgpair.PG_BIN} "
            "(install postgresql-15 or set PGPAIR_PG_BIN)",
            pytrace=False,
        )
    if os.geteuid() == 0 and shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin") is None:
        pytest.fail("running as root needs runuser to run PostgreSQL as the postgres user", pytrace=False)


class PairFactory:
    """Starts pairs in fresh temporary directories and stops every one of them on close."""

    def __init__(self, password: str) -> None:
        self.password = password
        self._pairs: list[PgPair] = []

    def __call__(self, label: str = "pair") -> PgPair:
        require_postgres()
        base = Path(tempfile.mkdtemp(prefix=f"pgpair-{label}-"))
        try:
            pair = pgpair.start_pair(base, password=self.password)
        except Exception as exc:
            shutil.rmtree(base, ignore_errors=True)
            pytest.fail(f"could not start a PostgreSQL pair: {exc}", pytrace=False)
        self._pairs.append(pair)
        return pair

    def discard(self, pair: PgPair) -> None:
        pgpair.stop_pair(pair)
        leftovers = pgpair.pair_processes(pair)
        if leftovers:
            logger.error("pair under %s left processes %s", pair.base_dir, leftovers)
        shutil.rmtree(pair.base_dir, ignore_errors=True)
        with contextlib.suppress(ValueError):
            self._pairs.remove(pair)

    def close(self) -> None:
        for pair in list(self._pairs):
            try:
                self.discard(pair)
            except Exception:
                logger.exception("could not stop the pair under %s", pair.base_dir)


@pytest.fixture(scope="session")
def pg_password() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="session")
def pg_pair_factory(pg_password: str) -> Iterator[PairFactory]:
    factory = PairFactory(pg_password)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def pg_pair(pg_pair_factory: PairFactory) -> PgPair:
    return pg_pair_factory("shared")


@pytest.fixture
def fresh_pg_pair(pg_pair_factory: PairFactory) -> Iterator[PgPair]:
    pair = pg_pair_factory("fresh")
    try:
        yield pair
    finally:
        pg_pair_factory.discard(pair)


def make_emulator(**kwargs: Any) -> ArmEmulator:
    options: dict[str, Any] = {
        "subscription_id": TEST_SUBSCRIPTION,
        "watchdog_interval": 0.25,
        "min_phase_seconds": 0.3,
        "fake_step_seconds": 0.1,
    }
    options.update(kwargs)
    return ArmEmulator(**options).start()


@pytest.fixture
def arm_emulator() -> Iterator[ArmEmulator]:
    emulator = make_emulator()
    try:
        yield emulator
    finally:
        emulator.stop(timeout=30)


def make_client_factory(
    base_url: str,
    *,
    token: str = TEST_TOKEN,
    retry_total: int = 0,
    read_timeout: float = 2.0,
    connection_timeout: float = 1.0,
    polling_interval: float = 0.05,
) -> CachedClientFactory:
    return build_client_factory(
        static_credential(token),
        base_url=base_url,
        read_timeout=read_timeout,
        connection_timeout=connection_timeout,
        retry_total=retry_total,
        polling_interval=polling_interval,
    )


@pytest.fixture
def arm_client_factory(arm_emulator: ArmEmulator) -> Iterator[CachedClientFactory]:
    factory = make_client_factory(arm_emulator.base_url)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def arm_inspector(arm_client_factory: CachedClientFactory) -> ManagementApiInspector:
    return ManagementApiInspector(arm_client_factory, failover_timeout=60)


@pytest.fixture
def arm_subscription() -> str:
    """The emulator's subscription id."""
    return TEST_SUBSCRIPTION


@pytest.fixture
def arm_token() -> str:
    """The fake bearer token the ``arm_*`` fixtures send (tests check it never leaks)."""
    return TEST_TOKEN


@pytest.fixture(name="make_arm_client_factory")
def make_arm_client_factory_fixture() -> Callable[..., CachedClientFactory]:
    """``make_client_factory`` as a fixture (for modules that load this file with pytest_plugins)."""
    return make_client_factory


@pytest.fixture(name="make_arm_emulator")
def make_arm_emulator_fixture() -> Callable[..., ArmEmulator]:
    """``make_emulator`` as a fixture: a started emulator the test must stop itself."""
    return make_emulator


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    """``wait_until`` as a fixture."""
    return wait_until


def wait_until(what: str, predicate: Callable[[], Any], *, timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (bounded by time and count); fail otherwise."""
    import time

    deadline = time.monotonic() + timeout
    last: Any = None
    for _ in range(int(timeout / interval) + 2):
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})", pytrace=False)
