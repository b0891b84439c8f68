"""PostgresProbe fault classification against real PostgreSQL 15: each probe fault and each outage.

Each test gives the probe its own role and database on the shared pair (so a dropped table or a
revoked grant touches nobody else), breaks one thing, and checks the classified fault, that the
reason carries no driver text or secret, and that the probe recovers once the thing is fixed.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from failover.adapters.postgres import HEARTBEAT_TABLE, PostgresProbe
from failover.ports import DbCheck
from failover.sources.db_faults import DbFault, is_evidence, is_probe_fault
from local import pgpair
from local.services import free_port

pytestmark = pytest.mark.integration

SERVER = "pg-faults-01"


@dataclass
class ProbeDb:
    pair: pgpair.PgPair
    role: str
    password: str
    dbname: str

    def conninfo(self, *, node: pgpair.PgNode | None = None) -> str:
        return self.pair.conninfo(self.dbname, node=node, user=self.role)

    def superuser(self, *statements: sql.Composable | str) -> None:
        pgpair.run_as_superuser(self.pair, *statements, dbname=self.dbname)

    def probe(self, conninfo: str | None = None, **kwargs) -> PostgresProbe:
        text = conninfo or self.conninfo()
        return PostgresProbe(
            lambda server: text, lambda server: self.password, probe_id=f"faults-{self.role}", **kwargs
        )


def _standby_serves(db: ProbeDb) -> bool:
    try:
        with psycopg.connect(db.conninfo(node=db.pair.standby), password=db.password) as conn:
            return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (HEARTBEAT_TABLE,)).fetchone() == (
                True,
            )
    except psycopg.OperationalError:
        return False


@pytest.fixture
def probe_db(pg_pair, wait_until) -> Iterator[ProbeDb]:
    """A login role with the grants the probe needs (docs: README "What the probe needs")."""
    suffix = uuid.uuid4().hex[:8]
    role, dbname, password = f"probe_{suffix}", f"probes_{suffix}", f"pw-{uuid.uuid4().hex}"
    ident_role, ident_db = sql.Identifier(role), sql.Identifier(dbname)
    pgpair.run_as_superuser(
        pg_pair,
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident_role, sql.Literal(password)),
        sql.SQL("CREATE DATABASE {} OWNER {}").format(ident_db, sql.Identifier(pgpair.APP_ROLE)),
        sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(ident_db),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(ident_db, ident_role),
        dbname="postgres",
    )
    db = ProbeDb(pg_pair, role, password, dbname)
    db.superuser(
        sql.SQL(
            "CREATE TABLE {} (probe_id text PRIMARY KEY, beat_at timestamptz NOT NULL, beats bigint NOT NULL)"
        ).format(sql.Identifier(HEARTBEAT_TABLE)),
        sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(
            sql.Identifier(HEARTBEAT_TABLE), ident_role
        ),
    )
    # The standby applies the new role, database and table a moment later (commit waits for flush only).
    wait_until("the standby to replay the probe's database", lambda: _standby_serves(db), timeout=10)
    try:
        yield db
    finally:
        pgpair.run_as_superuser(
            pg_pair,
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident_db),
            sql.SQL("DROP ROLE IF EXISTS {}").format(ident_role),
            dbname="postgres",
        )


def _assert_fault(check: DbCheck, fault: DbFault, db: ProbeDb, *, connected: bool) -> None:
    assert not check.ok and not check.writable
    assert check.fault == fault.value, (check.fault, check.error)
    assert check.connected is connected
    text = check.error or ""
    assert text and db.password not in text and db.role not in text and "127.0.0.1" not in text, text
    assert "port=" not in text and "password" + "=" not in text


def _check_ok(probe: PostgresProbe) -> DbCheck:
    check = probe.check(SERVER)
    assert check.ok and check.fault is None and check.error is None, (check.fault, check.error)
    return check


def test_refused_login_is_login_refused_never_evidence(probe_db):
    probe = probe_db.probe()
    try:
        _check_ok(probe)
        probe_db.superuser(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(probe_db.role)))
        probe.close()  # a kept session outlives NOLOGIN; the next connection is refused
        check = probe.check(SERVER)
        _assert_fault(check, DbFault.LOGIN_REFUSED, probe_db, connected=False)
        assert is_probe_fault(check.fault) and not is_evidence(check.fault)
        probe_db.superuser(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(probe_db.role)))
        _check_ok(probe)
    finally:
        probe.close()


def test_wrong_password_is_login_refused(probe_db):
    probe = PostgresProbe(lambda s: probe_db.conninfo(), lambda s: "not-the-password", probe_id="wrong-pw")
    try:
        _assert_fault(probe.check(SERVER), DbFault.LOGIN_REFUSED, probe_db, connected=False)
    finally:
        probe.close()


def test_revoked_grants_are_permission_denied(probe_db):
    ident_role = sql.Identifier(probe_db.role)
    table = sql.Identifier(HEARTBEAT_TABLE)
    probe = probe_db.probe()
    try:
        _check_ok(probe)
        probe_db.superuser(sql.SQL("REVOKE INSERT, UPDATE ON {} FROM {}").format(table, ident_role))
        check = probe.check(SERVER)
        _assert_fault(check, DbFault.PERMISSION_DENIED, probe_db, connected=True)
        assert check.in_recovery is False  # the server answered: it is the probe that cannot write

        probe_db.superuser(sql.SQL("GRANT INSERT, UPDATE ON {} TO {}").format(table, ident_role))
        _check_ok(probe)

        db = sql.Identifier(probe_db.dbname)
        pgpair.run_as_superuser(
            probe_db.pair,
            sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(db, ident_role),
            dbname="postgres",
        )
        probe.close()
        _assert_fault(probe.check(SERVER), DbFault.PERMISSION_DENIED, probe_db, connected=False)
        pgpair.run_as_superuser(
            probe_db.pair,
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, ident_role),
            dbname="postgres",
        )
        _check_ok(probe)
    finally:
        probe.close()


def test_dropped_heartbeat_table_is_missing_table(probe_db):
    probe = probe_db.probe()
    try:
        _check_ok(probe)
        probe_db.superuser(sql.SQL("DROP TABLE {}").format(sql.Identifier(HEARTBEAT_TABLE)))
        check = probe.check(SERVER)
        _assert_fault(check, DbFault.MISSING_TABLE, probe_db, connected=True)
        assert HEARTBEAT_TABLE not in (check.error or "") or check.error.startswith("missing table")
    finally:
        probe.close()


def test_connection_limit_is_too_many_connections(probe_db):
    probe = probe_db.probe()
    try:
        probe_db.superuser(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 0").format(sql.Identifier(probe_db.role)))
        _assert_fault(probe.check(SERVER), DbFault.TOO_MANY_CONNECTIONS, probe_db, connected=False)
        probe_db.superuser(sql.SQL("ALTER ROLE {} CONNECTION LIMIT -1").format(sql.Identifier(probe_db.role)))
        _check_ok(probe)
    finally:
        probe.close()


def test_wrong_host_name_is_dns_error(probe_db):
    conninfo = f"host=no-such-server.invalid port=5432 dbname=app user={probe_db.role} connect_timeout=2"
    probe = probe_db.probe(conninfo)
    try:
        check = probe.check(SERVER)
        _assert_fault(check, DbFault.DNS_ERROR, probe_db, connected=False)
        assert "no-such-server" not in (check.error or "")
    finally:
        probe.close()


def test_tls_required_by_the_client_is_tls_error(probe_db):
    probe = probe_db.probe(probe_db.conninfo().replace("sslmode=disable", "sslmode=require"))
    try:
        _assert_fault(probe.check(SERVER), DbFault.TLS_ERROR, probe_db, connected=False)
    finally:
        probe.close()


def test_closed_port_is_unreachable_evidence(probe_db):
    probe = probe_db.probe(
        f"host=127.0.0.1 port={free_port()} dbname=app user={probe_db.role} sslmode=disable"
    )
    try:
        check = probe.check(SERVER)
        _assert_fault(check, DbFault.UNREACHABLE, probe_db, connected=False)
        assert is_evidence(check.fault)
    finally:
        probe.close()


def test_standby_is_read_only_evidence(probe_db):
    probe = probe_db.probe(probe_db.conninfo(node=probe_db.pair.standby))
    try:
        check = probe.check(SERVER)
        _assert_fault(check, DbFault.READ_ONLY, probe_db, connected=True)
        assert check.in_recovery is True and is_evidence(check.fault)
    finally:
        probe.close()


def test_connect_timeout_is_evidence_only_after_the_server_answered(probe_db):
    """A black hole (TCP accepted, nothing answers): a server that used to answer timed out;
    one that never answered is the probe's network (a private endpoint it cannot reach)."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)  # never accept(): the handshake completes, the startup packet gets no answer
    blackhole = f"host=127.0.0.1 port={hole.getsockname()[1]} dbname=app user={probe_db.role} sslmode=disable"
    target = {"conninfo": probe_db.conninfo()}
    answered = PostgresProbe(
        lambda s: target["conninfo"], lambda s: probe_db.password, probe_id="timeout", connect_timeout=1
    )
    never = probe_db.probe(blackhole, connect_timeout=1)
    try:
        _check_ok(answered)
        answered.close()
        target["conninfo"] = blackhole
        _assert_fault(answered.check(SERVER), DbFault.TIMEOUT, probe_db, connected=False)
        check = never.check(SERVER)
        _assert_fault(check, DbFault.NETWORK_ERROR, probe_db, connected=False)
        assert is_probe_fault(check.fault)
    finally:
        answered.close()
        never.close()
        hole.close()


def test_missing_user_or_host_and_a_failing_conninfo_are_not_configured(probe_db, monkeypatch):
    monkeypatch.delenv("PGUSER", raising=False)
    monkeypatch.delenv("PGHOST", raising=False)
    no_user = probe_db.conninfo().replace(f"user={probe_db.role}", "")
    no_host = probe_db.conninfo().replace("host=127.0.0.1,127.0.0.1", "")

    def broken(server: str) -> str:
        raise KeyError("PG_CONNINFO_TEMPLATE names {nothing}")

    for conninfo_for in (lambda s: no_user, lambda s: no_host, broken, lambda s: "not a = conninfo = at all"):
        probe = PostgresProbe(conninfo_for, lambda s: probe_db.password, probe_id="not-configured")
        try:
            check = probe.check(SERVER)
            _assert_fault(check, DbFault.NOT_CONFIGURED, probe_db, connected=False)
            assert is_probe_fault(check.fault)
        finally:
            probe.close()


def test_failing_token_fetch_is_token_error(probe_db):
    secret = f"client-secret-{uuid.uuid4().hex}"

    def broken(server: str) -> str:
        raise RuntimeError(f"AADSTS7000215: invalid client secret {secret}")

    probe = PostgresProbe(lambda s: probe_db.conninfo(), broken, probe_id="token")
    try:
        check = probe.check(SERVER)
        _assert_fault(check, DbFault.TOKEN_ERROR, probe_db, connected=False)
        assert secret not in (check.error or "") and "AADSTS" not in (check.error or "")
    finally:
        probe.close()
