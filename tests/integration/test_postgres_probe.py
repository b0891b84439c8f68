"""PostgresProbe against real PostgreSQL 15 (the local synchronous pair)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from failover.adapters.postgres import (
    APPLICATION_NAME,
    CREATE_TABLE_SQL,
    HEARTBEAT_TABLE,
    PostgresProbe,
    entra_token_provider,
)
from local import pgpair

pytestmark = pytest.mark.integration

SERVER = "pg-local-01"


def _probe(conninfo: str, password: str | None, **kwargs) -> PostgresProbe:
    options: dict[str, Any] = {"probe_id": f"test-{uuid.uuid4().hex[:8]}", "create_table": True}
    options.update(kwargs)
    return PostgresProbe(
        lambda server: conninfo, (lambda server: password) if password is not None else None, **options
    )


def _admin(pair: pgpair.PgPair, password: str) -> psycopg.Connection:
    return psycopg.connect(pair.conninfo(), password=password, autocommit=True)


def _heartbeat(pair, password, probe_id, schema=None):
    """(beat_at, beats) of the probe's row, in `schema` when given (else the role's search_path)."""
    table = f"{schema}.{HEARTBEAT_TABLE}" if schema else HEARTBEAT_TABLE
    with _admin(pair, password) as conn:
        return conn.execute(f"SELECT beat_at, beats FROM {table} WHERE probe_id = %s", (probe_id,)).fetchone()


def test_writable_primary_heartbeat_once_per_check_and_connection_reuse(pg_pair, pg_password):
    probe = _probe(pg_pair.conninfo(), pg_password)
    try:
        first = probe.check(SERVER)
        assert first.ok, first.error
        assert (first.server, first.connected, first.writable, first.in_recovery) == (
            SERVER,
            True,
            True,
            False,
        )
        assert first.error is None
        assert first.started_at <= first.finished_at and first.started_at.tzinfo is not None
        assert first.postmaster_started_at is not None and first.postmaster_started_at.tzinfo is not None
        assert first.postmaster_started_at < datetime.now(timezone.utc) + timedelta(seconds=1)
        beat_at_1, beats_1 = _heartbeat(pg_pair, pg_password, probe.probe_id)
        assert beats_1 == 1

        second = probe.check(SERVER)
        assert second.ok and second.postmaster_started_at == first.postmaster_started_at
        beat_at_2, beats_2 = _heartbeat(pg_pair, pg_password, probe.probe_id)
        assert beats_2 == 2 and beat_at_2 > beat_at_1

        # One row per probe instance, one kept session per server, with its timeouts set.
        with _admin(pg_pair, pg_password) as conn:
            sessions = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APPLICATION_NAME,)
            ).fetchone()
            assert sessions == (1,)
            rows = conn.execute(
                f"SELECT count(*) FROM {HEARTBEAT_TABLE} WHERE probe_id = %s", (probe.probe_id,)
            ).fetchone()
            assert rows == (1,)
    finally:
        probe.close()


def test_a_kept_session_on_the_primary_costs_one_statement_per_check(pg_pair, pg_password, tmp_path):
    """The first check of a session asks which node it reached; later ones only commit the
    heartbeat, which answers the postmaster's start too (libpq's own trace of the wire counts)."""
    probe = _probe(pg_pair.conninfo(), pg_password)
    try:
        first = probe.check(SERVER)
        assert first.ok, first.error
        conn = probe._slots[SERVER].conn  # the kept session, traced by libpq itself
        assert conn is not None
        trace = tmp_path / "wire.trace"
        with trace.open("w") as sink:
            conn.pgconn.trace(sink.fileno())
            later = [probe.check(SERVER) for _ in range(3)]
            conn.pgconn.untrace()
        wire = trace.read_text()
        statements = [line for line in wire.splitlines() if "\tF\t" in line and "\tParse\t" in line]
        assert all(c.ok and c.postmaster_started_at == first.postmaster_started_at for c in later)
        assert len(statements) == 3, wire
        assert wire.count("RETURNING pg_postmaster_start_time()") == 3 and "pg_is_in_recovery" not in wire
        assert _heartbeat(pg_pair, pg_password, probe.probe_id)[1] == 4
    finally:
        probe.close()


def test_the_conninfos_own_options_are_kept_beside_the_probes_bounds(pg_pair, pg_password):
    """A conninfo's `options` (a search_path here) reach the server with the probe's timeouts: the
    heartbeat lands in the schema the conninfo names, and the statement timeout is the probe's."""
    schema = f"probe_{uuid.uuid4().hex[:8]}"
    with _admin(pg_pair, pg_password) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    conninfo = f"{pg_pair.conninfo()} options='-csearch_path={schema} -cstatement_timeout=99999'"
    probe = _probe(conninfo, pg_password, statement_timeout_ms=1500)
    try:
        check = probe.check(SERVER)
        assert check.ok, check.error
        kept = probe._slots[SERVER].conn
        assert kept is not None
        assert kept.execute("SHOW search_path").fetchone() == (schema,)
        assert kept.execute("SHOW statement_timeout").fetchone() == ("1500ms",)
        assert _heartbeat(pg_pair, pg_password, probe.probe_id, schema)[1] == 1
    finally:
        probe.close()


def test_a_heartbeat_table_created_by_another_session_meanwhile_is_no_failed_check(pg_pair, pg_password):
    """Another session creates the table in a transaction; the probe's CREATE TABLE IF NOT EXISTS
    waits on it and, once it commits, PostgreSQL refuses the probe's with 23505: that is a table
    that exists, not a check that failed (it was `unclassified`)."""
    schema = f"probe_{uuid.uuid4().hex[:8]}"
    with _admin(pg_pair, pg_password) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    probe = _probe(f"{pg_pair.conninfo()} options='-csearch_path={schema}'", pg_password)
    found: list[Any] = []
    checking = threading.Thread(target=lambda: found.append(probe.check(SERVER)))
    with _admin(pg_pair, pg_password) as other:
        other.autocommit = False
        other.execute(f"SET search_path = {schema}")
        other.execute(CREATE_TABLE_SQL)
        try:
            checking.start()
            _until_waiting_on_a_lock(pg_pair, pg_password)
            other.commit()
            checking.join(timeout=10)
            assert found and found[0].ok, found
            assert probe.check(SERVER).ok
        finally:
            checking.join(timeout=10)
            probe.close()
    assert _heartbeat(pg_pair, pg_password, probe.probe_id, schema)[1] == 2


def _until_waiting_on_a_lock(pair: pgpair.PgPair, password: str) -> None:
    """Until the probe's session waits on a lock (its CREATE behind the other transaction's)."""
    deadline = time.monotonic() + 5
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'"
    with _admin(pair, password) as admin:
        while time.monotonic() < deadline:
            if admin.execute(query, (APPLICATION_NAME,)).fetchone() == (1,):
                return
            time.sleep(0.02)
    raise AssertionError("the probe's CREATE TABLE never waited on the other session")


def test_standby_only_conninfo_is_connected_but_not_writable(pg_pair, pg_password):
    probe = _probe(pg_pair.conninfo(node=pg_pair.standby), pg_password)
    try:
        check = probe.check(SERVER)
        assert check.connected and not check.writable and not check.ok
        assert check.in_recovery is True
        assert check.postmaster_started_at is not None
        assert "recovery" in (check.error or "") and check.fault == "read_only"
    finally:
        probe.close()


def test_statement_timeout_bounds_a_slow_write(pg_pair, pg_password):
    probe = _probe(
        pg_pair.conninfo(), pg_password, statement_timeout_ms=400, probe_id=f"slow-{uuid.uuid4().hex[:6]}"
    )
    assert probe.check(SERVER).ok  # creates the table and the row
    fn = f"slow_{uuid.uuid4().hex[:8]}"
    with _admin(pg_pair, pg_password) as conn:
        conn.execute(
            f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.probe_id = '{probe.probe_id}' THEN PERFORM pg_sleep(5); END IF; RETURN NEW; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER {fn} BEFORE UPDATE ON {HEARTBEAT_TABLE} FOR EACH ROW EXECUTE FUNCTION {fn}()"
        )
    try:
        started = time.monotonic()
        check = probe.check(SERVER)
        elapsed = time.monotonic() - started
        assert check.connected and not check.writable
        assert "statement timeout" in (check.error or ""), check.error
        assert check.fault == "statement_timeout"
        assert elapsed < 2.5
    finally:
        with _admin(pg_pair, pg_password) as conn:
            conn.execute(f"DROP TRIGGER {fn} ON {HEARTBEAT_TABLE}")
            conn.execute(f"DROP FUNCTION {fn}()")
        probe.close()


def test_lock_timeout_bounds_a_blocked_write(pg_pair, pg_password):
    probe = _probe(pg_pair.conninfo(), pg_password, statement_timeout_ms=2000, lock_timeout_ms=300)
    try:
        assert probe.check(SERVER).ok
        with psycopg.connect(pg_pair.conninfo(), password=pg_password) as holder:  # a transaction
            holder.execute(
                f"SELECT * FROM {HEARTBEAT_TABLE} WHERE probe_id = %s FOR UPDATE", (probe.probe_id,)
            )
            started = time.monotonic()
            check = probe.check(SERVER)
            assert time.monotonic() - started < 1.5
            holder.rollback()
        assert check.connected and not check.writable
        assert "lock timeout" in (check.error or ""), check.error
        assert probe.check(SERVER).ok  # a new connection after the error, and it works again
    finally:
        probe.close()


def test_wrong_password_and_failing_token_provider_are_redacted(pg_pair):
    secret = f"not-the-password-{uuid.uuid4().hex}"
    probe = _probe(pg_pair.conninfo(), secret)
    check = probe.check(SERVER)
    assert not check.connected and not check.writable
    assert check.fault == "login_refused" and "authentication failed" in (check.error or "")
    assert secret not in (check.error or "")
    assert f"port={pg_pair.primary.port},{pg_pair.standby.port}" not in (check.error or "")

    def broken(server: str) -> str:
        raise RuntimeError(f"token endpoint said no: {secret}")

    probe = PostgresProbe(lambda s: pg_pair.conninfo(), broken, probe_id="broken")
    check = probe.check(SERVER)
    assert not check.connected and "could not get a password or token" in (check.error or "")
    assert check.fault == "token_error"
    assert secret not in (check.error or "")


def test_restart_sync_standby_loss_and_a_down_server(fresh_pg_pair, pg_password):
    pair = fresh_pg_pair
    probe = _probe(pair.conninfo(), pg_password, statement_timeout_ms=800)
    try:
        before = probe.check(SERVER)
        assert before.ok, before.error

        # A postmaster restart: the kept connection breaks, the next check reconnects and sees it.
        pgpair.restart_node(pair, pair.primary)
        after = probe.check(SERVER)
        assert after.ok, after.error
        assert after.postmaster_started_at is not None and before.postmaster_started_at is not None
        assert after.postmaster_started_at > before.postmaster_started_at

        # The synchronous standby is gone: a commit would wait forever; the check is bounded.
        pgpair.stop_node(pair, pair.standby, mode="immediate")
        started = time.monotonic()
        hung = probe.check(SERVER)
        assert time.monotonic() - started < 5
        assert hung.connected and not hung.writable
        assert "synchronous replication" in (hung.error or ""), hung.error
        assert hung.fault == "statement_timeout"  # a slow commit on a live primary: not evidence

        # The primary is down too: nothing answers the endpoint.
        pgpair.stop_node(pair, pair.primary, mode="immediate")
        started = time.monotonic()
        down = probe.check(SERVER)
        assert time.monotonic() - started < 10
        assert not down.connected and not down.writable and not down.ok
        assert down.in_recovery is None and down.postmaster_started_at is None
        assert down.error and pg_password not in down.error and "password=" not in down.error
        assert down.fault == "unreachable"
    finally:
        probe.close()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def test_when_the_server_ends_the_idle_session_is_reported_by_the_next_check(fresh_pg_pair, pg_password):
    pair = fresh_pg_pair
    probe = _probe(pair.conninfo(), pg_password)
    try:
        assert probe.check(SERVER).ok
        time.sleep(0.3)
        quiet = probe.check(SERVER)  # its own traffic is not the server ending the session
        assert quiet.ok and quiet.session_lost_at is None
        time.sleep(0.3)  # the kept session is idle, and watched

        # The server ends the session (what a shutting-down primary does to every session).
        with _admin(pair, pg_password) as conn:
            sessions = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APPLICATION_NAME,)
            ).fetchall()
            assert len(sessions) == 1, sessions  # the probe's kept session, and no other
            (pid,) = sessions[0]
            ended_from = _now()
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            ended_by = _now()
        time.sleep(0.4)
        found = probe.check(SERVER)
        assert found.ok, found.error  # reconnected at once
        assert found.session_lost_at is not None
        assert ended_from <= found.session_lost_at <= ended_by + timedelta(seconds=0.2)
        assert found.started_at - found.session_lost_at >= timedelta(seconds=0.3)

        # A forced failover: the old primary stops at once; the check after it says when.
        time.sleep(0.3)
        failover_from = _now()
        pgpair.failover(pair, mode="forced")
        failover_by = _now()
        after = probe.check(SERVER)
        assert after.ok, after.error
        assert after.session_lost_at is not None
        assert failover_from <= after.session_lost_at <= failover_by
    finally:
        probe.close()


def test_primary_killed_standby_alive_is_not_connected_through_the_endpoint(fresh_pg_pair, pg_password):
    pair = fresh_pg_pair
    probe = _probe(pair.conninfo(), pg_password)
    try:
        assert probe.check(SERVER).ok
        pgpair.kill_primary(pair)
        check = probe.check(SERVER)
        assert not check.connected and not check.ok  # only a read-only node is left
        assert check.fault in ("read_only", "unreachable")
        pgpair.promote_standby(pair)
        healed = probe.check(SERVER)
        assert healed.ok, healed.error
    finally:
        probe.close()


def test_probe_never_raises_for_concurrent_checks(pg_pair, pg_password):
    probe = _probe(pg_pair.conninfo(), pg_password)
    results = []
    threads = [threading.Thread(target=lambda: results.append(probe.check(SERVER))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    probe.close()
    assert len(results) == 4 and all(r.ok for r in results)
    assert _heartbeat(pg_pair, pg_password, probe.probe_id)[1] == 4


class _CountingCredential:
    def __init__(self, lifetime: int) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.lifetime = lifetime

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        self.calls.append(scopes)
        return AccessToken(f"token-{len(self.calls)}", int(time.time()) + self.lifetime)


def test_entra_token_provider_caches_until_near_expiry():
    long_lived = _CountingCredential(3600)
    provider = entra_token_provider(long_lived)
    assert provider("a") == provider("b") == "token-1"
    assert long_lived.calls == [("https://ossrdbms-aad.database.windows.net/.default",)]
    short_lived = _CountingCredential(60)  # inside the 5-minute refresh margin: fetched every time
    provider = entra_token_provider(short_lived)
    assert provider("a") == "token-1" and provider("a") == "token-2"


def _probe_sessions(pair, password) -> int:
    with _admin(pair, password) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APPLICATION_NAME,)
        ).fetchone()
        return int(row[0]) if row else 0


def test_sessions_evicted_under_concurrent_checks_are_never_left_open(pg_pair, pg_password):
    """Eviction never closes a session a check is using (every check succeeds), and `close()` still
    reaches every session the probe opened while four threads churned through more servers than
    it keeps."""
    probe = _probe(pg_pair.conninfo(), pg_password, max_sessions=2)
    servers = [f"pg-churn-{n}" for n in range(5)]
    results: list[bool] = []

    def worker(offset: int) -> None:
        for n in range(15):
            results.append(probe.check(servers[(n + offset) % len(servers)]).ok)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    try:
        assert probe.check(servers[0]).ok  # creates the heartbeat table before the threads race
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(results) == 60 and all(results)
    finally:
        probe.close()
    assert _probe_sessions(pg_pair, pg_password) == 0


def test_kept_sessions_are_bounded_least_recently_used_first(pg_pair, pg_password):
    """Issue 15, found by the fleet benchmark: any instance may take any shard, so a consumer kept a
    session to every server it had ever watched (1,747 sessions for 499 servers after one run)."""
    probe = _probe(pg_pair.conninfo(), pg_password, max_sessions=3)
    servers = [f"pg-lru-{n}" for n in range(6)]

    def sessions() -> int:
        return _probe_sessions(pg_pair, pg_password)

    try:
        for server in servers:
            assert probe.check(server).ok
        assert sessions() == 3
        # The three most recent keep their sessions and are checked again without reconnecting.
        assert all(probe.check(server).ok for server in servers[3:]) and sessions() == 3
        assert probe.check(servers[0]).ok and sessions() == 3  # an evicted server connects again
    finally:
        probe.close()
    assert sessions() == 0
