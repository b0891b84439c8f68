"""local.pgpair against real PostgreSQL 15: replication, failovers, rebuild, clean stop."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from local import pgpair

pytestmark = pytest.mark.integration


def _connect(conninfo: str, password: str) -> psycopg.Connection:
    return psycopg.connect(conninfo, password=password, autocommit=True)


def _write_bounded(conninfo: str, password: str, value: str, *, timeout: float = 5.0) -> int:
    """Insert one row through ``conninfo``; fail if the commit does not return within ``timeout``."""
    ports: list[int] = []
    errors: list[Exception] = []

    def work() -> None:
        try:
            with _connect(conninfo, password) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS pgpair_t (v text primary key)")
                conn.execute("INSERT INTO pgpair_t VALUES (%s)", (value,))
                row = conn.execute("SELECT inet_server_port()").fetchone()
                ports.append(int(row[0]) if row else -1)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), (
        f"a commit did not return within {timeout}s (synchronous_standby_names left set?)"
    )
    assert not errors, errors
    return ports[0]


def _visible_on(pair: pgpair.PgPair, node: pgpair.PgNode, password: str, value: str) -> bool:
    # synchronous_commit=on waits for the standby to flush, not to replay: until it replays the
    # CREATE TABLE the table is simply not there yet.
    with _connect(pair.conninfo(node=node), password) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM pgpair_t WHERE v = %s", (value,)).fetchone()
        except psycopg.errors.UndefinedTable:
            return False
    return bool(row and row[0] == 1)


def test_pair_streams_synchronously_and_standby_sees_writes(pg_pair, pg_password, wait_until):
    pair = pg_pair
    assert pair.primary.port != pair.standby.port
    assert 5432 not in (pair.primary.port, pair.standby.port)
    assert pgpair.is_synchronous(pair)
    with _connect(pair.conninfo(node=pair.primary), pg_password) as conn:
        assert conn.execute("SHOW synchronous_standby_names").fetchone() == ("*",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
    with _connect(pair.conninfo(node=pair.standby), pg_password) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        # The standby carries the same setting: a promotion must clear it (see failover tests).
        assert conn.execute("SHOW synchronous_standby_names").fetchone() == ("*",)

    value = f"sync-{uuid.uuid4()}"
    port = _write_bounded(pair.conninfo(), pg_password, value)
    assert port == pair.primary.port
    wait_until(
        "the row on the standby", lambda: _visible_on(pair, pair.standby, pg_password, value), timeout=5
    )

    # The standby refuses writes: it is a hot standby.
    with _connect(pair.conninfo(node=pair.standby), pg_password) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO pgpair_t VALUES ('nope')")


def test_password_is_required_over_tcp(pg_pair):
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(pg_pair.conninfo(node=pg_pair.primary), password="wrong", connect_timeout=2).close()
    assert "password authentication failed" in str(err.value)


def test_failovers_rebuild_and_clean_stop(pg_pair_factory, pg_password, wait_until):
    pair = pg_pair_factory("failover")
    first_primary, first_standby = pair.primary, pair.standby
    conninfo = pair.conninfo()
    before = f"before-{uuid.uuid4()}"
    _write_bounded(conninfo, pg_password, before)

    # Forced failover: immediate stop, promote, synchronous_standby_names cleared.
    timing = pgpair.failover(pair, mode="forced")
    assert pair.primary is first_standby and pair.standby is first_primary
    names = [s.name for s in timing.steps]
    assert names[:2] == ["start", "primary_stopped"]
    assert {"promote_requested", "promoted", "sync_standby_names_cleared", "writable", "done"} <= set(names)
    assert 0 < timing.duration_seconds < 20
    assert timing.steps[0].wall.tzinfo is not None
    assert not pgpair.node_running(first_primary)

    # The same conninfo (the "endpoint") now reaches the new primary, and commits do not hang.
    assert pair.conninfo() == conninfo
    after = f"after-{uuid.uuid4()}"
    assert _write_bounded(conninfo, pg_password, after) == first_standby.port
    with _connect(conninfo, pg_password) as conn:
        assert conn.execute("SHOW synchronous_standby_names").fetchone() == ("",)
        rows = {r[0] for r in conn.execute("SELECT v FROM pgpair_t").fetchall()}
    assert {before, after} <= rows  # synchronous replication: nothing committed was lost

    # Rebuild: the old primary becomes a synchronous standby of the new primary.
    pgpair.rebuild_standby(pair)
    assert pgpair.is_synchronous(pair)
    with _connect(pair.conninfo(node=pair.primary), pg_password) as conn:
        assert conn.execute("SHOW synchronous_standby_names").fetchone() == ("*",)
    rebuilt = f"rebuilt-{uuid.uuid4()}"
    _write_bounded(conninfo, pg_password, rebuilt)
    wait_until(
        "the row on the rebuilt standby",
        lambda: _visible_on(pair, first_primary, pg_password, rebuilt),
        timeout=5,
    )

    # Planned failover back: checkpoint, fast shutdown, standby caught up, promote.
    timing = pgpair.failover(pair, mode="planned")
    names = [s.name for s in timing.steps]
    assert names.index("checkpointed") < names.index("primary_stopped") < names.index("promote_requested")
    assert "standby_caught_up" in names
    assert pair.primary is first_primary
    assert _write_bounded(conninfo, pg_password, f"planned-{uuid.uuid4()}") == first_primary.port

    # Stop: bounded, idempotent, nothing of the pair left running.
    started = time.monotonic()
    pgpair.stop_pair(pair)
    pgpair.stop_pair(pair)
    assert time.monotonic() - started < 20
    assert pgpair.pair_processes(pair) == []
    assert not any(pgpair.node_running(n) for n in pair.nodes)
    pg_pair_factory.discard(pair)


def test_kill_and_promote_are_separate_steps(fresh_pg_pair, pg_password):
    pair = fresh_pg_pair
    old_primary, old_standby = pair.primary, pair.standby
    pgpair.kill_primary(pair)
    assert not pgpair.node_running(old_primary)
    assert pair.primary is old_primary  # nothing promoted yet: only "Azure" decides that
    with pytest.raises(psycopg.OperationalError):
        _connect(pair.conninfo(), pg_password).close()
    pgpair.promote_standby(pair)
    assert pair.primary is old_standby
    _write_bounded(pair.conninfo(), pg_password, f"promoted-{uuid.uuid4()}")
