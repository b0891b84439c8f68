"""Fleet (issue 15): 500 servers watched through the queue fan-out by 1 and 4 consumer processes.

1. Sampling: the management API emulator serves 500 servers; 499 of them are logical servers of
   one PostgreSQL pair (one schema and heartbeat table each, so their heartbeats do not contend on
   one row), the last one has a pair of its own. The benchmark is the probe timer: it calls the
   app's own `probe_servers`, which plans the shards and enqueues them on Azurite's queue service.
   Consumers are real processes (`python -m bench.fleet --consume`), each the local Functions
   runner serving the app's queue-triggered `probe_shard` with host.json's queue settings. Each
   consumer notes when every database check and management API GET starts; the figures are the
   intervals between two samples of one server within one tick's window, over every server. Goal
   with 4 consumers: p99 at most 2x the configured interval; samples per second at least 3x what
   1 consumer delivers. Every server is seen once by the management API probe before (its first
   view stored: a one-time cost of a new table), and each phase measures the second tick of its
   consumer processes: the first one, reported apart, is a new process's (every session opened,
   the driver imported).
2. Detection at scale: with the whole fleet watched by 4 consumers, the primary of the server with
   its own pair is killed (no alert, no event: an unplanned failover, promoted by the emulator's
   health watchdog); the figure is kill -> incident recorded in Table storage, p99 over 10.

Bounded by count (servers, ticks, failovers) and time (every wait has a deadline); loopback only.
Layer: benchmark (never deployed, never imported by the app).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from bench.common import OUT, ROOT, Result, percentile, python, save_json
from handlers.timers import PROBE_PERIOD, PROBE_WINDOW_MAX

SUBSCRIPTION = "0f1e2d3c-1500-4000-8000-000000000015"
GROUP = "rg-fleet"
TARGET = "pgfleettarget"  # the server with a pair of its own: the one that fails over
KEY = "fleet-bench-key"
QUIET = 5  # INCIDENT_QUIET_SECONDS: an incident settles this long after its last signal
# Between one tick's window end and the next tick: the least the product leaves (its longest window
# is its period less 8 s), room for a run's recording grace (5 s) and its end, so that a run never
# samples into the next tick's window (with 3 s, runs sampled on into it).
TICK_GAP = (PROBE_PERIOD - PROBE_WINDOW_MAX).total_seconds()
CONSUMERS = (1, 4)
ARM_REFILL = 25  # reads per second, per subscription and principal (request-limits-and-throttling)
SESSION_SAMPLE = 128  # servers whose sessions the session-cost figure opens (at most the probe keeps)
OPENING = 10  # seconds at a window's start reported apart: a run opens its servers' sessions then

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Size:
    servers: int
    window: float  # PROBE_WINDOW_SECONDS of every tick
    failovers: int
    detect_seconds: float  # the failovers stop here even if fewer were done


FULL = Size(servers=500, window=30.0, failovers=10, detect_seconds=420)
QUICK = Size(servers=100, window=12.0, failovers=3, detect_seconds=90)


# --- the figures (pure) ----------------------------------------------------------------------------


@dataclass
class Samples:
    """Start times (time.time()) of every sample, per kind ("db", "arm") and server."""

    times: dict[str, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, kind: str, server: str, at: float) -> None:
        self.times[kind].setdefault(server, []).append(at)

    def within(self, kind: str, start: float, end: float) -> dict[str, list[float]]:
        return {
            server: sorted(t for t in times if start <= t <= end)
            for server, times in self.times.get(kind, {}).items()
        }


def intervals(per_server: dict[str, list[float]], since: float = -math.inf) -> list[float]:
    """Every interval between two consecutive samples of one server (sorted start times), whose
    first sample started at `since` or later."""
    return [b - a for times in per_server.values() for a, b in itertools.pairwise(times) if a >= since]


def boundary_gaps(per_server: dict[str, list[float]], ticks: list[float]) -> list[float]:
    """Per server, the interval spanning each tick start after the first: no one watched meanwhile."""
    gaps = []
    for times in per_server.values():
        for tick in ticks[1:]:
            before = [t for t in times if t < tick]
            after = [t for t in times if t >= tick]
            if before and after:
                gaps.append(min(after) - max(before))
    return gaps


def kept_by_their_consumer(per_consumer: list[Samples], before: float, after: float, window: float) -> float:
    """The share of the servers sampled in the window from `after` whose samples there all came
    from the one consumer that sampled them in the window from `before` (it kept their sessions)."""

    def holders(start: float) -> dict[str, set[int]]:
        found: dict[str, set[int]] = defaultdict(set)
        for n, samples in enumerate(per_consumer):
            for server, times in samples.within("db", start, start + window).items():
                if times:
                    found[server].add(n)
        return found

    first, second = holders(before), holders(after)
    kept = sum(1 for server, who in second.items() if len(who) == 1 and first.get(server) == who)
    return kept / len(second) if second else math.nan


def read_samples(paths: list[Path]) -> Samples:
    samples = Samples()
    for path in paths:
        with suppress(FileNotFoundError), path.open() as lines:
            for line in lines:
                parts = line.split()
                if len(parts) == 3:
                    samples.add(parts[0], parts[1], float(parts[2]))
    return samples


class LastSample:
    """When one server's database was last sampled, by any consumer, read as the sample logs grow
    (only the lines written since the last look)."""

    def __init__(self, paths: list[Path], server: str) -> None:
        self._offsets = dict.fromkeys(paths, 0)
        self._needle = f"db {server} "
        self.at = float("-inf")

    def __call__(self) -> float:
        for path, offset in self._offsets.items():
            with suppress(FileNotFoundError), path.open("rb") as log_file:
                log_file.seek(offset)
                chunk = log_file.read()
                complete = chunk.rfind(b"\n") + 1  # a line still being written is read next time
                self._offsets[path] = offset + complete
                for line in chunk[:complete].decode().splitlines():
                    if line.startswith(self._needle):
                        self.at = max(self.at, float(line.rsplit(" ", 1)[1]))
        return self.at


@dataclass(frozen=True)
class Phase:
    """What one tick's window delivered."""

    consumers: int
    servers: int
    window: float
    db: list[float]
    arm: list[float]
    db_watched: int  # servers with at least two database samples
    arm_watched: int
    samples: int
    first_sample: list[float]  # tick -> first database sample of each server
    late: int  # samples started after the window had ended (work queued inside the consumer)
    cpu: float = 0.0  # CPU seconds the consumer processes used during the window
    opening: tuple[int, ...] = ()  # database samples started in each of the window's first seconds
    settled: list[float] = field(default_factory=list)  # database intervals from OPENING s into the window
    arm_settled: list[float] = field(default_factory=list)  # the same for management API intervals

    @property
    def per_second(self) -> float:
        return self.samples / self.window


def phase_of(
    samples: Samples, *, consumers: int, servers: int, tick: float, window: float, cpu: float = 0.0
) -> Phase:
    end = tick + window
    db, arm = samples.within("db", tick, end), samples.within("arm", tick, end)
    late = sum(
        len(t) for kind in ("db", "arm") for t in samples.within(kind, end + 1e-6, end + TICK_GAP).values()
    )
    return Phase(
        consumers=consumers,
        servers=servers,
        window=window,
        db=intervals(db),
        arm=intervals(arm),
        db_watched=sum(1 for t in db.values() if len(t) >= 2),
        arm_watched=sum(1 for t in arm.values() if len(t) >= 2),
        samples=sum(len(t) for t in db.values()) + sum(len(t) for t in arm.values()),
        first_sample=[t[0] - tick for t in db.values() if t],
        late=late,
        cpu=cpu,
        opening=tuple(
            sum(1 for t in db.values() for at in t if tick + second <= at < tick + second + 1)
            for second in range(OPENING)
        ),
        settled=intervals(db, tick + OPENING),
        arm_settled=intervals(arm, tick + OPENING),
    )


# --- a consumer process ----------------------------------------------------------------------------


class _SampleLog:
    """One line per sample, `kind server started_at`, kept in memory and written every 0.2 s by one
    thread (a killed consumer loses at most that much). A write per sample was a syscall under a
    lock at a thousand samples a second: the benchmark's own cost inflated the consumers' CPU."""

    FLUSH_EVERY = 0.2

    def __init__(self, path: Path) -> None:
        self._file: TextIO = path.open("a")
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_until_closed, name="sample-log", daemon=True)
        self._flusher.start()

    def write(self, kind: str, server: str, at: float) -> None:
        line = f"{kind} {server} {at:.6f}\n"
        with self._lock:
            self._lines.append(line)

    def close(self) -> None:
        self._stop.set()
        self._flusher.join(timeout=5)
        self._flush()
        self._file.close()

    def _flush_until_closed(self) -> None:
        while not self._stop.wait(self.FLUSH_EVERY):
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
        if lines:
            self._file.write("".join(lines))
            self._file.flush()


class _Timed:
    """A port with one method timed (when each call started); everything else passes through."""

    def __init__(self, inner: Any, method: str, kind: str, sample_log: _SampleLog) -> None:
        self._inner = inner
        call, write = getattr(inner, method), sample_log.write

        def timed(key: str, *args: Any, **kwargs: Any) -> Any:
            write(kind, key.rsplit("/", 1)[-1].lower(), time.time())
            return call(key, *args, **kwargs)

        setattr(self, method, timed)  # found before __getattr__: no closure per call

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def consume(samples: Path) -> int:
    """Serve the app's queue trigger like one Functions instance until SIGTERM; note every sample."""
    import function_app
    from failover.config import Settings
    from failover.wiring import build_runtime
    from handlers._runtime import set_runtime
    from local.runner import FunctionHost, QueueOptions

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("failover.service", "handlers.queues"):  # what each failover recorded, each shard's run
        logging.getLogger(name).setLevel(logging.INFO)
    runtime = build_runtime(Settings.from_env())
    sample_log = _SampleLog(samples)
    runtime.db_probe = _Timed(runtime.db_probe, "check", "db", sample_log)
    prober = runtime.prober  # as the app wires it (management API reads by subscription listing)
    prober.inspector = _Timed(prober.inspector, "get_server", "arm", sample_log)
    set_runtime(runtime)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    options = QueueOptions.from_host_json(ROOT / "host.json")
    host = FunctionHost(function_app.app, function_key=KEY, port=0, run_timers=False, queue_options=options)
    host.start()
    samples.with_suffix(".ready").touch()
    stop.wait()
    host.stop()
    sample_log.close()
    os._exit(0)  # a shard still running past its window is not waited for


# --- the local stack -------------------------------------------------------------------------------


def _bulk_names(size: Size) -> list[str]:
    return [f"pgfleet{n:03d}" for n in range(size.servers - 1)]


def _prepare_bulk(pair: Any, names: list[str], connections: int) -> None:
    """Room for every consumer's kept connections, and one schema (heartbeat table) per logical server.

    The bulk servers never fail over: their primary runs alone (standby stopped, no synchronous
    standby to wait for) and their endpoint is that node. Replaying a thousand heartbeats a second
    on a standby took CPU the consumers needed on this 2-core machine; and through the pair's
    two-host endpoint a connection slower than its 2 s timeout at a loaded tick went on to the
    standby, so hundreds of healthy servers "reached a node in recovery" at once.
    """
    import psycopg

    from failover.adapters.postgres import CREATE_TABLE_SQL
    from local import pgpair

    pgpair.run_as_superuser(
        pair,
        f"ALTER SYSTEM SET max_connections = {connections}",
        "ALTER SYSTEM SET synchronous_standby_names = ''",
    )
    pgpair.stop_node(pair, pair.standby)
    pgpair.restart_node(pair, pair.primary)
    ddl = "".join(f"CREATE SCHEMA {name}; SET search_path = {name}; {CREATE_TABLE_SQL};" for name in names)
    with psycopg.connect(_bulk_endpoint(pair, include_password=True), autocommit=True) as conn:
        conn.execute(ddl.encode())


def _bulk_endpoint(pair: Any, *, include_password: bool = False) -> str:
    return str(pair.conninfo(node=pair.primary, include_password=include_password))


def _until(condition: Callable[[], bool], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.1)


@dataclass
class Stack:
    env: dict[str, str]
    emulator: Any
    bulk: Any  # the pair behind every server but the target
    target: Any
    storage: str
    base: Path


@contextmanager
def stack(size: Size) -> Iterator[Stack]:
    from local import pgpair
    from local.arm_emulator import ArmEmulator
    from local.services import LocalServices, azurite_connection_string, free_port

    services = LocalServices()
    base = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    password = secrets.token_urlsafe(18)
    pairs: dict[str, Any] = {}
    emulator = None
    try:
        table_port, queue_port = free_port(), free_port()
        services.azurite(table_port)
        services.azurite_queue(queue_port)
        storage = azurite_connection_string(table_port, queue_port)
        _start_pairs(pairs, password)
        names = _bulk_names(size)
        _prepare_bulk(pairs["bulk"], names, connections=max(CONSUMERS) * size.servers + 100)
        emulator = ArmEmulator(
            subscription_id=SUBSCRIPTION, watchdog_interval=0.5, min_phase_seconds=0.3
        ).start()
        ids = [emulator.add_server(GROUP, name) for name in names]
        ids.append(emulator.add_server(GROUP, TARGET, pair=pairs["target"]))
        env = _settings(size, storage, emulator.base_url, ids, pairs, password)
        yield Stack(env, emulator, pairs["bulk"], pairs["target"], storage, base)
    finally:
        if emulator is not None:
            emulator.stop(timeout=60)
        for pair in pairs.values():
            pgpair.stop_pair(pair)
            shutil.rmtree(pair.base_dir, ignore_errors=True)
        services.stop()
        _keep_consumer_logs(base / "samples")
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def _stack_log(path: Path) -> Iterator[None]:
    """What the emulator and the pairs did (kills, promotions, HA states), timed, into `path`; only
    their warnings reach the console, as before."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in ("local.arm_emulator", "local.pgpair", __name__)]
    before = [(each.level, each.propagate) for each in loggers]
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    for each in loggers:
        each.setLevel(logging.INFO)
        each.propagate = False
        each.addHandler(handler)
        each.addHandler(console)
    try:
        yield
    finally:
        for each, (level, propagate) in zip(loggers, before, strict=True):
            each.removeHandler(handler)
            each.removeHandler(console)
            each.setLevel(level)
            each.propagate = propagate
        handler.close()


def _keep_consumer_logs(folder: Path) -> None:
    """Each consumer's log (warnings: failed checks, recording retries, each shard's run), its samples
    and, apart, when it checked the failing-over server, into bench/out/fleet-logs."""
    kept = OUT / "fleet-logs"
    shutil.rmtree(kept, ignore_errors=True)
    kept.mkdir(parents=True)
    for log_file in folder.glob("*.log"):
        shutil.copy(log_file, kept / log_file.name)
    for samples in folder.glob("*.samples"):
        shutil.copy(samples, kept / samples.name)
        lines = [line for line in samples.read_text().splitlines() if f" {TARGET} " in line]
        (kept / f"{samples.stem}.{TARGET}").write_text("".join(f"{line}\n" for line in lines))


def _start_pairs(pairs: dict[str, Any], password: str) -> None:
    """The bulk and the target pair, started side by side; those that started are in `pairs` (to stop)."""
    from concurrent.futures import ThreadPoolExecutor

    from local import pgpair

    with ThreadPoolExecutor(2, thread_name_prefix="bench-fleet-pair") as pool:
        started = {
            name: pool.submit(
                pgpair.start_pair, Path(tempfile.mkdtemp(prefix=f"bench-fleet-{name}-")), password=password
            )
            for name in ("bulk", "target")
        }
        errors = []
        for name, future in started.items():
            try:
                pairs[name] = future.result(timeout=180)
            except Exception as exc:  # the other pair is still stopped by the caller
                errors.append(exc)
    if errors:
        raise errors[0]


def _settings(
    size: Size, storage: str, arm: str, ids: list[str], pairs: dict[str, Any], password: str
) -> dict[str, str]:
    """The app settings every process shares; the defaults for every probe interval."""
    from local.runner import QueueOptions

    options = QueueOptions.from_host_json(ROOT / "host.json")
    per_instance = options.batch_size + options.threshold  # shards one instance runs at once
    bulk = _bulk_endpoint(pairs["bulk"])
    return {
        "AzureWebJobsStorage": storage,
        "FAILOVER_TABLE": "fleet" + secrets.token_hex(4),
        "MONITORED_SERVERS": ";".join(ids),
        "ARM_ENDPOINT": arm,
        "PG_AUTH": "password",
        "PG_PASSWORD": password,
        "PG_CONNINFO_TEMPLATE": f"{bulk} options='-csearch_path={{server}}'",
        "PG_CONNINFO_OVERRIDES": json.dumps({TARGET: pairs["target"].conninfo()}),
        "PG_CREATE_HEARTBEAT_TABLE": "true",
        "PROBE_WINDOW_SECONDS": str(size.window),
        # The fleet in as many shards as 4 instances run at once (host.json: batchSize + newBatchThreshold).
        "PROBE_SHARD_SIZE": str(math.ceil(size.servers / (max(CONSUMERS) * per_instance))),
        "INCIDENT_QUIET_SECONDS": str(QUIET),
        "LOCAL_FUNCTION_KEY": KEY,
    }


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class Running:
    """The consumer processes of one phase: where they note samples, and their CPU time so far."""

    paths: list[Path]
    pids: list[int]

    def cpu(self) -> float:
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks


@contextmanager
def consumers(count: int, fleet: Stack, folder: Path) -> Iterator[Running]:
    """`count` consumer processes, ready to take messages; stopped (SIGTERM, then kill) afterwards."""
    paths = [folder / f"consumers{count}-{n}.samples" for n in range(count)]
    env = {**os.environ, **fleet.env}
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []
    try:
        for path in paths:
            logs.append(path.with_suffix(".log").open("w"))
            processes.append(
                subprocess.Popen(
                    [python(), "-m", "bench.fleet", "--consume", str(path)],
                    cwd=ROOT,
                    env=env,
                    stdout=logs[-1],
                    stderr=subprocess.STDOUT,
                )
            )
        _until(lambda: all(p.with_suffix(".ready").exists() for p in paths), "consumers ready", 60)
        yield Running(paths, [p.pid for p in processes])
        _alive(processes, paths)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for handle in logs:
            handle.close()


def _alive(processes: list[subprocess.Popen[bytes]], paths: list[Path]) -> None:
    """A consumer that died took its samples with it: no figures over a fleet that was not watched."""
    for process, path in zip(processes, paths, strict=True):
        if process.poll() is not None:
            tail = path.with_suffix(".log").read_text()[-800:]
            raise RuntimeError(f"consumer {path.stem} exited with {process.returncode}: {tail}")


class Ticker:
    """The probe timer: the app's own `probe_servers`, every window + TICK_GAP seconds until stopped."""

    def __init__(self, period: float) -> None:
        import function_app
        from local.runner import registered_functions

        functions = {f.get_function_name(): f for f in registered_functions(function_app.app)}
        self._probe_servers = functions["probe_servers"].get_user_function()
        self._period = period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks: list[float] = []

    def tick(self) -> float:
        at = time.time()
        self._probe_servers(timer=None)
        self.ticks.append(at)
        return at

    def start(self) -> float:
        """Tick now and then every period in the background; returns the first tick's time."""
        first = self.tick()

        def loop() -> None:
            while not self._stop.wait(max(0.0, self.ticks[-1] + self._period - time.time())):
                self.tick()

        self._thread = threading.Thread(target=loop, name="bench-fleet-timer", daemon=True)
        self._thread.start()
        return first

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def _clear_queue(storage: str) -> None:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import QueueClient

    from failover.shards import PROBE_QUEUE

    with suppress(ResourceNotFoundError):
        QueueClient.from_connection_string(storage, PROBE_QUEUE).clear_messages()


def _register(fleet: Stack) -> None:
    """Every server seen once by the management API probe (its first view stored, its topology
    published), as a fleet's servers are after their first minute: the ticks measured are a steady
    state's, not the one-time cost of the table's first sight of 500 servers (a third of the
    consumers' time in the opening seconds of a first tick, py-spy)."""
    from datetime import timedelta

    from failover.config import Settings
    from failover.sources.resources import flexible_server_from_resource_id
    from failover.wiring import build_runtime

    runtime = build_runtime(Settings.from_env({**fleet.env, "PROBE_DB": "off"}))
    ids = runtime.prober.targets()
    runtime.prober.run_once(targets=ids, window=timedelta(seconds=3 * runtime.settings.probe_arm_interval))
    names = [server for _, server in filter(None, map(flexible_server_from_resource_id, ids))]
    with ThreadPoolExecutor(8) as pool:
        states = list(pool.map(lambda name: runtime.store.read_state(name)[0], names))
    unseen = [name for name, state in zip(names, states, strict=True) if not (state and state.topology)]
    if unseen:
        raise RuntimeError(
            f"registration: {len(unseen)} of {len(names)} servers have no stored view, e.g. {unseen[0]}"
        )


def _one_consumer(fleet: Stack, size: Size, folder: Path) -> tuple[Phase, Phase]:
    _clear_queue(fleet.storage)
    with consumers(1, fleet, folder) as running:
        ticker = Ticker(size.window + TICK_GAP)
        try:
            ticks = _cold_then_warm(running, ticker, size)
        finally:
            ticker.stop()
        time.sleep(6)  # the probe's recording grace (5 s)
    return ticks.measured(read_samples(running.paths), consumers=1, servers=size.servers)


@dataclass
class Ticks:
    """A phase's first two ticks: the first one of new consumer processes, then the one measured."""

    cold: float  # when the first tick fired
    warm: float  # the second tick: processes warm, every server known, sessions kept where they can be
    window: float
    cpu: tuple[float, float]  # CPU seconds of the consumer processes in each tick's window

    def measured(self, samples: Samples, *, consumers: int, servers: int) -> tuple[Phase, Phase]:
        """(cold, warm) phases of these samples."""
        phase = partial(phase_of, samples, consumers=consumers, servers=servers, window=self.window)
        return phase(tick=self.cold, cpu=self.cpu[0]), phase(tick=self.warm, cpu=self.cpu[1])


def _cold_then_warm(running: Running, ticker: Ticker, size: Size) -> Ticks:
    """Start the timer, let the first tick's window pass, and time the second tick's window.

    The first tick of a new consumer process opens every session it watches and imports what its
    first checks need; from the second on, a consumer keeps the sessions of the servers it watched
    (a shard it watched before needs none opened) and is warm, as instances are in a fleet's steady
    state. Both ticks are reported."""
    before = running.cpu()
    cold = ticker.start()
    time.sleep(size.window)
    cold_cpu = running.cpu() - before
    _until(lambda: len(ticker.ticks) >= 2, "the second tick", TICK_GAP + 10)
    before, warm = running.cpu(), ticker.ticks[1]
    time.sleep(max(0.0, warm + size.window - time.time()))
    return Ticks(cold, warm, size.window, (cold_cpu, running.cpu() - before))


@dataclass
class FourConsumers:
    phase: Phase  # the measured (second) tick
    cold: Phase  # the first tick of the 4 new consumer processes
    detected: list[Detection | None]
    gaps: list[float]
    connections: int
    arm_reads: int  # management API reads of servers (not maintenance events) in the measured window
    maintenance_reads: int  # reads of maintenanceEvents in the same window (first checks of a worker)
    kept: float  # share of servers the measured tick's consumer had watched in the first tick too


def _four_consumers(fleet: Stack, runtime: Any, size: Size, folder: Path) -> FourConsumers:
    _clear_queue(fleet.storage)
    fleet.emulator.clear_requests()
    ticker = Ticker(size.window + TICK_GAP)
    with consumers(max(CONSUMERS), fleet, folder) as running:
        paths = running.paths
        try:
            ticks = _cold_then_warm(running, ticker, size)
            end = ticks.warm + size.window
            requests = [r for r in fleet.emulator.requests if ticks.warm <= r.at.timestamp() < end]
            arm_reads = _server_reads(requests)
            maintenance_reads = sum(1 for r in requests if "maintenance" in r.path.lower())
            time.sleep(TICK_GAP - 0.5)
            cold, phase = ticks.measured(read_samples(paths), consumers=max(CONSUMERS), servers=size.servers)
            each = [read_samples([path]) for path in paths]
            kept = kept_by_their_consumer(each, ticks.cold, ticks.warm, size.window)
            detected = _failovers(fleet, runtime, size, ticker, LastSample(paths, TARGET))
        finally:
            ticker.stop()
        ticks_at = list(ticker.ticks)
        watched = read_samples(paths).within("db", ticks_at[0], time.time())
        connections = _probe_connections(fleet)
    gaps = boundary_gaps(watched, ticks_at)
    return FourConsumers(phase, cold, detected, gaps, connections, arm_reads, maintenance_reads, kept)


def _server_reads(requests: list[Any]) -> int:
    return sum(1 for r in requests if r.method == "GET" and "maintenance" not in r.path.lower())


def _failovers(
    fleet: Stack, runtime: Any, size: Size, ticker: Ticker, last_sample: LastSample
) -> list[Detection | None]:
    """Kill the target's primary while it is watched; kill -> incident recorded, once per failover."""
    from local import pgpair

    room = runtime.settings.probe_db_outage_seconds + 3
    watched = partial(_watched, ticker, size.window, room, last_sample, runtime.prober.schedule.record_grace)
    detected: list[Detection | None] = []
    stop = time.monotonic() + size.detect_seconds
    while len(detected) < size.failovers and time.monotonic() < stop:
        fleet.emulator.wait_for(GROUP, TARGET, lambda s: s.ha_state == "Healthy" and not s.busy, timeout=120)
        _until(watched, "the target watched", 3 * size.window)
        known = _incident_ids(runtime)
        before = len(fleet.emulator.server(GROUP, TARGET).history)
        killed = time.time()
        log.info("fleet: failover %d: killing the target's primary", len(detected) + 1)
        pgpair.kill_primary(fleet.target)
        detected.append(_new_incident(runtime, known, killed, timeout=60))
        if detected[-1] is None:
            _note_miss(runtime, killed, len(detected))
        # The probe can record the failover before the emulator's watchdog has even noticed it
        # (3 missed pings): Healthy again means Healthy after a change of its history since the kill.
        zone = fleet.emulator.wait_for(
            GROUP, TARGET, partial(_healthy_since, before), timeout=120
        ).primary_zone
        # Azure rebuilds the standby for minutes before a server can fail over again; the emulator
        # does it in a second or two. The next failover waits until the app has seen this one
        # whole (its management API view caught up), as it would have in Azure: otherwise one
        # failover's late zone change lands in the next one's incident.
        log.info("fleet: failover %d: the emulator is Healthy, primary in zone %s", len(detected), zone)
        _until(partial(_app_sees, runtime, zone), "the app's view of the failover", 60)
        time.sleep(QUIET + 1)
        runtime.responder.sweep()  # the incident settles before the next failover
    return detected


def _healthy_since(entries: int, server: Any) -> bool:
    """Healthy and idle, after its history grew past `entries` (a failover happened since)."""
    return len(server.history) > entries and server.ha_state == "Healthy" and not server.busy


def _app_sees(runtime: Any, primary_zone: str | None) -> bool:
    """The app's stored view of the target: Healthy, with the primary in `primary_zone`."""
    state, _ = runtime.store.read_state(TARGET)
    topology = state.topology if state else None
    return topology is not None and (topology.primary_zone, topology.ha_state) == (primary_zone, "Healthy")


def _watched(ticker: Ticker, window: float, room: float, last_sample: LastSample, grace: float) -> bool:
    """The current tick's run samples the target (it has started: on a loaded machine that can be
    seconds after the tick) and `room` s are left before its window ends.

    A sample counts only once the previous tick's run can no longer take one: a run samples on past
    its window while its recording finishes, up to its grace, and a failover started then would
    fall in the gap before the next run.
    """
    now, tick = time.time(), ticker.ticks[-1]
    last = last_sample()
    return last > tick - TICK_GAP + grace and now - last <= 1.0 and now - tick <= window - room


def _incident_ids(runtime: Any) -> set[str]:
    page = runtime.store.incidents_of_server(TARGET, since=None, until=None, status=None, limit=5, after=None)
    return {i.incident_id for i in page.incidents}


@dataclass(frozen=True)
class Detection:
    """One failover: kill -> incident readable, and its two parts (kill -> the app's first
    evidence received, that evidence -> readable in Table storage)."""

    readable: float
    declared: float | None
    killed: float  # when (epoch seconds), to read against bench/out/fleet-logs


def _new_incident(runtime: Any, known: set[str], killed: float, *, timeout: float) -> Detection | None:
    """Seconds from the kill until an incident that was not there before it is readable in Table
    storage. Not "opened after the kill": when sampling had a gap, the probe dates the outage from
    its last good write, which may come before the kill."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = _incident_ids(runtime) - known
        if new:
            readable = time.time() - killed
            incident = runtime.store.get_incident(sorted(new)[0])
            first = incident.detected_at if incident else None
            return Detection(readable, first.timestamp() - killed if first else None, killed)
        time.sleep(0.05)
    return None


def _note_miss(runtime: Any, killed: float, number: int) -> None:
    """A failover with no incident: what the app knew of the server then (bench/out/fleet-miss-N.json)."""
    from failover.adapters import table_codec as codec

    state, _ = runtime.store.read_state(TARGET)
    page = runtime.store.incidents_of_server(TARGET, since=None, until=None, status=None, limit=3, after=None)
    miss = {
        "killed_at": datetime.fromtimestamp(killed, timezone.utc).isoformat(),
        "state": codec.state_to_entity(state) if state else None,
        "incidents": [{"id": i.incident_id, "opened_at": i.opened_at.isoformat()} for i in page.incidents],
        "timeline": [
            {"at": e.at.isoformat(), "source": e.source, "kind": e.kind, "summary": e.summary}
            for i in page.incidents[:1]
            for e in runtime.store.timeline(i)
        ],
    }
    save_json(f"fleet-miss-{number}.json", miss)
    log.warning("fleet: failover %d recorded no incident: bench/out/fleet-miss-%d.json", number, number)


def _probe_connections(fleet: Stack) -> int:
    """Probe sessions open on the bulk pair's primary now (every consumer keeps its own)."""
    import psycopg

    from failover.adapters.postgres import APPLICATION_NAME

    with psycopg.connect(_bulk_endpoint(fleet.bulk, include_password=True), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APPLICATION_NAME,)
        ).fetchone()
    return int(row[0]) if row else 0


# --- the report ------------------------------------------------------------------------------------


def run(*, quick: bool = False) -> Result:
    from failover.config import Settings
    from failover.wiring import build_runtime
    from handlers._runtime import set_runtime

    size = QUICK if quick else FULL
    result = Result(
        "fleet",
        "Fleet: the probe fanned out over a queue to 1 and 4 consumer processes; detection at scale",
        f"{size.servers} servers behind the ARM emulator ({size.servers - 1} logical servers of one"
        " PostgreSQL node that never fails over, 1 with its own HA pair); the app's probe_servers timer"
        " enqueues shards on Azurite's queue;"
        " consumers are processes running the local Functions runner (host.json queue settings);"
        f" windows of {size.window:.0f} s; each phase starts its consumers, lets their first tick pass"
        " (reported apart) and measures the second; every server seen once beforehand;"
        f" {size.failovers} unplanned failovers",
    )
    with stack(size) as fleet:
        runtime = build_runtime(Settings.from_env(fleet.env))
        set_runtime(runtime)
        try:
            folder = fleet.base / "samples"
            folder.mkdir()
            with _stack_log(folder / "stack.log"):
                kept = min(SESSION_SAMPLE, 2 * runtime.settings.probe_shard_size + 16)  # none evicted
                costs = _session_costs(runtime, _bulk_names(size)[:kept])
                load = os.getloadavg()[0]
                _register(fleet)
                _, one = _one_consumer(fleet, size, folder)
                four = _four_consumers(fleet, runtime, size, folder)
                loads = (load, os.getloadavg()[0])
        finally:
            set_runtime(None)
    _report(result, runtime.settings, size, one, four, loads, costs)
    detected = [d.__dict__ if d else None for d in four.detected]
    save_json("fleet.json", {"one": one.__dict__, "four": four.phase.__dict__, "detected": detected})
    return result


def _report(
    result: Result,
    settings: Any,
    size: Size,
    one: Phase,
    four: FourConsumers,
    load: tuple[float, float],
    costs: SessionCosts,
) -> None:
    db_goal, arm_goal = 2 * settings.probe_db_interval, 2 * settings.probe_arm_interval
    for phase in (one, four.phase):
        goal = phase.consumers == max(CONSUMERS)
        for kind, values, watched, limit, every in (
            ("database", phase.db, phase.db_watched, db_goal, settings.probe_db_interval),
            ("management API", phase.arm, phase.arm_watched, arm_goal, settings.probe_arm_interval),
        ):
            p99 = percentile(values, 99)
            result.add(
                f"{kind} sample interval, {phase.consumers} consumer(s): p50 / p99",
                f"{percentile(values, 50):.2f} s / {p99:.2f} s",
                f"p99 <= {limit:g} s (2x {every:g} s)" if goal else "",
                (p99 <= limit and watched == phase.servers) if goal else None,
                f"{watched} of {phase.servers} servers sampled at least twice in the window;"
                f" {len(values):,} intervals"
                + (
                    f"; its first {OPENING} s, samples started per second:"
                    f" {', '.join(str(n) for n in phase.opening)}"
                    if kind == "database"
                    else ""
                ),
            )
    _report_opening(result, settings, four.cold, costs)
    ratio = four.phase.per_second / one.per_second if one.per_second else float("nan")
    result.add(
        "samples per second (database + management API), 1 -> 4 consumers",
        f"{one.per_second:.0f} -> {four.phase.per_second:.0f} ({ratio:.2f}x)",
        ">= 3x",
        ratio >= 3,
        "what the watched servers call for at the configured intervals: "
        + ", ".join(f"{_demand(p, settings):.0f}/s with {p.consumers}" for p in (one, four.phase))
        + "; first database sample after the tick, 4 consumers (p50 / max): "
        + "; ".join(
            f"{percentile(p.first_sample, 50):.2f} s / {max(p.first_sample, default=math.nan):.2f} s {name}"
            for name, p in (("measured tick", four.phase), ("first tick", four.cold))
        ),
    )
    checks = len(four.phase.arm) + four.phase.arm_watched  # intervals + the first check of each server
    per_check = 2 * checks / size.window  # a GET of the server and a list of its replicas, per check
    result.add(
        "management API reads of servers per second, 4 consumers",
        f"{four.arm_reads / size.window:.1f}/s",
        f"<= {ARM_REFILL}/s",
        four.arm_reads / size.window <= ARM_REFILL,
        f"ARM refills {ARM_REFILL} reads a second per subscription and principal; reading each server"
        f" on its own (GET + replicas) would have asked for {per_check:.0f}/s at the same checks;"
        " the probe reads one subscription listing per half interval per consumer instead. Not counted:"
        f" {four.maintenance_reads} maintenanceEvents reads in the same window (each worker reads every"
        " server's once at its first check, then hourly)",
    )
    _report_detection(result, settings, four.detected, size.failovers)
    result.add(
        "unwatched gap at a tick boundary (database, p50 / max)",
        f"{percentile(four.gaps, 50):.2f} s / {max(four.gaps, default=float('nan')):.2f} s",
        notes=f"{len(four.gaps):,} boundaries; this run's timer leaves {TICK_GAP:g} s between a window's end"
        " and the next tick, the least the product leaves (its 60 s timer with the default 50 s window"
        " leaves 10 s); a failover in that gap is seen at the next run's first samples",
    )
    result.add(
        "servers watched by the same consumer as the tick before, 4 consumers",
        f"{four.kept:.0%}",
        notes="each message claims the shard its instance watched last tick when it is free"
        " (failover.shard_claims), so the consumer keeps those servers' sessions; shards going to"
        " whichever consumer polled first left about 1 in 4",
    )
    result.notes += _notes(size, one, four, load)
    if one.samples:
        need = one.cpu / one.samples * _demand(four.phase, settings)
        result.notes.append(
            f"What 4 consumers need here: at what 1 consumer spent per sample, the 4-consumer"
            f" demand ({_demand(four.phase, settings):.0f} samples/s) needs {need:.1f} CPU-seconds per"
            f" second for the consumers alone, on a machine with {os.cpu_count()} cores that also runs"
            " Azurite, 3 PostgreSQL nodes and the emulator (in Azure each instance has its own cores)."
        )


@dataclass(frozen=True)
class SessionCosts:
    """Database checks per second through the app's own probe, 16 threads, on the bulk node alone."""

    opened: float  # each check opened its server's session (a run's first check of the server)
    kept: float  # each check on a kept session

    @property
    def ratio(self) -> float:
        return self.kept / self.opened if self.opened else float("nan")


def _session_costs(runtime: Any, names: list[str]) -> SessionCosts:
    """The app's database probe, as the consumers build it: first checks of `names`, then three more
    rounds on the sessions it kept. Every check must find its server writable, or there is no figure."""
    from failover.wiring import build_db_probe

    probe = build_db_probe(runtime.settings, runtime)
    try:
        with ThreadPoolExecutor(16) as pool:
            began = time.monotonic()
            checks = list(pool.map(probe.check, names))
            opened = len(names) / (time.monotonic() - began)
            began = time.monotonic()
            checks += list(pool.map(probe.check, names * 3))
            kept = 3 * len(names) / (time.monotonic() - began)
    finally:
        probe.close()  # type: ignore[attr-defined]
    failed = sum(1 for check in checks if not check.writable)
    if failed:
        raise RuntimeError(
            f"session costs: {failed} of {len(checks)} checks did not find the server writable"
        )
    return SessionCosts(opened, kept)


def _report_opening(result: Result, settings: Any, cold: Phase, costs: SessionCosts) -> None:
    """The first tick of new consumer processes: every session opens in its first seconds."""
    demand = cold.db_watched / settings.probe_db_interval
    why = (
        f". Its first {OPENING} s, database samples started per second (the servers call for"
        f" {demand:.0f}/s): {', '.join(str(n) for n in cold.opening)}. A new process opens the session"
        f" of every server it watches (all {cold.servers}) and imports the driver at its first checks;"
        " on the bulk node, without consumers, a check that opens a session took"
        f" {costs.ratio:.1f}x the time of one on a kept session ({costs.opened:.0f} vs"
        f" {costs.kept:.0f} checks/s, 16 threads): here the servers' sessions start on the"
        " consumers' own 2 cores, in Azure each server starts its own"
    )
    for kind, values, settled, more in (
        ("database", cold.db, cold.settled, why),
        ("management API", cold.arm, cold.arm_settled, ""),
    ):
        result.add(
            f"  {kind} sample interval, 4 consumers, first tick of new processes: p50 / p99",
            f"{percentile(values, 50):.2f} s / {percentile(values, 99):.2f} s",
            notes=f"from {OPENING} s into that window: p99 {percentile(settled, 99):.2f} s"
            f" ({len(settled):,} intervals){more}",
        )


def _demand(phase: Phase, settings: Any) -> float:
    """Samples per second the servers a phase watched call for at the configured intervals."""
    return float(
        phase.db_watched / settings.probe_db_interval + phase.arm_watched / settings.probe_arm_interval
    )


def _report_detection(result: Result, settings: Any, detected: list[Detection | None], planned: int) -> None:
    limit = settings.probe_db_outage_seconds + 2
    seen = [d.readable for d in detected if d is not None]
    declared = [d.declared for d in detected if d is not None and d.declared is not None]
    written = [d.readable - d.declared for d in detected if d is not None and d.declared is not None]
    missing = len(detected) - len(seen)
    result.add(
        f"unplanned failover -> incident recorded, {len(detected)} failovers, fleet watched (p50 / p99)",
        f"{percentile(seen, 50):.2f} s / {percentile(seen, 99):.2f} s",
        f"p99 <= {limit:g} s over {planned}",
        len(detected) == planned and not missing and percentile(seen, 99) <= limit,
        (f"{missing} without an incident within 60 s; " if missing else "")
        + (f"only {len(detected)} of {planned} within the time bound; " if len(detected) < planned else "")
        + "from the kill of the primary (the emulator's watchdog promotes the standby); each: "
        + ", ".join(f"{d:.2f}" for d in seen),
    )
    result.add(
        "  kill -> the app's first evidence / that evidence -> readable (p50 / p99)",
        f"{percentile(declared, 50):.2f} s / {percentile(declared, 99):.2f} s;"
        f" {percentile(written, 50):.2f} s / {percentile(written, 99):.2f} s",
        notes="the first part: the first failed check, then the debounce of PROBE_DB_OUTAGE_SECONDS"
        f" ({settings.probe_db_outage_seconds:g} s) unless a node in recovery or the promoted standby"
        " answered first; the second: the recording queue and one Table transaction",
    )


def _notes(size: Size, one: Phase, four: FourConsumers, load: tuple[float, float]) -> list[str]:
    cost = [f"{p.cpu / p.samples * 1000:.1f} ms" if p.samples else "n/a" for p in (one, four.phase)]
    return [
        f"CPU: the consumer processes used {one.cpu / one.window:.2f} (1 consumer) and"
        f" {four.phase.cpu / four.phase.window:.2f} (4) CPU-seconds per second of window, {cost[0]} and"
        f" {cost[1]} of CPU per sample; {four.phase.late:,} samples of the 4-consumer tick started after"
        " its window had ended (a run keeps sampling while its management API checks or recording"
        " still run, up to its grace, so that no outage ends unseen).",
        f"Shards: PROBE_SHARD_SIZE = ceil({size.servers} / (4 consumers x 2 shards each)), host.json's"
        " batchSize 1 + newBatchThreshold 1 being 2 shards at once per instance: the fleet in exactly as"
        " many shards as 4 instances run. With 1 consumer the same plan leaves 3 of every 4 shards"
        " waiting until their window is over (dropped as late): 1 instance watches 2 shards.",
        "Intervals are between two samples of one server within one tick's window (each consumer notes"
        " when every check starts); the first sample after a tick is reported separately. Failovers are"
        " started while the target is watched (sampled within the last second, by whichever consumer"
        " took its shard) and with room before the window's end; one in the gap between two windows"
        " is seen at the next run's first sample (the gap is reported above).",
        f"Probe sessions open on the bulk pair's primary at the end: {four.connections:,} for"
        f" {size.servers - 1} servers (each consumer keeps at most 2 x PROBE_SHARD_SIZE + 16, least"
        " recently watched closed first).",
        f"Everything (4 consumers, Azurite, 3 PostgreSQL nodes, the emulator) shares this machine's"
        f" {os.cpu_count()} cores with other work: 1-minute load average {load[0]:.1f} before the run,"
        f" {load[1]:.1f} after it.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--consume", type=Path, help="run as one consumer, noting samples in this file")
    args = parser.parse_args(argv)
    if args.consume is None:
        parser.error("run the benchmark with python -m bench.run --only fleet")
    return consume(args.consume)


if __name__ == "__main__":
    sys.exit(main())
