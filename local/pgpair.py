"""A real PostgreSQL 15 primary and synchronous hot standby on loopback ports.

Layer: local tooling (never deployed). This is how tests and the drill get real failovers: it
models one Azure Flexible Server with high availability as two PostgreSQL clusters on 127.0.0.1,
the primary with ``synchronous_standby_names='*'`` and the standby built with
``pg_basebackup -R``. The single Azure endpoint (whose DNS name is repointed on failover) is
modelled by a libpq multi-host conninfo with ``target_session_attrs=read-write``: a client
always reaches whichever node is the writable primary.

What it must not do: touch the system cluster (it never uses port 5432 and only ever controls the
data directories it created), listen on anything but loopback, run a command without a timeout,
wait without a bound, or leave a postmaster running after ``stop_pair``. PostgreSQL refuses to
run as root, so when this runs as root every PostgreSQL command runs as the ``postgres`` user
(``runuser -u postgres --``) and the data directories belong to that user. Control connections
go over a Unix socket in a private directory with ``trust`` for local connections only; TCP on
127.0.0.1 requires SCRAM passwords. Passwords are never logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from local.services import free_port

logger = logging.getLogger(__name__)

PG_BIN = Path(os.environ.get("PGPAIR_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_OS_USER = "postgres"
SUPERUSER = "postgres"
APP_ROLE = "app"
APP_DB = "app"
_SYNC_STANDBY = "SELECT 1 FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = 'sync'"

FailoverMode = Literal["forced", "planned"]


class PgPairError(RuntimeError):
    """A pair operation failed; the message says which step and shows the node's log tail."""


@dataclass
class PgNode:
    """One PostgreSQL cluster of the pair. ``name`` is stable ("a"/"b"); its role is not."""

    name: str
    port: int
    data_dir: Path
    log_file: Path

    @property
    def cluster_name(self) -> str:
        return f"pgpair-{self.name}-{self.port}"


@dataclass(frozen=True)
class FailoverStep:
    name: str
    monotonic: float
    wall: datetime


@dataclass
class FailoverTiming:
    """What a failover did and when, from "start" (marked when made): monotonic seconds for
    durations, wall clock (UTC) for records."""

    mode: str
    steps: list[FailoverStep] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mark("start")

    def mark(self, name: str) -> None:
        self.steps.append(FailoverStep(name, time.monotonic(), datetime.now(timezone.utc)))

    @property
    def duration_seconds(self) -> float:
        return self.steps[-1].monotonic - self.steps[0].monotonic


@dataclass
class PgPair:
    """A primary and a synchronous hot standby. Roles swap on failover; node names do not."""

    base_dir: Path
    nodes: tuple[PgNode, PgNode]
    primary: PgNode
    standby: PgNode
    socket_dir: Path
    password: str = field(repr=False)
    stopped: bool = False  # set by stop_pair (watchers should stop watching), cleared by start_node
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def conninfo(
        self,
        dbname: str = APP_DB,
        *,
        node: PgNode | None = None,
        user: str = APP_ROLE,
        include_password: bool = False,
    ) -> str:
        """The single endpoint: both nodes, in fixed node order, read-write sessions only; with
        ``node``, that node alone and any session (to reach the standby directly).

        The endpoint does not change across failovers, like the Azure server name. Without
        ``include_password`` the string carries no secret (pass the password separately).
        """
        nodes = self.nodes if node is None else (node,)
        hosts, ports = ",".join("127.0.0.1" for _ in nodes), ",".join(str(n.port) for n in nodes)
        text = f"host={hosts} port={ports} dbname={dbname} user={user} connect_timeout=2 sslmode=disable"
        if node is None:
            text += " target_session_attrs=read-write"
        if include_password:
            quoted = self.password.replace("\\", "\\\\").replace("'", "\\'")
            text += f" password='{quoted}'"
        return text


# --------------------------------------------------------------------------- process helpers


def _as_postgres(argv: Sequence[str]) -> list[str]:
    """``argv`` as the postgres user when running as root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return list(argv)
    found = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin:/usr/bin:/bin")
    if found is None:
        raise PgPairError("runuser not found: running as root needs it to run PostgreSQL as postgres")
    return [found, "-u", PG_OS_USER, "--", *argv]


def _run(tool: str, *args: str, timeout: float) -> str:
    """Run a PostgreSQL 15 tool (as the postgres user when root), bounded; return stdout+stderr."""
    binary = PG_BIN / tool
    if not binary.exists():
        raise PgPairError(f"PostgreSQL 15 binary not found: {binary} (install postgresql-15)")
    env = {"PATH": f"{PG_BIN}:/usr/bin:/bin", "LANG": "C", "LC_ALL": "C", "PGTZ": "UTC"}
    argv = _as_postgres([str(binary), *args])
    try:
        proc = subprocess.run(
            argv, cwd="/", env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PgPairError(f"{tool} timed out after {timeout:.0f}s") from exc
    output = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0:
        raise PgPairError(f"{tool} failed (exit {proc.returncode}): {output.strip()[-1500:]}")
    return output


def _pg_ctl(node: PgNode, action: str, *args: str, timeout: float) -> str:
    """``pg_ctl <action>`` on one node, waiting at most ``timeout`` (the process a little longer)."""
    argv = (action, "-w", "-t", str(int(timeout)), "-D", str(node.data_dir), *args)
    return _run("pg_ctl", *argv, timeout=timeout + 5)


def _chown_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(PG_OS_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _sql(pair: PgPair, node: PgNode, *statements: Any, dbname: str = "postgres") -> list[tuple[Any, ...]]:
    """Run statements (str or ``psycopg.sql`` objects) on one node as the superuser, over the pair's
    private socket directory, each one bounded; returns the rows of the last one."""
    import psycopg

    rows: list[tuple[Any, ...]] = []
    with psycopg.connect(
        host=str(pair.socket_dir),
        port=node.port,
        user=SUPERUSER,
        dbname=dbname,
        connect_timeout=2,
        autocommit=True,
        application_name="pgpair-control",
        options="-c statement_timeout=30s",  # every control statement is bounded too
    ) as conn:
        for statement in statements:
            cursor = conn.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
    return rows


def run_as_superuser(pair: PgPair, *statements: Any, dbname: str = APP_DB) -> None:
    """Run statements (str or ``psycopg.sql`` objects) on the primary as the superuser.

    For local tests and drills that change roles and grants (the ``app`` role is not a superuser).
    """
    _sql(pair, pair.primary, *statements, dbname=dbname)


def _wait(what: str, predicate: Callable[[], object], *, timeout: float, interval: float = 0.05) -> None:
    """Poll ``predicate()`` until truthy; bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            if predicate():
                return
        except Exception as exc:  # the condition may raise while a node is starting
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            raise PgPairError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


# --------------------------------------------------------------------------- node control


def node_running(node: PgNode) -> bool:
    """Whether the node's postmaster is alive (``pg_ctl status``)."""
    if not (node.data_dir / "PG_VERSION").exists():
        return False
    try:
        _run("pg_ctl", "status", "-D", str(node.data_dir), timeout=10)
    except PgPairError:  # exit 3: not running
        return False
    return True


def start_node(pair: PgPair, node: PgNode, *, timeout: float = 30) -> None:
    """Start one node (waits until it accepts connections).

    Its port and cluster name are given here, not in a file: a base backup copies the files of
    the other node, and the name is how ``pair_processes`` knows this node's processes.
    """
    logger.info("pgpair: starting node %s on port %d", node.name, node.port)
    pair.stopped = False
    identity = f"-p {node.port} -c cluster_name={node.cluster_name}"
    try:
        _pg_ctl(node, "start", "-l", str(node.log_file), "-o", identity, timeout=timeout)
    except PgPairError as exc:
        try:
            tail = "\n".join(node.log_file.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            tail = "(no log)"
        raise PgPairError(f"node {node.name} did not start: {exc}\nlog tail:\n{tail}") from exc


def stop_node(
    pair: PgPair, node: PgNode, *, mode: Literal["fast", "immediate", "smart"] = "fast", timeout: float = 15
) -> None:
    """Stop one node if it runs; falls back to an immediate stop, then SIGKILL of its postmaster."""
    if not node_running(node):
        return
    logger.info("pgpair: stopping node %s (port %d) mode=%s", node.name, node.port, mode)
    for how, seconds in ((mode, timeout), ("immediate", 10)):
        try:
            _pg_ctl(node, "stop", "-m", how, timeout=seconds)
            return
        except PgPairError as exc:
            logger.warning("pgpair: %s stop of node %s failed: %s", how, node.name, exc)
    if node_running(node):
        _kill_postmaster(node)


def _kill_postmaster(node: PgNode) -> None:
    try:
        pid = int((node.data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    if str(node.data_dir) not in _cmdline(Path(f"/proc/{pid}")):
        return  # not ours (a recycled pid): never kill it
    logger.warning("pgpair: killing postmaster %d of node %s", pid, node.name)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait(f"postmaster {pid} to exit", lambda: not Path(f"/proc/{pid}").exists(), timeout=10)


def restart_node(pair: PgPair, node: PgNode, *, timeout: float = 30) -> None:
    """Restart one node (fast shutdown, start): a postmaster restart without a failover."""
    with pair.lock:
        stop_node(pair, node, mode="fast", timeout=timeout)
        start_node(pair, node, timeout=timeout)


def ping(pair: PgPair, node: PgNode, query: str = "SELECT 1") -> bool:
    """Whether ``node`` answers ``query`` with a row over its control socket (never raises)."""
    try:
        return bool(_sql(pair, node, query))
    except Exception:
        return False


def is_synchronous(pair: PgPair) -> bool:
    """The standby streams from the primary and is its synchronous standby."""
    return ping(pair, pair.primary, _SYNC_STANDBY)


def _set_sync_names(pair: PgPair, value: str, *nodes: PgNode) -> None:
    """ALTER SYSTEM SET synchronous_standby_names (``''``: none) on each node, reload, and wait until
    it applies. ALTER SYSTEM works on a hot standby too: it only writes a file."""
    from psycopg import sql

    alter = sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(sql.Literal(value))
    for node in nodes:
        _sql(pair, node, alter, "SELECT pg_reload_conf()")
        applied = lambda n=node: _sql(pair, n, "SHOW synchronous_standby_names")[0][0] == value  # noqa: E731
        _wait(f"synchronous_standby_names={value!r} on node {node.name}", applied, timeout=10)


# --------------------------------------------------------------------------- pair lifecycle

_BASE_CONF = """
# ---- pgpair (local/pgpair.py); PostgreSQL 15 defaults are not repeated ----
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
unix_socket_permissions = 0700
max_connections = 40
shared_buffers = 16MB
max_wal_senders = 5
max_replication_slots = 5
wal_keep_size = 64MB
wal_log_hints = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 500ms
fsync = off
log_line_prefix = '%m [%p] %q%a '
log_min_messages = warning
timezone = 'UTC'
"""
# Only loopback TCP with SCRAM, plus local trust over the private socket directory.
_HBA = """# pgpair: control over the private Unix socket dir; clients over loopback TCP with SCRAM
local   all             all                                     trust
local   replication     all                                     trust
host    all             all             127.0.0.1/32            scram-sha-256
"""


def _prepare_base_dir(base_dir: Path) -> Path:
    base_dir = Path(base_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    if any(base_dir.iterdir()):
        raise PgPairError(f"{base_dir} is not empty: start_pair needs an empty or new directory")
    os.chmod(base_dir, 0o700)
    _chown_postgres(base_dir)
    writable = subprocess.run(_as_postgres(["test", "-w", str(base_dir)]), timeout=10, check=False)
    if writable.returncode != 0:
        raise PgPairError(
            f"the postgres user cannot write {base_dir}: every parent directory must be "
            "traversable by postgres (use a directory under /tmp made by tempfile.mkdtemp)"
        )
    return base_dir


def start_pair(base_dir: Path, *, password: str) -> PgPair:
    """Create and start a primary and a synchronous hot standby under ``base_dir``.

    ``base_dir`` must be new or empty; the nodes listen on two free loopback ports. The ``app``
    database and login role (SCRAM, ``password``) are created on the primary. Returns when the
    standby streams synchronously (bounded).
    """
    if not password:
        raise PgPairError("a password for the app role is required")
    started = time.monotonic()
    base_dir = _prepare_base_dir(base_dir)
    socket_dir = Path(tempfile.mkdtemp(prefix="pgpair-"))  # mode 0700; short, as sun_path is 108 bytes
    _chown_postgres(socket_dir)
    a, b = (PgNode(n, free_port(), base_dir / f"node_{n}", base_dir / f"node_{n}.log") for n in "ab")
    while b.port == a.port:
        b.port = free_port()
    pair = PgPair(base_dir, (a, b), a, b, socket_dir, password)
    try:
        with pair.lock:
            _init_primary(pair)
            _attach_standby(pair, timeout=30)
    except BaseException:
        logger.exception("pgpair: start failed under %s; stopping what was started", base_dir)
        stop_pair(pair)
        raise
    elapsed = time.monotonic() - started
    logger.info("pgpair: pair started in %.1fs: primary port %d, standby port %d", elapsed, a.port, b.port)
    return pair


def _init_primary(pair: PgPair) -> None:
    """``initdb`` the primary with the pair's configuration, start it, and create the ``app`` login
    role (SCRAM, the pair's password) and the database it owns."""
    from psycopg import sql

    node = pair.primary
    flags = (
        "--auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C --no-sync --no-instructions"
    )
    _run("initdb", "-D", str(node.data_dir), "-U", SUPERUSER, *flags.split(), timeout=60)
    with (node.data_dir / "postgresql.conf").open("a") as fh:  # initdb's files: they stay postgres's
        fh.write(_BASE_CONF.format(socket_dir=pair.socket_dir))
    (node.data_dir / "pg_hba.conf").write_text(_HBA)
    start_node(pair, node)
    role, db = sql.Identifier(APP_ROLE), sql.Identifier(APP_DB)
    create_role = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(pair.password))
    create_db = sql.SQL("CREATE DATABASE {} OWNER {}").format(db, role)
    run_as_superuser(pair, create_role, create_db, dbname="postgres")


def _attach_standby(pair: PgPair, *, timeout: float) -> None:
    """Build ``pair.standby`` afresh from the primary (``pg_basebackup -R``), start it, and wait
    until it is the primary's synchronous standby (the same path for a new pair and a rebuild).

    synchronous_standby_names='*' goes on both nodes, as Azure's HA pair shares its configuration:
    the standby's copy is what makes a promoted standby hang its commits unless it is cleared.
    """
    node, primary = pair.standby, pair.primary
    # If the primary still asks for a synchronous standby, the base backup's own commits hang.
    _set_sync_names(pair, "", primary)
    logger.info("pgpair: pg_basebackup node %s from node %s", node.name, primary.name)
    source = f"host={pair.socket_dir} port={primary.port} user={SUPERUSER}"
    flags = ("-D", str(node.data_dir), "-R", "-X", "stream", "-c", "fast", "--no-sync")
    _run("pg_basebackup", "-d", f"{source} application_name={node.cluster_name}", *flags, timeout=120)
    start_node(pair, node, timeout=timeout)
    _set_sync_names(pair, "*", node, primary)
    _wait("the standby to stream synchronously", lambda: _sql(pair, primary, _SYNC_STANDBY), timeout=timeout)
    logger.info("pgpair: node %s streams synchronously from node %s", node.name, primary.name)


# --------------------------------------------------------------------------- failover


def kill_primary(pair: PgPair) -> None:
    """Stop the primary immediately (an unplanned failure). Nothing is promoted."""
    with pair.lock:
        logger.info("pgpair: killing primary %s (port %d)", pair.primary.name, pair.primary.port)
        stop_node(pair, pair.primary, mode="immediate")


def promote_standby(pair: PgPair, *, timing: FailoverTiming | None = None) -> FailoverTiming:
    """Promote the standby, make it writable without a synchronous standby, and swap roles."""
    with pair.lock:
        old, new = pair.primary, pair.standby
        timing = timing or FailoverTiming(mode="promote")
        if not node_running(new):
            raise PgPairError(f"cannot promote node {new.name}: it is not running")
        logger.info("pgpair: promoting node %s (port %d)", new.name, new.port)
        timing.mark("promote_requested")
        _pg_ctl(new, "promote", timeout=30)
        recovered = lambda: not _sql(pair, new, "SELECT pg_is_in_recovery()")[0][0]  # noqa: E731
        _wait(f"node {new.name} to leave recovery", recovered, timeout=30)
        timing.mark("promoted")
        # The promoted standby copied synchronous_standby_names='*' from the old primary: with no
        # standby left, every commit would hang. Clear it before anything writes.
        _set_sync_names(pair, "", new)
        timing.mark("sync_standby_names_cleared")
        # txid_current() assigns an xid: the commit really writes WAL.
        writes = lambda: _sql(pair, new, "SELECT txid_current()")  # noqa: E731
        _wait(f"node {new.name} to accept writes", writes, timeout=15)
        timing.mark("writable")
        pair.primary, pair.standby = new, old
        timing.mark("done")
        logger.info("pgpair: node %s is the writable primary (port %d)", new.name, new.port)
        return timing


def failover(pair: PgPair, *, mode: FailoverMode) -> FailoverTiming:
    """Fail the pair over like Azure does: stop the primary, promote the standby, swap roles.

    planned: CHECKPOINT, fast shutdown (the walsender ships the shutdown checkpoint to the standby
    first), wait until the standby received it, promote. forced: immediate stop, promote.
    The old primary stays down; ``rebuild_standby`` turns it into the new standby.
    """
    if mode not in ("forced", "planned"):
        raise ValueError(f"mode must be 'forced' or 'planned', not {mode!r}")
    with pair.lock:
        old, new = pair.primary, pair.standby
        timing = FailoverTiming(mode=mode)
        logger.info("pgpair: %s failover from node %s to node %s", mode, old.name, new.name)
        if not node_running(new):
            raise PgPairError(f"cannot fail over: standby node {new.name} is not running")
        if mode == "forced":
            kill_primary(pair)
        elif node_running(old):
            _sql(pair, old, "CHECKPOINT")
            timing.mark("checkpointed")
            stop_node(pair, old, mode="fast", timeout=30)
        timing.mark("primary_stopped")
        if mode == "planned":
            try:
                _await_shutdown_checkpoint(pair, old, new)
                timing.mark("standby_caught_up")
            except PgPairError as exc:
                logger.warning("pgpair: planned failover continues without catch-up: %s", exc)
        return promote_standby(pair, timing=timing)


def _await_shutdown_checkpoint(pair: PgPair, old: PgNode, new: PgNode) -> None:
    """Wait (10 s at most) until ``new`` received the last checkpoint of the stopped ``old``."""
    control = _run("pg_controldata", str(old.data_dir), timeout=15)
    found = re.search(r"^Latest checkpoint location:\s*([0-9A-F]+/[0-9A-F]+)$", control, re.MULTILINE)
    if found is None:
        raise PgPairError(f"pg_controldata shows no checkpoint location for node {old.name}")
    # An LSN is hex/hex: safe in SQL text. pg_lsn compares; greatest() skips a position not known yet.
    received = f"SELECT greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) >= '{found[1]}'"
    caught_up = lambda: _sql(pair, new, received)[0][0]  # noqa: E731
    _wait(f"node {new.name} to receive the shutdown checkpoint", caught_up, timeout=10)


def rebuild_standby(pair: PgPair, *, timeout: float = 60) -> None:
    """Turn the current standby node (the old primary) into a synchronous standby again.

    A fresh ``pg_basebackup`` from the new primary: unlike pg_rewind it works whatever state the
    old primary was left in (crashed, diverged, missing WAL), and the local data set is tiny.
    """
    with pair.lock:
        node = pair.standby
        logger.info("pgpair: rebuilding node %s as the standby of node %s", node.name, pair.primary.name)
        stop_node(pair, node, mode="immediate")
        shutil.rmtree(node.data_dir, ignore_errors=True)
        _attach_standby(pair, timeout=timeout)


def stop_pair(pair: PgPair, *, timeout: float = 15) -> None:
    """Stop both nodes (fast, then immediate, then SIGKILL). Bounded and idempotent."""
    with pair.lock:
        pair.stopped = True
        for node in (pair.standby, pair.primary):
            try:
                stop_node(pair, node, mode="fast", timeout=timeout)
            except Exception:
                logger.exception("pgpair: could not stop node %s", node.name)
        shutil.rmtree(pair.socket_dir, ignore_errors=True)
        logger.info("pgpair: pair under %s stopped", pair.base_dir)


def pair_processes(pair: PgPair) -> list[int]:
    """PIDs of processes that belong to this pair (postmaster by data dir, children by cluster name)."""
    markers = [str(n.data_dir) for n in pair.nodes] + [f"postgres: {n.cluster_name}:" for n in pair.nodes]
    processes = (entry for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [int(entry.name) for entry in processes if any(m in _cmdline(entry) for m in markers)]


def _cmdline(proc: Path) -> str:
    """A process's command line from its ``/proc/<pid>`` directory ("" once it is gone)."""
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
