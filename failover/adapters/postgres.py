"""The PostgreSQL availability probe: ``DatabaseProbe`` on psycopg 3.

Layer: adapter (edge). It checks a server's endpoint the way an application does: connect with
the application's conninfo (TLS as the conninfo says; ``sslmode=require`` in Azure), ask
``pg_is_in_recovery()`` and ``pg_postmaster_start_time()``, and, on a primary, commit one
single-row UPSERT into ``failover_responder_heartbeat`` (see docs/heartbeat.md). One connection
per server is kept between checks and replaced after any error; on a kept session that reached
the primary the UPSERT (returning the postmaster's start) is the check's one statement. While
idle it is watched (``session_watch``): a check that finds it ended by the server says when
(``session_lost_at``), the moment a primary shutting down for a failover stopped serving.

Every failed check carries a ``fault`` classified by ``failover.sources.db_faults.classify``
(from the stage, the SQLSTATE and the driver's message) and an ``error`` reason from that module's
fixed vocabulary: driver text never leaves this module except, redacted, in a DEBUG log line.

What it must not do: import psycopg at module import (it is imported inside the functions that
use it), raise from ``check`` (a down server is a ``DbCheck`` with ``connected=False``), hold a
transaction open (autocommit; statement, lock and idle-in-transaction timeouts on every session),
wait without a bound (``deadlines`` cancels a statement stuck past its timeout, e.g. a commit waiting
for a synchronous standby that is gone), or put a password, a token or the conninfo into an
error text or a log line.

Size: over 400 lines because it is the one module that speaks to PostgreSQL: connection, token,
heartbeat and the catalog reads of verification share one session and one error translation.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from failover.adapters.deadlines import Deadlines
from failover.adapters.session_watch import SessionWatch, Watched
from failover.ports import Clock, DbCheck
from failover.secrets import MARK, redact
from failover.sources.db_faults import (
    COMMIT_NOT_ACKNOWLEDGED,
    READ_ONLY_IN_RECOVERY,
    Failure,
    Stage,
    classify,
)

if TYPE_CHECKING:
    import psycopg
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)
T = TypeVar("T")

ENTRA_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
HEARTBEAT_TABLE = "failover_responder_heartbeat"
APPLICATION_NAME = "pg-failover-responder-probe"

CREATE_TABLE_SQL = f"""
CREATE TABLE IF NOT EXISTS {HEARTBEAT_TABLE} (
    probe_id text PRIMARY KEY,
    beat_at timestamptz NOT NULL,
    beats bigint NOT NULL
)
"""
UPSERT_SQL = """
INSERT INTO failover_responder_heartbeat AS h (probe_id, beat_at, beats)
VALUES (%s, clock_timestamp(), 1)
ON CONFLICT (probe_id) DO UPDATE SET beat_at = EXCLUDED.beat_at, beats = h.beats + 1
RETURNING pg_postmaster_start_time()
"""
STATUS_SQL = "SELECT pg_is_in_recovery(), pg_postmaster_start_time()"

_ERROR_LIMIT = 300
_SYNC_REP_WARNING = "synchronous replication"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------- Entra tokens


def entra_token_provider(
    credential: TokenCredential, *, refresh_margin_seconds: float = 300, scope: str = ENTRA_SCOPE
) -> Callable[[str], str]:
    """A ``password_for`` that returns a Microsoft Entra access token for Azure PostgreSQL.

    One token serves every server (the scope is per service, not per server); it is cached until
    ``refresh_margin_seconds`` before it expires. Thread-safe.
    """
    lock = threading.Lock()
    cached: dict[str, Any] = {"token": None, "expires_on": 0.0}

    def password_for(server: str) -> str:
        with lock:
            token = cached["token"]
            if token is None or time.time() >= float(cached["expires_on"]) - refresh_margin_seconds:
                access = credential.get_token(scope)
                cached["token"] = access.token
                cached["expires_on"] = float(access.expires_on)
                token = access.token
                logger.info("postgres probe: fetched an Entra token for server %s", server)
            return str(token)

    return password_for


# --------------------------------------------------------------------------- the probe


@dataclass
class _Slot:
    watched: Watched
    lock: threading.Lock = field(default_factory=threading.Lock)
    conn: psycopg.Connection[Any] | None = None
    table_ready: bool = False
    on_primary: bool = False  # this session committed a heartbeat: the next check is one statement
    answered: bool = False  # this server answered the probe at least once (a later timeout is evidence)
    evicted: bool = False  # closed to keep the session count bounded: the next use takes a new slot


@dataclass
class _Outcome:
    connected: bool = False
    writable: bool = False
    in_recovery: bool | None = None
    postmaster_started_at: datetime | None = None
    error: str | None = None
    fault: str | None = None
    session_lost_at: datetime | None = None

    def failed(self, failure: Failure) -> _Outcome:
        self.writable = False
        self.error = failure.reason
        self.fault = failure.fault.value
        return self


class PostgresProbe:
    """``DatabaseProbe``: one application-like availability check of a server's endpoint."""

    def __init__(
        self,
        conninfo_for: Callable[[str], str],
        password_for: Callable[[str], str] | None = None,
        *,
        probe_id: str,
        connect_timeout: float = 3,
        statement_timeout_ms: int = 2000,
        lock_timeout_ms: int | None = None,
        idle_in_transaction_timeout_ms: int = 10000,
        create_table: bool = False,
        clock: Clock = _utcnow,
        max_sessions: int = 128,
    ) -> None:
        if not probe_id:
            raise ValueError("probe_id is required")
        self._conninfo_for = conninfo_for
        self._password_for = password_for
        self.probe_id = probe_id
        self._connect_timeout = max(1, round(connect_timeout))
        self._statement_timeout_ms = int(statement_timeout_ms)
        self._lock_timeout_ms = int(
            lock_timeout_ms if lock_timeout_ms is not None else max(1, statement_timeout_ms // 2)
        )
        self._idle_timeout_ms = int(idle_in_transaction_timeout_ms)
        self._create_table = create_table
        self._clock = clock
        # Least recently used first. Any instance may take any shard, so without a bound every
        # instance would end up holding a session to every server of the fleet.
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._max_sessions = max(1, max_sessions)
        self._slots_lock = threading.Lock()
        self._sessions = SessionWatch(clock)
        self._deadlines = Deadlines(_cancel)

    # ---------------------------------------------------------------- public

    def check(self, server: str) -> DbCheck:
        """Connect (or reuse), read the recovery state, write the heartbeat on a primary. Never raises."""
        started = self._clock()
        secrets: list[str] = []
        try:
            outcome = self._check(server, secrets)
        except Exception:  # defensive: the contract is "never raises"
            logger.exception("postgres probe: server %s: unexpected failure", server)
            outcome = _Outcome().failed(classify(stage=Stage.QUERY))
        finished = self._clock()
        result = DbCheck(
            server=server,
            started_at=started,
            finished_at=finished,
            connected=outcome.connected,
            writable=outcome.writable,
            in_recovery=outcome.in_recovery,
            postmaster_started_at=outcome.postmaster_started_at,
            error=outcome.error,
            fault=outcome.fault,
            session_lost_at=outcome.session_lost_at,
        )
        level = logging.DEBUG if result.ok else logging.WARNING
        logger.log(
            level,
            "postgres probe: server %s connected=%s writable=%s in_recovery=%s fault=%s error=%s",
            server,
            result.connected,
            result.writable,
            result.in_recovery,
            result.fault,
            result.error,
        )
        return result

    def read(self, server: str, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run read-only ``work`` on the server's kept session (connecting when needed).

        For other adapters' catalog reads (``failover.adapters.pg_verify``): same conninfo,
        password, timeouts and autocommit as the check. Raises ``ProbeReadError`` carrying a
        classified reason (never driver text); the session is dropped after any error.
        """
        import psycopg

        secrets: list[str] = []
        with self._held(server) as slot, _in_use(slot):
            stage = Stage.QUERY
            try:
                if slot.conn is None or slot.conn.closed or slot.conn.broken:
                    self._drop(slot)
                    stage = Stage.CONNECT
                    slot.conn = self._connect(server, secrets)
                    stage = Stage.QUERY
                return work(slot.conn)
            except _ConfigError:
                failure = classify(stage=Stage.CONFIG)
            except _PasswordError:
                failure = classify(stage=Stage.TOKEN)
            except psycopg.Error as exc:
                failure = classify(stage=stage, sqlstate=exc.sqlstate, message=str(exc))
                self._log_driver_text(server, failure, _describe(exc), secrets)
            self._drop(slot)
            raise ProbeReadError(failure.reason)

    def close(self) -> None:
        """Close every kept connection."""
        with self._slots_lock:
            slots = list(self._slots.values())
        for slot in slots:
            with slot.lock:
                self._drop(slot)
        self._sessions.close()
        self._deadlines.close()

    # ---------------------------------------------------------------- internals

    @contextmanager
    def _held(self, server: str) -> Iterator[_Slot]:
        """The server's slot, locked (one check or read at a time per server)."""
        while True:
            slot = self._slot(server)
            slot.lock.acquire()
            if not slot.evicted:
                break
            slot.lock.release()  # closed between lookup and lock: take the new one
        try:
            yield slot
        finally:
            slot.lock.release()

    def _slot(self, server: str) -> _Slot:
        with self._slots_lock:
            slot = self._slots.get(server)
            if slot is None:
                slot = self._slots[server] = _Slot(self._sessions.add())
                self._evict_idle_beyond(self._max_sessions)
            self._slots.move_to_end(server)
            return slot

    def _evict_idle_beyond(self, limit: int) -> None:
        """Close the least recently used sessions over `limit` (the caller holds `_slots_lock`);
        one in use is skipped: it is not idle."""
        for name in list(self._slots)[: max(0, len(self._slots) - limit)]:
            slot = self._slots[name]
            if not slot.lock.acquire(blocking=False):
                continue
            try:
                slot.evicted = True
                del self._slots[name]
                slot.watched.busy()  # no longer watched
                self._drop(slot)
            finally:
                slot.lock.release()

    def _check(self, server: str, secrets: list[str]) -> _Outcome:
        with self._held(server) as slot, _in_use(slot) as spoke:
            reused = slot.conn is not None and not slot.conn.closed and not slot.conn.broken
            if not reused:
                self._drop(slot)
            if reused:
                outcome = self._attempt(server, slot, secrets)
                if outcome.writable:
                    return outcome
                # A kept connection may point at a node that is no longer the primary, or be
                # broken by a restart: only a fresh connection tells what a client sees now.
                logger.info(
                    "postgres probe: server %s: kept connection failed or read-only; reconnecting", server
                )
                self._drop(slot)
                # When the server spoke on (or closed) the idle session: the outage began by then.
                retried = self._attempt(server, slot, secrets)
                retried.session_lost_at = spoke
                return retried
            return self._attempt(server, slot, secrets)

    def _attempt(self, server: str, slot: _Slot, secrets: list[str]) -> _Outcome:
        import psycopg

        outcome = _Outcome()
        stage = Stage.QUERY
        try:
            if slot.conn is None:
                stage = Stage.CONNECT
                slot.conn = self._connect(server, secrets)
                slot.table_ready = slot.on_primary = False
                stage = Stage.QUERY
            conn = slot.conn
            if not slot.on_primary and not self._reached_primary(conn, slot, outcome):
                return outcome.failed(READ_ONLY_IN_RECOVERY)
            if not self._heartbeat(conn, outcome):
                # The commit was cancelled while waiting for the synchronous standby: an
                # application would still be waiting. Not writable, and the session is suspect.
                self._drop(slot)
                return outcome.failed(COMMIT_NOT_ACKNOWLEDGED)
            outcome.connected = outcome.writable = slot.answered = slot.on_primary = True
            outcome.in_recovery = False
            return outcome
        except _ConfigError:
            failure = classify(stage=Stage.CONFIG)
        except _PasswordError:
            failure = classify(stage=Stage.TOKEN)
        except psycopg.Error as exc:
            failure = classify(
                stage=stage, sqlstate=exc.sqlstate, message=str(exc), answered_before=slot.answered
            )
            self._log_driver_text(server, failure, _describe(exc), secrets)
        except Exception as exc:
            failure = classify(stage=stage, message=str(exc), answered_before=slot.answered)
            self._log_driver_text(server, failure, f"{type(exc).__name__}: {exc}", secrets)
        self._drop(slot)
        return outcome.failed(failure)

    def _reached_primary(self, conn: psycopg.Connection[Any], slot: _Slot, outcome: _Outcome) -> bool:
        """A new session: which node it reached (and that node's start), before anything writes."""
        row = self._execute(conn, STATUS_SQL).fetchone()
        if row is None:
            raise RuntimeError("no answer to the status query")
        outcome.connected = slot.answered = True
        outcome.in_recovery = bool(row[0])
        outcome.postmaster_started_at = _aware(row[1])
        if outcome.in_recovery:
            return False
        if self._create_table and not slot.table_ready:
            self._create_heartbeat_table(conn)
            slot.table_ready = True
        return True

    def _create_heartbeat_table(self, conn: psycopg.Connection[Any]) -> None:
        """CREATE TABLE IF NOT EXISTS, which is not safe against a concurrent creation: a session
        whose creation waited on another one's fails with 23505 (the catalog's unique index) or
        42P07 once that one commits, and the table exists then all the same (reproduced in
        tests/integration/test_postgres_probe.py)."""
        from psycopg import errors

        try:
            self._execute(conn, CREATE_TABLE_SQL)
        except (errors.UniqueViolation, errors.DuplicateTable):
            logger.info("postgres probe: the heartbeat table was created by another session meanwhile")

    def _heartbeat(self, conn: psycopg.Connection[Any], outcome: _Outcome) -> bool:
        """Commit the heartbeat; False when the commit was not acknowledged by the sync standby.

        On a session already known to be on the primary this is the check's one statement: it
        returns the postmaster's start time too. A node that became a standby cannot keep the
        session (promotion and demotion restart it), and a write there fails with 25006 anyway.
        """
        notices: list[str] = []
        handler = _collect_notices(notices)
        conn.add_notice_handler(handler)
        try:
            row = self._execute(conn, UPSERT_SQL, (self.probe_id,)).fetchone()
        finally:
            conn.remove_notice_handler(handler)
        if row is not None:
            outcome.postmaster_started_at = _aware(row[0])
        return not any(_SYNC_REP_WARNING in n for n in notices)

    def _connect(self, server: str, secrets: list[str]) -> psycopg.Connection[Any]:
        import psycopg

        conninfo, configured = self._conninfo(server)
        secrets.append(conninfo)
        bounds = (
            f"-c statement_timeout={self._statement_timeout_ms} "
            f"-c lock_timeout={self._lock_timeout_ms} "
            f"-c idle_in_transaction_session_timeout={self._idle_timeout_ms}"
        )
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": self._connect_timeout,
            "application_name": APPLICATION_NAME,
            # A keyword replaces the conninfo's own `options` (a search_path, say): keep those and
            # put the probe's bounds last, as the server applies -c settings in order.
            "options": f"{configured} {bounds}" if configured else bounds,
        }
        if self._password_for is not None:
            try:
                password = self._password_for(server)
            except Exception as exc:
                raise _PasswordError(f"could not get a password or token: {type(exc).__name__}") from None
            secrets.append(password)
            kwargs["password"] = password
        return psycopg.connect(conninfo, **kwargs)

    def _conninfo(self, server: str) -> tuple[str, str]:
        """The server's conninfo and its own ``options``; ``_ConfigError`` when it cannot be built
        or lacks a host or user."""
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo = self._conninfo_for(server)
            params = conninfo_to_dict(conninfo)
        except Exception as exc:
            raise _ConfigError(f"conninfo for {server}: {type(exc).__name__}") from None
        missing = [
            key
            for key, present in (
                ("host", params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST")),
                ("user", params.get("user") or os.environ.get("PGUSER")),
            )
            if not present
        ]
        if missing:
            raise _ConfigError(f"conninfo for {server} lacks {', '.join(missing)}")
        return conninfo, str(params.get("options") or os.environ.get("PGOPTIONS") or "")

    def _log_driver_text(self, server: str, failure: Failure, text: str, secrets: list[str]) -> None:
        logger.debug(
            "postgres probe: server %s: %s; driver said: %s",
            server,
            failure.fault,
            self._redact(text, secrets),
        )

    def _execute(
        self, conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] | None = None
    ) -> psycopg.Cursor[Any]:
        """Run one statement; it is cancelled if the server-side timeouts did not end it in time."""
        token = self._deadlines.watch(conn, self._statement_timeout_ms / 1000.0 + 1.0)
        try:
            return conn.execute(query, params)
        finally:
            self._deadlines.done(token)

    def _drop(self, slot: _Slot) -> None:
        conn, slot.conn, slot.table_ready, slot.on_primary = slot.conn, None, False, False
        if conn is not None:
            try:
                conn.close()
            except Exception:
                logger.debug("postgres probe: closing a connection failed", exc_info=True)

    def _redact(self, text: str, secrets: list[str]) -> str:
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            text = text.replace(secret, MARK)
        return redact(" ".join(text.split()), limit=_ERROR_LIMIT)


def _aware(started: object) -> datetime | None:
    return started.astimezone(timezone.utc) if isinstance(started, datetime) else None


@contextmanager
def _in_use(slot: _Slot) -> Iterator[datetime | None]:
    """The kept session is used (not watched) inside; yields when the server spoke while it was idle."""
    spoke = slot.watched.busy()
    try:
        yield spoke
    finally:
        conn = slot.conn
        try:
            fd = None if conn is None or conn.closed else conn.fileno()
        except Exception:  # a connection closed meanwhile has no socket
            fd = None
        slot.watched.idle(fd)


class _PasswordError(Exception):
    pass


class _ConfigError(Exception):
    pass


class ProbeReadError(Exception):
    """A ``PostgresProbe.read`` failed; the text is a classified reason, never driver text."""


def _cancel(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.cancel_safe(timeout=2)
        logger.warning("postgres probe: cancelled a statement that outlived its timeout")
    except Exception:
        logger.debug("postgres probe: cancel failed", exc_info=True)


def _collect_notices(sink: list[str]) -> Callable[[Any], None]:
    def handler(diagnostic: Any) -> None:
        primary = getattr(diagnostic, "message_primary", "") or ""
        detail = getattr(diagnostic, "message_detail", "") or ""
        text = f"{primary} {detail}"
        sink.append(text)

    return handler


def _describe(exc: Exception) -> str:
    """Class name, SQLSTATE and the primary message only (no DETAIL/HINT/CONTEXT)."""
    diag = getattr(exc, "diag", None)
    sqlstate = getattr(exc, "sqlstate", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    message = primary or str(exc)
    prefix = f"{type(exc).__name__}" + (f" [{sqlstate}]" if sqlstate else "")
    return f"{prefix}: {message}" if message else prefix
