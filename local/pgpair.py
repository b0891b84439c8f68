"""A real PostgreSQL 15 primary and synchronous hot standby on loopback ports.

Layer: local tooling (never deployed). This is how tests and the drill get real failovers: it
models one Azure Flexible Server with high availability as two PostgreSQL clusters on 127.0.0.1,
the primary with ``synchronous_standby_names='*'`` and the standby built with
``pg_basebackup -R``. The single Azure endpoint (whose DNS name is repointed on failover) is
modelled by a libpq multi-host conninfo with ``target_session_attrs=read-write``: a client
always reaches whichever node is the writable primary.

What it must not do: touch the system cluster (it never uses port 5432 unless told to, and only
ever controls the data directories it created), listen on anything but loopback, run a command
without a timeout, wait without a bound, or leave a postmaster running after ``stop_pair``.
PostgreSQL refuses to run as root, so when this runs as root every PostgreSQL command runs as the
``postgres`` user (``runuser -u postgres --``) and the data directories belong to that user.
Control connections go over a Unix socket in a private directory with ``trust`` for local
connections only; TCP on 127.0.0.1 requires SCRAM passwords. Passwords are never logged.

CLI: ``python -m local.pgpair start|failover|promote|kill-primary|rebuild|status|stop --dir D``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from local.services import free_port

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

PG_BIN = Path(os.environ.get("PGPAIR_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_OS_USER = "postgres"
SUPERUSER = "postgres"
APP_ROLE = "app"
APP_DB = "app"
STATE_FILE = "pair.json"
NODE_CONF = "pgpair_node.conf"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; ".s.PGSQL.NNNNN" needs 15 of them

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
    """What a failover did and when: monotonic seconds for durations, wall clock (UTC) for records."""

    mode: str
    old_primary: str
    new_primary: str
    steps: list[FailoverStep] = field(default_factory=list)

    def mark(self, name: str) -> FailoverStep:
        step = FailoverStep(name, time.monotonic(), datetime.now(timezone.utc))
        self.steps.append(step)
        return step

    def at(self, name: str) -> FailoverStep:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def seconds_between(self, first: str, last: str) -> float:
        return self.at(last).monotonic - self.at(first).monotonic

    @property
    def duration_seconds(self) -> float:
        if len(self.steps) < 2:
            return 0.0
        return self.steps[-1].monotonic - self.steps[0].monotonic

    def to_dict(self) -> dict[str, Any]:
        origin = self.steps[0].monotonic if self.steps else 0.0
        return {
            "mode": self.mode,
            "old_primary": self.old_primary,
            "new_primary": self.new_primary,
            "duration_seconds": round(self.duration_seconds, 3),
            "steps": [
                {
                    "name": s.name,
                    "at": s.wall.isoformat().replace("+00:00", "Z"),
                    "offset_seconds": round(s.monotonic - origin, 3),
                }
                for s in self.steps
            ],
        }


@dataclass
class PgPair:
    """A primary and a synchronous hot standby. Roles swap on failover; node names do not."""

    base_dir: Path
    nodes: tuple[PgNode, PgNode]
    primary: PgNode
    standby: PgNode
    socket_dir: Path
    password: str | None = field(default=None, repr=False)
    owns_socket_dir: bool = False
    stopped: bool = False  # set by stop_pair (watchers should stop watching), cleared by start_node
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def primary_port(self) -> int:
        return self.primary.port

    @property
    def standby_port(self) -> int:
        return self.standby.port

    def conninfo(self, dbname: str = APP_DB, *, user: str = APP_ROLE, include_password: bool = False) -> str:
        """The single endpoint: both nodes, in fixed node order, read-write sessions only.

        The string does not change across failovers, like the Azure server name. Without
        ``include_password`` it carries no secret (pass the password separately).
        """
        hosts = ",".join("127.0.0.1" for _ in self.nodes)
        ports = ",".join(str(n.port) for n in self.nodes)
        text = (
            f"host={hosts} port={ports} dbname={dbname} user={user} "
            "target_session_attrs=read-write connect_timeout=2 sslmode=disable"
        )
        if include_password:
            text += f" password={_quote_conninfo(self._require_password())}"
        return text

    def node_conninfo(
        self, node: PgNode, dbname: str = APP_DB, *, user: str = APP_ROLE, include_password: bool = False
    ) -> str:
        """One node only, any session (used to reach the standby directly)."""
        text = (
            f"host=127.0.0.1 port={node.port} dbname={dbname} user={user} connect_timeout=2 sslmode=disable"
        )
        if include_password:
            text += f" password={_quote_conninfo(self._require_password())}"
        return text

    def node(self, name: str) -> PgNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def _require_password(self) -> str:
        if self.password is None:
            raise PgPairError("this pair was loaded without its password")
        return self.password


# --------------------------------------------------------------------------- process helpers


def _is_root() -> bool:
    return os.geteuid() == 0


def _runuser() -> str:
    found = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin:/usr/bin:/bin")
    if found is None:
        raise PgPairError("runuser not found: running as root needs it to run PostgreSQL as postgres")
    return found


def _as_postgres(argv: Sequence[str]) -> list[str]:
    if _is_root():
        return [_runuser(), "-u", PG_OS_USER, "--", *argv]
    return list(argv)


def _run(argv: Sequence[str], *, timeout: float, cwd: Path | None = None, check: bool = True) -> str:
    """Run a PostgreSQL tool (as the postgres user when root), bounded; return stdout+stderr."""
    full = _as_postgres(argv)
    env = {"PATH": f"{PG_BIN}:/usr/bin:/bin", "LANG": "C", "LC_ALL": "C", "PGTZ": "UTC"}
    try:
        proc = subprocess.run(
            full,
            cwd=str(cwd) if cwd else "/",
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PgPairError(f"{Path(argv[0]).name} timed out after {timeout:.0f}s") from exc
    output = (proc.stdout or "") + (proc.stderr or "")
    if check and proc.returncode != 0:
        raise PgPairError(f"{Path(argv[0]).name} failed (exit {proc.returncode}): {output.strip()[-1500:]}")
    return output


def _pg(tool: str) -> str:
    path = PG_BIN / tool
    if not path.exists():
        raise PgPairError(f"PostgreSQL 15 binary not found: {path} (install postgresql-15)")
    return str(path)


def _chown_postgres(path: Path) -> None:
    if not _is_root():
        return
    entry = pwd.getpwnam(PG_OS_USER)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _quote_conninfo(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _log_tail(node: PgNode, lines: int = 15) -> str:
    try:
        text = node.log_file.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _connect_admin(
    pair: PgPair, node: PgNode, *, dbname: str = "postgres", timeout: int = 2
) -> psycopg.Connection[Any]:
    import psycopg

    return psycopg.connect(
        host=str(pair.socket_dir),
        port=node.port,
        user=SUPERUSER,
        dbname=dbname,
        connect_timeout=max(2, timeout),
        autocommit=True,
        application_name="pgpair-control",
    )


@contextlib.contextmanager
def _admin(pair: PgPair, node: PgNode, *, dbname: str = "postgres") -> Iterator[psycopg.Connection[Any]]:
    conn = _connect_admin(pair, node, dbname=dbname)
    try:
        yield conn
    finally:
        conn.close()


def run_as_superuser(pair: PgPair, *statements: Any, dbname: str = APP_DB) -> None:
    """Run statements (str or ``psycopg.sql`` objects) on the primary as the superuser.

    For local tests and drills that change roles and grants (the ``app`` role is not a superuser).
    """
    with _admin(pair, pair.primary, dbname=dbname) as conn:
        for statement in statements:
            conn.execute(statement)


def _wait(what: str, predicate: Any, *, timeout: float, interval: float = 0.05) -> None:
    """Poll ``predicate()`` until truthy; bounded by ``timeout`` and by a loop count."""
    deadline = time.monotonic() + timeout
    attempts = int(timeout / interval) + 2
    last_error: BaseException | None = None
    for _ in range(attempts):
        try:
            if predicate():
                return
        except Exception as exc:  # the condition may raise while a node is starting
            last_error = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    detail = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
    raise PgPairError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


# --------------------------------------------------------------------------- node control


def node_running(node: PgNode) -> bool:
    """Whether the node's postmaster is alive (``pg_ctl status``)."""
    if not (node.data_dir / "PG_VERSION").exists():
        return False
    out = subprocess.run(
        _as_postgres([_pg("pg_ctl"), "status", "-D", str(node.data_dir)]),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
        cwd="/",
    )
    return out.returncode == 0


def _write_node_conf(node: PgNode) -> None:
    path = node.data_dir / NODE_CONF
    path.write_text(f"port = {node.port}\ncluster_name = '{node.cluster_name}'\n")
    _chown_postgres(path)


def start_node(pair: PgPair, node: PgNode, *, timeout: float = 30) -> None:
    """Start one node (waits until it accepts connections)."""
    logger.info("pgpair: starting node %s on port %d", node.name, node.port)
    pair.stopped = False
    try:
        _run(
            [
                _pg("pg_ctl"),
                "start",
                "-w",
                "-t",
                str(int(timeout)),
                "-D",
                str(node.data_dir),
                "-l",
                str(node.log_file),
            ],
            timeout=timeout + 5,
            cwd=pair.base_dir,
        )
    except PgPairError as exc:
        raise PgPairError(f"node {node.name} did not start: {exc}\nlog tail:\n{_log_tail(node)}") from exc


def stop_node(
    pair: PgPair, node: PgNode, *, mode: Literal["fast", "immediate", "smart"] = "fast", timeout: float = 15
) -> None:
    """Stop one node if it runs; falls back to an immediate stop, then SIGKILL of its postmaster."""
    if not node_running(node):
        return
    logger.info("pgpair: stopping node %s (port %d) mode=%s", node.name, node.port, mode)
    try:
        _run(
            [_pg("pg_ctl"), "stop", "-w", "-t", str(int(timeout)), "-m", mode, "-D", str(node.data_dir)],
            timeout=timeout + 5,
            cwd=pair.base_dir,
        )
        return
    except PgPairError as exc:
        logger.warning("pgpair: stop of node %s failed: %s", node.name, exc)
    if mode != "immediate":
        with contextlib.suppress(PgPairError):
            _run(
                [_pg("pg_ctl"), "stop", "-w", "-t", "10", "-m", "immediate", "-D", str(node.data_dir)],
                timeout=15,
                cwd=pair.base_dir,
            )
    if node_running(node):
        _kill_postmaster(node)


def _kill_postmaster(node: PgNode) -> None:
    pid_file = node.data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return
    if str(node.data_dir) not in cmdline:
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


def ping(pair: PgPair, node: PgNode) -> bool:
    """Whether ``node`` answers a query over its control socket (short timeout, never raises)."""
    try:
        with _admin(pair, node) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def _in_recovery(pair: PgPair, node: PgNode) -> bool:
    with _admin(pair, node) as conn:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    return bool(row and row[0])


def _set_sync_names(pair: PgPair, node: PgNode, value: str | None) -> None:
    """ALTER SYSTEM SET (value) or RESET (None) synchronous_standby_names, reload, and verify."""
    from psycopg import sql

    expected = value or ""
    with _admin(pair, node) as conn:
        if value is None:
            conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
        else:
            conn.execute(
                sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(sql.Literal(value))
            )
        conn.execute("SELECT pg_reload_conf()")

    def applied() -> bool:
        with _admin(pair, node) as check:
            row = check.execute("SHOW synchronous_standby_names").fetchone()
        return row is not None and row[0] == expected

    _wait(f"synchronous_standby_names={expected!r} on node {node.name}", applied, timeout=10)


def _make_synchronous(pair: PgPair, *, timeout: float = 30) -> None:
    """synchronous_standby_names='*' on both nodes (as Azure's HA pair shares its configuration;
    the standby's copy is what makes a promoted standby hang its commits unless it is cleared),
    then wait until the standby is the primary's synchronous standby."""
    _set_sync_names(pair, pair.standby, "*")  # ALTER SYSTEM works on a hot standby (it only writes a file)
    _set_sync_names(pair, pair.primary, "*")
    _wait_streaming(pair, sync=True, timeout=timeout)


def _replication_state(pair: PgPair) -> list[tuple[str, str]]:
    with _admin(pair, pair.primary) as conn:
        rows = conn.execute("SELECT state, sync_state FROM pg_stat_replication").fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def is_synchronous(pair: PgPair) -> bool:
    """The standby streams from the primary and is its synchronous standby."""
    try:
        return ("streaming", "sync") in _replication_state(pair)
    except Exception:
        return False


def _wait_streaming(pair: PgPair, *, sync: bool, timeout: float = 30) -> None:
    def ok() -> bool:
        states = _replication_state(pair)
        if sync:
            return ("streaming", "sync") in states
        return any(state == "streaming" for state, _ in states)

    _wait("the standby to stream" + (" synchronously" if sync else ""), ok, timeout=timeout)


# --------------------------------------------------------------------------- state file


def _save_state(pair: PgPair) -> None:
    state = {
        "base_dir": str(pair.base_dir),
        "socket_dir": str(pair.socket_dir),
        "owns_socket_dir": pair.owns_socket_dir,
        "primary": pair.primary.name,
        "nodes": [
            {"name": n.name, "port": n.port, "data_dir": str(n.data_dir), "log_file": str(n.log_file)}
            for n in pair.nodes
        ],
    }
    path = pair.base_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def load_pair(base_dir: Path, *, password: str | None = None) -> PgPair:
    """Rebuild a ``PgPair`` from the state file a ``start_pair`` wrote (for the CLI)."""
    path = Path(base_dir) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PgPairError(f"no pair state in {base_dir}: {exc}") from exc
    raw_nodes = state["nodes"]
    a, b = (
        PgNode(str(n["name"]), int(n["port"]), Path(n["data_dir"]), Path(n["log_file"])) for n in raw_nodes
    )
    primary = a if state["primary"] == a.name else b
    standby = b if primary is a else a
    return PgPair(
        base_dir=Path(state["base_dir"]),
        nodes=(a, b),
        primary=primary,
        standby=standby,
        socket_dir=Path(state["socket_dir"]),
        password=password,
        owns_socket_dir=bool(state.get("owns_socket_dir", False)),
    )


# --------------------------------------------------------------------------- pair lifecycle

_BASE_CONF = """
# ---- pgpair (local/pgpair.py) ----
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
unix_socket_permissions = 0700
max_connections = 40
shared_buffers = 16MB
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
wal_keep_size = 64MB
wal_log_hints = on
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 500ms
synchronous_commit = on
fsync = off
full_page_writes = on
password_encryption = scram-sha-256
log_line_prefix = '%m [%p] %q%a '
log_min_messages = warning
log_connections = off
timezone = 'UTC'
include_if_exists = '{node_conf}'
"""


def _prepare_base_dir(base_dir: Path) -> Path:
    base_dir = Path(base_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    if any(base_dir.iterdir()):
        raise PgPairError(f"{base_dir} is not empty: start_pair needs an empty or new directory")
    os.chmod(base_dir, 0o700)
    _chown_postgres(base_dir)
    if _is_root():
        probe = subprocess.run(
            [_runuser(), "-u", PG_OS_USER, "--", "test", "-w", str(base_dir)],
            capture_output=True,
            timeout=10,
            check=False,
        )
        if probe.returncode != 0:
            raise PgPairError(
                f"the postgres user cannot write {base_dir}: every parent directory must be "
                "traversable by postgres (use a directory under /tmp made by tempfile.mkdtemp)"
            )
    return base_dir


def _make_socket_dir(base_dir: Path) -> tuple[Path, bool]:
    candidate = base_dir / "sock"
    if len(str(candidate)) + 20 <= _SOCKET_PATH_MAX:
        candidate.mkdir(mode=0o700)
        _chown_postgres(candidate)
        return candidate, False
    short = Path(tempfile.mkdtemp(prefix="pgpair-"))
    os.chmod(short, 0o700)
    _chown_postgres(short)
    return short, True


def start_pair(base_dir: Path, *, ports: tuple[int, int] | None = None, password: str) -> PgPair:
    """Create and start a primary and a synchronous hot standby under ``base_dir``.

    ``base_dir`` must be new or empty. Ports default to two free loopback ports. The ``app``
    database and login role (SCRAM, ``password``) are created on the primary. Returns when the
    standby streams synchronously (bounded).
    """
    if not password:
        raise PgPairError("a password for the app role is required")
    if ports is not None and (ports[0] == ports[1] or 5432 in ports):
        raise PgPairError("ports must be two distinct ports other than 5432")
    started = time.monotonic()
    base_dir = _prepare_base_dir(base_dir)
    socket_dir, owns_socket_dir = _make_socket_dir(base_dir)
    port_a, port_b = ports if ports is not None else (free_port(), free_port())
    while port_b == port_a:
        port_b = free_port()
    a = PgNode("a", port_a, base_dir / "node_a", base_dir / "node_a.log")
    b = PgNode("b", port_b, base_dir / "node_b", base_dir / "node_b.log")
    pair = PgPair(
        base_dir=base_dir,
        nodes=(a, b),
        primary=a,
        standby=b,
        socket_dir=socket_dir,
        password=password,
        owns_socket_dir=owns_socket_dir,
    )
    try:
        with pair.lock:
            _initdb(pair, a)
            start_node(pair, a)
            _create_app(pair, password)
            _basebackup(pair, source=a, target=b)
            start_node(pair, b)
            _wait_streaming(pair, sync=False)
            _make_synchronous(pair)
            _save_state(pair)
    except BaseException:
        logger.exception("pgpair: start failed under %s; stopping what was started", base_dir)
        stop_pair(pair)
        raise
    logger.info(
        "pgpair: pair started in %.1fs: primary %s:%d, sync standby %s:%d",
        time.monotonic() - started,
        a.name,
        a.port,
        b.name,
        b.port,
    )
    return pair


def _initdb(pair: PgPair, node: PgNode) -> None:
    _run(
        [
            _pg("initdb"),
            "-D",
            str(node.data_dir),
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ],
        timeout=60,
        cwd=pair.base_dir,
    )
    conf = node.data_dir / "postgresql.conf"
    with conf.open("a") as fh:
        fh.write(_BASE_CONF.format(socket_dir=pair.socket_dir, node_conf=NODE_CONF))
    _write_node_conf(node)
    # Only loopback TCP with SCRAM, plus local trust over the private socket directory.
    hba = node.data_dir / "pg_hba.conf"
    hba.write_text(
        "# pgpair: control over the private Unix socket dir; clients over loopback TCP with SCRAM\n"
        "local   all             all                                     trust\n"
        "local   replication     all                                     trust\n"
        "host    all             all             127.0.0.1/32            scram-sha-256\n"
    )
    _chown_postgres(hba)


def _create_app(pair: PgPair, password: str) -> None:
    from psycopg import sql

    with _admin(pair, pair.primary) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(APP_ROLE), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(APP_DB), sql.Identifier(APP_ROLE))
        )


def _basebackup(pair: PgPair, *, source: PgNode, target: PgNode) -> None:
    logger.info("pgpair: pg_basebackup node %s from node %s", target.name, source.name)
    conn = (
        f"host={pair.socket_dir} port={source.port} user={SUPERUSER} application_name={target.cluster_name}"
    )
    _run(
        [
            _pg("pg_basebackup"),
            "-d",
            conn,
            "-D",
            str(target.data_dir),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ],
        timeout=120,
        cwd=pair.base_dir,
    )
    _write_node_conf(target)


# --------------------------------------------------------------------------- failover


def kill_primary(pair: PgPair) -> None:
    """Stop the primary immediately (an unplanned failure). Nothing is promoted."""
    with pair.lock:
        node = pair.primary
        logger.info("pgpair: killing primary %s (port %d)", node.name, node.port)
        stop_node(pair, node, mode="immediate")


def promote_standby(pair: PgPair, *, timing: FailoverTiming | None = None) -> FailoverTiming:
    """Promote the standby, make it writable without a synchronous standby, and swap roles."""
    with pair.lock:
        old, new = pair.primary, pair.standby
        timing = timing or FailoverTiming(mode="promote", old_primary=old.name, new_primary=new.name)
        if not timing.steps:
            timing.mark("start")
        if not node_running(new):
            raise PgPairError(f"cannot promote node {new.name}: it is not running")
        logger.info("pgpair: promoting node %s (port %d)", new.name, new.port)
        timing.mark("promote_requested")
        _run(
            [_pg("pg_ctl"), "promote", "-w", "-t", "30", "-D", str(new.data_dir)],
            timeout=35,
            cwd=pair.base_dir,
        )
        _wait(f"node {new.name} to leave recovery", lambda: not _in_recovery(pair, new), timeout=30)
        timing.mark("promoted")
        # The promoted standby copied synchronous_standby_names='*' from the old primary: with no
        # standby left, every commit would hang. Clear it before anything writes.
        _set_sync_names(pair, new, None)
        timing.mark("sync_standby_names_cleared")
        _check_writable(pair, new)
        timing.mark("writable")
        pair.primary, pair.standby = new, old
        _save_state(pair)
        timing.mark("done")
        logger.info("pgpair: node %s is the writable primary (port %d)", new.name, new.port)
        return timing


def _check_writable(pair: PgPair, node: PgNode) -> None:
    def writable() -> bool:
        with _admin(pair, node) as conn:
            conn.execute("SET statement_timeout = '3s'")
            conn.execute("SELECT txid_current()")  # assigns an xid: the commit really writes WAL
        return True

    _wait(f"node {node.name} to accept writes", writable, timeout=15)


def _checkpoint_lsn(pair: PgPair, node: PgNode) -> int | None:
    out = _run([_pg("pg_controldata"), str(node.data_dir)], timeout=15, cwd=pair.base_dir, check=False)
    for line in out.splitlines():
        if line.startswith("Latest checkpoint location:"):
            return _lsn(line.split(":", 1)[1].strip())
    return None


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def _received_lsn(pair: PgPair, node: PgNode) -> int:
    with _admin(pair, node) as conn:
        row = conn.execute(
            "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text"
        ).fetchone()
    if row is None:
        return 0
    return max(_lsn(row[0]) if row[0] else 0, _lsn(row[1]) if row[1] else 0)


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
        timing = FailoverTiming(mode=mode, old_primary=old.name, new_primary=new.name)
        timing.mark("start")
        logger.info("pgpair: %s failover from node %s to node %s", mode, old.name, new.name)
        if not node_running(new):
            raise PgPairError(f"cannot fail over: standby node {new.name} is not running")
        if mode == "planned":
            if node_running(old):
                with _admin(pair, old) as conn:
                    conn.execute("CHECKPOINT")
                timing.mark("checkpointed")
                stop_node(pair, old, mode="fast", timeout=30)
            timing.mark("primary_stopped")
            target = _checkpoint_lsn(pair, old)
            if target is not None:
                try:
                    _wait(
                        f"node {new.name} to receive the shutdown checkpoint",
                        lambda: _received_lsn(pair, new) >= target,
                        timeout=10,
                    )
                    timing.mark("standby_caught_up")
                except PgPairError as exc:
                    logger.warning("pgpair: planned failover continues without catch-up: %s", exc)
        else:
            stop_node(pair, old, mode="immediate")
            timing.mark("primary_stopped")
        return promote_standby(pair, timing=timing)


def rebuild_standby(pair: PgPair, *, timeout: float = 60) -> None:
    """Turn the current standby node (the old primary) into a synchronous standby again.

    A fresh ``pg_basebackup`` from the new primary: unlike pg_rewind it works whatever state the
    old primary was left in (crashed, diverged, missing WAL), and the local data set is tiny.
    """
    with pair.lock:
        node, primary = pair.standby, pair.primary
        logger.info("pgpair: rebuilding node %s as the standby of node %s", node.name, primary.name)
        stop_node(pair, node, mode="immediate")
        if node.data_dir.exists():
            trash = node.data_dir.with_name(node.data_dir.name + ".old")
            if trash.exists():
                shutil.rmtree(trash)
            node.data_dir.rename(trash)
            shutil.rmtree(trash)
        # If the primary still asks for a synchronous standby, the base backup's own commits hang.
        _set_sync_names(pair, primary, None)
        _basebackup(pair, source=primary, target=node)
        start_node(pair, node, timeout=timeout)
        _wait_streaming(pair, sync=False, timeout=timeout)
        _make_synchronous(pair, timeout=timeout)
        _save_state(pair)
        logger.info("pgpair: node %s streams synchronously from node %s", node.name, primary.name)


def stop_pair(pair: PgPair, *, timeout: float = 15) -> None:
    """Stop both nodes (fast, then immediate, then SIGKILL). Bounded and idempotent."""
    with pair.lock:
        pair.stopped = True
        for node in (pair.standby, pair.primary):
            try:
                stop_node(pair, node, mode="fast", timeout=timeout)
            except Exception:
                logger.exception("pgpair: could not stop node %s", node.name)
        if pair.owns_socket_dir:
            shutil.rmtree(pair.socket_dir, ignore_errors=True)
        logger.info("pgpair: pair under %s stopped", pair.base_dir)


def pair_processes(pair: PgPair) -> list[int]:
    """PIDs of processes that belong to this pair (postmaster by data dir, children by cluster name)."""
    markers = [str(n.data_dir) for n in pair.nodes] + [f"postgres: {n.cluster_name}:" for n in pair.nodes]
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in cmdline for m in markers):
            found.append(int(entry.name))
    return found


def status(pair: PgPair) -> dict[str, Any]:
    """A JSON-able snapshot: node roles, ports, running, in recovery, replication."""
    nodes = []
    for node in pair.nodes:
        running = node_running(node)
        recovery: bool | None = None
        if running:
            with contextlib.suppress(Exception):
                recovery = _in_recovery(pair, node)
        nodes.append(
            {
                "name": node.name,
                "role": "primary" if node is pair.primary else "standby",
                "port": node.port,
                "running": running,
                "in_recovery": recovery,
            }
        )
    replication: list[tuple[str, str]] = []
    with contextlib.suppress(Exception):
        replication = _replication_state(pair)
    return {
        "base_dir": str(pair.base_dir),
        "conninfo": pair.conninfo(),
        "nodes": nodes,
        "replication": [{"state": s, "sync_state": y} for s, y in replication],
    }


# --------------------------------------------------------------------------- CLI


def _password_from_env_or_file(base_dir: Path, given: str | None) -> str:
    if given:
        return given
    env = os.environ.get("PGPAIR_PASSWORD")
    if env:
        return env
    secret_file = base_dir.with_name(base_dir.name + ".password")
    if secret_file.exists():
        return secret_file.read_text().strip()
    password = secrets.token_urlsafe(18)
    secret_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    print(f"generated a password for role {APP_ROLE!r} in {secret_file}", file=sys.stderr)
    return password


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.pgpair", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=["start", "failover", "promote", "kill-primary", "rebuild", "status", "stop"]
    )
    parser.add_argument("--dir", required=True, type=Path, help="the pair's base directory")
    parser.add_argument("--ports", help="two ports, e.g. 55432,55433 (start only; default: free ports)")
    parser.add_argument(
        "--password", help="app role password (start only; default $PGPAIR_PASSWORD or generated)"
    )
    parser.add_argument("--mode", choices=["forced", "planned"], default="forced", help="failover mode")
    parser.add_argument("--no-rebuild", action="store_true", help="failover: leave the old primary down")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        if args.command == "start":
            ports: tuple[int, int] | None = None
            if args.ports:
                p1, p2 = (int(p) for p in args.ports.split(","))
                ports = (p1, p2)
            pair = start_pair(
                args.dir, ports=ports, password=_password_from_env_or_file(args.dir.resolve(), args.password)
            )
            print(json.dumps(status(pair), indent=2))
            return 0
        pair = load_pair(args.dir)
        if args.command == "failover":
            timing = failover(pair, mode=args.mode)
            result: dict[str, Any] = {"failover": timing.to_dict()}
            if not args.no_rebuild:
                rebuild_standby(pair)
                result["rebuilt"] = pair.standby.name
            print(json.dumps(result, indent=2))
        elif args.command == "promote":
            print(json.dumps(promote_standby(pair).to_dict(), indent=2))
        elif args.command == "kill-primary":
            kill_primary(pair)
        elif args.command == "rebuild":
            rebuild_standby(pair)
        elif args.command == "status":
            print(json.dumps(status(pair), indent=2))
        elif args.command == "stop":
            stop_pair(pair)
    except PgPairError as exc:
        print(f"pgpair: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
