"""Database probe faults: why a check failed, as one word from a closed set, and what it means.

Layer: pure core (the database probe source family). ``classify`` takes what the PostgreSQL
adapter knows about one failed check (the stage it failed in, the SQLSTATE, the driver's message,
whether this server ever answered the probe) and returns a ``Failure``: a fault from the closed
set below and a reason drawn from a fixed vocabulary. It must not do I/O, and its output must
never carry driver text: the message is only matched against known patterns, so no host name,
user name, conninfo or token can leak through a reason.

Three groups, and what each means for failover detection:

- ``outage`` (failover evidence): unreachable, read_only, timeout. The server itself did not
  serve; the check counts toward a write outage.
- ``probe`` (probe health): login_refused, permission_denied, missing_table, token_error,
  dns_error, tls_error, network_error, not_configured, too_many_connections. The probe cannot
  check; shown per server, never a failover.
- ``check`` (one failed check): statement_timeout, unclassified. The server answered but the
  check did not complete: never evidence, and not a probe outage either.

Why ``statement_timeout`` is a ``check`` fault: the server accepted the connection and answered,
but the heartbeat (or its commit, waiting for the synchronous standby; or a lock) took longer than
the probe's bound. That is a slow check on a live primary, not an outage: a failover shows up in
the next checks as refused or reset connections (``unreachable``) or a node in recovery
(``read_only``). ``timeout`` (connecting) is evidence only when the server answered this probe
before; a server that never answered is a network problem of the probe (``network_error``: a
private endpoint, firewall or NSG the app cannot reach).

Connection errors reach the client without an SQLSTATE (libpq reports them as text), so they
are matched by the message libpq or the server sends; Azure servers speak English messages.
When one endpoint lists several hosts, every host's failure is in the message; the most telling
fault wins (a probe fault of a live host before an outage of another).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class DbFault(str, Enum):
    """Why one database check failed (a closed set; the value is what ``DbCheck.fault`` holds)."""

    UNREACHABLE = "unreachable"
    READ_ONLY = "read_only"
    TIMEOUT = "timeout"
    LOGIN_REFUSED = "login_refused"
    PERMISSION_DENIED = "permission_denied"
    MISSING_TABLE = "missing_table"
    TOKEN_ERROR = "token_error"  # noqa: S105 (a fault name)
    DNS_ERROR = "dns_error"
    TLS_ERROR = "tls_error"
    NETWORK_ERROR = "network_error"
    NOT_CONFIGURED = "not_configured"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    STATEMENT_TIMEOUT = "statement_timeout"
    UNCLASSIFIED = "unclassified"

    def __str__(self) -> str:
        return str(self.value)


class FaultGroup(str, Enum):
    OUTAGE = "outage"  # the server did not serve: failover evidence
    PROBE = "probe"  # the probe cannot check: probe health, never a failover
    CHECK = "check"  # one failed check on a live server: a note at most

    def __str__(self) -> str:
        return str(self.value)


_GROUP = {
    DbFault.UNREACHABLE: FaultGroup.OUTAGE,
    DbFault.READ_ONLY: FaultGroup.OUTAGE,
    DbFault.TIMEOUT: FaultGroup.OUTAGE,
    DbFault.LOGIN_REFUSED: FaultGroup.PROBE,
    DbFault.PERMISSION_DENIED: FaultGroup.PROBE,
    DbFault.MISSING_TABLE: FaultGroup.PROBE,
    DbFault.TOKEN_ERROR: FaultGroup.PROBE,
    DbFault.DNS_ERROR: FaultGroup.PROBE,
    DbFault.TLS_ERROR: FaultGroup.PROBE,
    DbFault.NETWORK_ERROR: FaultGroup.PROBE,
    DbFault.NOT_CONFIGURED: FaultGroup.PROBE,
    DbFault.TOO_MANY_CONNECTIONS: FaultGroup.PROBE,
    DbFault.STATEMENT_TIMEOUT: FaultGroup.CHECK,
    DbFault.UNCLASSIFIED: FaultGroup.CHECK,
}


class Stage(str, Enum):
    """Where the check failed."""

    CONFIG = "config"  # building the conninfo (settings missing or invalid)
    TOKEN = "token"  # noqa: S105 (a stage name): fetching the password or Entra token
    CONNECT = "connect"  # opening the session
    QUERY = "query"  # the status query or the heartbeat on an open session

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class Failure:
    fault: DbFault
    reason: str  # fixed vocabulary: never driver text

    @property
    def group(self) -> FaultGroup:
        return group_of(self.fault)

    @property
    def is_evidence(self) -> bool:
        return self.group is FaultGroup.OUTAGE


def group_of(fault: DbFault | str) -> FaultGroup:
    """The group of a fault; an unknown string (an older or newer writer) is a ``check`` fault."""
    try:
        return _GROUP[DbFault(fault)]
    except ValueError:
        return FaultGroup.CHECK


def is_evidence(fault: DbFault | str | None) -> bool:
    """Whether a failed check with this fault counts toward failover evidence."""
    return fault is not None and group_of(fault) is FaultGroup.OUTAGE


def is_probe_fault(fault: DbFault | str | None) -> bool:
    """Whether the probe itself cannot check (probe health, never an incident)."""
    return fault is not None and group_of(fault) is FaultGroup.PROBE


# SQLSTATE -> (fault, reason). Exact codes first, then two-character classes.
_BY_SQLSTATE: dict[str, tuple[DbFault, str]] = {
    "28000": (DbFault.LOGIN_REFUSED, "login refused: the role may not log in or no pg_hba entry matches"),
    "28P01": (DbFault.LOGIN_REFUSED, "login refused: password or token authentication failed"),
    "42501": (DbFault.PERMISSION_DENIED, "permission denied: the probe role lacks a grant it needs"),
    "42P01": (DbFault.MISSING_TABLE, "missing table: the heartbeat table does not exist"),
    "3D000": (DbFault.NOT_CONFIGURED, "not configured: the database named in the conninfo does not exist"),
    "53300": (DbFault.TOO_MANY_CONNECTIONS, "too many connections: the server refused a new session"),
    "57014": (DbFault.STATEMENT_TIMEOUT, "statement timeout: the check did not finish in time"),
    "55P03": (DbFault.STATEMENT_TIMEOUT, "statement timeout: the heartbeat row stayed locked (lock timeout)"),
    "25006": (DbFault.READ_ONLY, "read-only: the endpoint reached a node in recovery"),
    "57P01": (DbFault.UNREACHABLE, "unreachable: the server is shutting down (admin shutdown)"),
    "57P02": (DbFault.UNREACHABLE, "unreachable: the server crashed (crash shutdown)"),
    "57P03": (DbFault.UNREACHABLE, "unreachable: the server cannot accept connections now"),
}
_BY_CLASS: dict[str, tuple[DbFault, str]] = {
    "08": (DbFault.UNREACHABLE, "unreachable: the connection failed or was lost"),
    "28": (DbFault.LOGIN_REFUSED, "login refused: authorization failed"),
}

# Message patterns (libpq or server text), most telling first: a probe fault of a live host wins
# over an outage of another host of the same endpoint. (pattern, fault, reason)
_TIMEOUT_REASON = "timeout: the server did not answer the connection in time"
_NETWORK_REASON = "network error: the endpoint never answered the probe (private endpoint, firewall or DNS)"
_BY_MESSAGE: tuple[tuple[re.Pattern[str], DbFault, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), fault, reason)
    for pattern, fault, reason in (
        (r"is not permitted to log in", DbFault.LOGIN_REFUSED, "login refused: the role may not log in"),
        (
            r"password authentication failed|authentication failed for user|invalid authorization",
            DbFault.LOGIN_REFUSED,
            "login refused: password or token authentication failed",
        ),
        (r"no pg_hba\.conf entry", DbFault.LOGIN_REFUSED, "login refused: no pg_hba entry matches the probe"),
        (r"role \S+ does not exist", DbFault.LOGIN_REFUSED, "login refused: the probe role does not exist"),
        (
            r"permission denied for database",
            DbFault.PERMISSION_DENIED,
            "permission denied: the probe role lacks CONNECT on the database",
        ),
        (
            r"database \S+ does not exist",
            DbFault.NOT_CONFIGURED,
            "not configured: the database named in the conninfo does not exist",
        ),
        (
            r"could not match \d+ (port numbers|host names|hosts)|invalid connection option|"
            r"invalid \S+ value|invalid port number|invalid sslmode value",
            DbFault.NOT_CONFIGURED,
            "not configured: the conninfo is invalid",
        ),
        (
            r"too many clients|remaining connection slots are reserved|too many connections",
            DbFault.TOO_MANY_CONNECTIONS,
            "too many connections: the server refused a new session",
        ),
        (
            r"failed to resolve host|could not translate host name|name or service not known|"
            r"nodename nor servname|temporary failure in name resolution",
            DbFault.DNS_ERROR,
            "dns error: the server name does not resolve",
        ),
        (
            r"ssl syscall error|ssl connection has been closed unexpectedly|ssl error: unexpected eof",
            DbFault.UNREACHABLE,
            "unreachable: the server closed the connection",
        ),
        (
            r"\bssl\b|\btls\b|certificate|gssapi|encryption",
            DbFault.TLS_ERROR,
            "tls error: the TLS handshake or certificate check failed",
        ),
        (
            r"in hot standby mode|session is read-only|read-only transaction|in recovery mode",
            DbFault.READ_ONLY,
            "read-only: the endpoint reached a node in recovery",
        ),
        (
            r"starting up|shutting down|not yet accepting connections|"
            r"terminating connection due to administrator command|"
            r"connection refused|server closed the connection unexpectedly|connection reset|"
            r"could not receive data|could not send data|unexpected eof|\beof\b|connection is lost|"
            r"consuming input failed|broken pipe|the connection is closed",
            DbFault.UNREACHABLE,
            "unreachable: the server refused or closed the connection",
        ),
        (r"timeout expired|timed out|connection timeout", DbFault.TIMEOUT, _TIMEOUT_REASON),
        (r"no route to host|network is unreachable", DbFault.TIMEOUT, _TIMEOUT_REASON),
    )
)


def classify(
    *, stage: Stage, sqlstate: str | None = None, message: str = "", answered_before: bool = False
) -> Failure:
    """The fault of one failed check (pure; the message is matched, never returned)."""
    if stage is Stage.CONFIG:
        return Failure(DbFault.NOT_CONFIGURED, "not configured: the probe's server, host or user is missing")
    if stage is Stage.TOKEN:
        return Failure(DbFault.TOKEN_ERROR, "token error: could not get a password or token")
    hit = _BY_SQLSTATE.get((sqlstate or "").upper()) or _BY_CLASS.get((sqlstate or "")[:2].upper())
    if hit is None:
        hit = next(((f, r) for pattern, f, r in _BY_MESSAGE if pattern.search(message)), None)
    if hit is None:
        return Failure(
            DbFault.UNCLASSIFIED, "unclassified: the check failed for a reason not known to the probe"
        )
    fault, reason = hit
    if fault is DbFault.TIMEOUT and stage is Stage.QUERY:
        return Failure(DbFault.UNREACHABLE, "unreachable: the connection was lost")
    if fault is DbFault.TIMEOUT and not answered_before:
        # A connect that never worked is the probe's network path, not the server going away.
        return Failure(DbFault.NETWORK_ERROR, _NETWORK_REASON)
    return Failure(fault, reason)


READ_ONLY_IN_RECOVERY = Failure(DbFault.READ_ONLY, "read-only: the server is in recovery (a standby)")
COMMIT_NOT_ACKNOWLEDGED = Failure(
    DbFault.STATEMENT_TIMEOUT, "statement timeout: the commit waited for synchronous replication"
)
