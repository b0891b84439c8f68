"""Database probe fault classification (pure): the table, the groups, and no driver text out."""

from __future__ import annotations

import pytest

from failover.sources.db_faults import (
    COMMIT_NOT_ACKNOWLEDGED,
    READ_ONLY_IN_RECOVERY,
    DbFault,
    FaultGroup,
    Stage,
    classify,
    group_of,
    is_evidence,
    is_probe_fault,
)

# Messages as psycopg 3.3 / libpq 15 and PostgreSQL 15 give them (recorded against the local pair).
REFUSED = (
    'connection failed: connection to server at "10.1.0.4", port 5432 failed: Connection refused\n'
    "\tIs the server running on that host and accepting TCP/IP connections?"
)
NOLOGIN = (
    'connection failed: connection to server at "10.1.0.4", port 5432 failed: FATAL:  role "probe" '
    "is not permitted to log in"
)
BAD_PASSWORD = (
    'connection failed: connection to server at "10.1.0.4", port 5432 failed: FATAL:  password '
    'authentication failed for user "probe"'
)
NO_CONNECT = (
    'connection failed: connection to server at "10.1.0.4", port 5432 failed: FATAL:  permission denied '
    'for database "app"\nDETAIL:  User does not have CONNECT privilege.'
)
DNS = (
    "failed to resolve host 'pg-prod-01.privatelink.postgres.database.azure.com': "
    "[Errno -2] Name or service not known"
)
NO_SSL = (
    'connection failed: connection to server at "10.1.0.4", port 5432 failed: server does not support SSL, '
    "but SSL was required"
)
CERT = (
    'connection failed: connection to server at "10.1.0.4", port 5432 failed: SSL error: certificate verify '
    "failed"
)
SSL_EOF = (
    'connection failed: connection to server at "10.1.0.4", port 5432 failed: SSL SYSCALL error: EOF detected'
)
CLOSED = "consuming input failed: server closed the connection unexpectedly"
TIMEOUT = "connection timeout expired"
STARTING = (
    'connection failed: connection to server at "10.1.0.4", port 5432 failed: FATAL:  the database system '
    "is starting up"
)
TOO_MANY = (
    'connection failed: connection to server at "10.1.0.4", port 5432 failed: FATAL:  sorry, too many '
    "clients already"
)
# A two-host endpoint (target_session_attrs=read-write): one node down, the other a standby.
STANDBY_LEFT = (
    'connection failed: connection to server at "127.0.0.1", port 5433 failed: '
    "server is in hot standby mode\n"
    "Multiple connection attempts failed. All failures were:\n"
    "- host: '127.0.0.1', port: '5432', hostaddr: '127.0.0.1': connection failed: Connection refused\n"
    "- host: '127.0.0.1', port: '5433', hostaddr: '127.0.0.1': "
    "connection failed: server is in hot standby mode"
)
# One node down, the other refuses the login: the probe's own fault is the telling one.
LOGIN_ON_LIVE_NODE = REFUSED + "\nMultiple connection attempts failed.\n" + BAD_PASSWORD

C, Q = Stage.CONNECT, Stage.QUERY


@pytest.mark.parametrize(
    "stage, sqlstate, message, answered, fault",
    [
        # outage: failover evidence
        (C, None, REFUSED, False, DbFault.UNREACHABLE),
        (C, None, STARTING, True, DbFault.UNREACHABLE),
        (C, None, SSL_EOF, True, DbFault.UNREACHABLE),
        (Q, None, CLOSED, True, DbFault.UNREACHABLE),
        (Q, "57P01", "terminating connection due to administrator command", True, DbFault.UNREACHABLE),
        (
            Q,
            "57P02",
            "terminating connection because of crash of another server process",
            True,
            DbFault.UNREACHABLE,
        ),
        (C, "57P03", "the database system is not yet accepting connections", True, DbFault.UNREACHABLE),
        (Q, "08006", "connection failure", True, DbFault.UNREACHABLE),
        (Q, "08003", "", True, DbFault.UNREACHABLE),
        (Q, "25006", "cannot execute INSERT in a read-only transaction", True, DbFault.READ_ONLY),
        (C, None, STANDBY_LEFT, True, DbFault.READ_ONLY),
        (C, None, TIMEOUT, True, DbFault.TIMEOUT),
        # probe faults: never evidence
        (C, None, TIMEOUT, False, DbFault.NETWORK_ERROR),
        (C, None, "connection failed: No route to host", False, DbFault.NETWORK_ERROR),
        (C, None, NOLOGIN, True, DbFault.LOGIN_REFUSED),
        (C, None, BAD_PASSWORD, True, DbFault.LOGIN_REFUSED),
        (C, None, LOGIN_ON_LIVE_NODE, True, DbFault.LOGIN_REFUSED),
        (C, "28000", "", False, DbFault.LOGIN_REFUSED),
        (C, "28P01", "", False, DbFault.LOGIN_REFUSED),
        (
            C,
            None,
            'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "probe"',
            False,
            DbFault.LOGIN_REFUSED,
        ),
        (C, None, NO_CONNECT, True, DbFault.PERMISSION_DENIED),
        (
            Q,
            "42501",
            "permission denied for table failover_responder_heartbeat",
            True,
            DbFault.PERMISSION_DENIED,
        ),
        (Q, "42P01", 'relation "failover_responder_heartbeat" does not exist', True, DbFault.MISSING_TABLE),
        (C, None, DNS, False, DbFault.DNS_ERROR),
        (C, None, 'could not translate host name "x" to address', False, DbFault.DNS_ERROR),
        (C, None, NO_SSL, True, DbFault.TLS_ERROR),
        (C, None, CERT, True, DbFault.TLS_ERROR),
        (C, "53300", "", True, DbFault.TOO_MANY_CONNECTIONS),
        (C, None, TOO_MANY, True, DbFault.TOO_MANY_CONNECTIONS),
        (C, None, 'FATAL:  database "app" does not exist', True, DbFault.NOT_CONFIGURED),
        (C, None, "could not match 2 port numbers to 1 hosts", False, DbFault.NOT_CONFIGURED),
        (Stage.CONFIG, None, "", False, DbFault.NOT_CONFIGURED),
        (Stage.TOKEN, None, "", True, DbFault.TOKEN_ERROR),
        # one failed check on a live server
        (Q, "57014", "canceling statement due to statement timeout", True, DbFault.STATEMENT_TIMEOUT),
        (Q, "55P03", "canceling statement due to lock timeout", True, DbFault.STATEMENT_TIMEOUT),
        (Q, "XX000", "something new", True, DbFault.UNCLASSIFIED),
        (Q, None, "", True, DbFault.UNCLASSIFIED),
    ],
)
def test_classification_table(stage, sqlstate, message, answered, fault):
    failure = classify(stage=stage, sqlstate=sqlstate, message=message, answered_before=answered)
    assert failure.fault is fault
    assert failure.reason.startswith(fault.value.replace("_", " ").replace("read only", "read-only"))
    # The reason is from the fixed vocabulary: nothing of the driver's text comes through.
    for leaked in ("10.1.0.4", "127.0.0.1", 'probe"', "privatelink", 'app"'):
        assert leaked not in failure.reason


def test_groups_say_what_is_evidence():
    assert {f for f in DbFault if is_evidence(f)} == {DbFault.UNREACHABLE, DbFault.READ_ONLY, DbFault.TIMEOUT}
    assert {f for f in DbFault if is_probe_fault(f)} == {
        DbFault.LOGIN_REFUSED,
        DbFault.PERMISSION_DENIED,
        DbFault.MISSING_TABLE,
        DbFault.TOKEN_ERROR,
        DbFault.DNS_ERROR,
        DbFault.TLS_ERROR,
        DbFault.NETWORK_ERROR,
        DbFault.NOT_CONFIGURED,
        DbFault.TOO_MANY_CONNECTIONS,
    }
    assert group_of("statement_timeout") is FaultGroup.CHECK
    assert group_of("a-fault-from-a-newer-writer") is FaultGroup.CHECK  # open for reading, never evidence
    assert not is_evidence(None) and not is_probe_fault(None)
    assert is_evidence("unreachable")  # the string DbCheck.fault holds works too


def test_fixed_failures_of_the_adapter():
    assert READ_ONLY_IN_RECOVERY.fault is DbFault.READ_ONLY and READ_ONLY_IN_RECOVERY.is_evidence
    assert COMMIT_NOT_ACKNOWLEDGED.fault is DbFault.STATEMENT_TIMEOUT
    assert not COMMIT_NOT_ACKNOWLEDGED.is_evidence
    assert "synchronous replication" in COMMIT_NOT_ACKNOWLEDGED.reason
