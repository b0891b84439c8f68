"""Probe use case: watch servers through the management API and a PostgreSQL client, record changes.

Layer: application service. Orders the probe's side effects; talks to the outside only through
the ports it is given (`ServerInspector`, `DatabaseProbe`) and records through the `Responder`, so
probe signals get the same de-duplication and concurrency handling as alerts (invariants 1-3).

Why probes: an unplanned failover emits no Activity Log and no Event Grid event
(https://learn.microsoft.com/azure/postgresql/high-availability/concepts-high-availability);
only the server's own state shows it, and only a client can measure the downtime clients saw.

Scheduling inside one invocation (a timer tick or a shard message every minute, a window of ~50 s):
every server is watched for the whole window, the management API every `arm_interval`, the
database every `db_interval` (every `db_fast_interval` while writes fail, so the end of an outage
is caught within ~0.2 s). Two bounded pools do the work whatever the fleet's size, never a thread
per server: `max_workers` threads sample databases, `record_workers` threads record what they
handed over (in order, per server) and check the management API, one of them kept for recording
only. A sampler never waits on recording, and recording waits on no other server's management API
call. Start times are spread over the first interval so the pools see an even load. The run
ends by the window's end plus a short recording grace; what it could not do (signals not recorded,
servers never reached) is counted on the report and derived again by the next run.

Size: over 400 lines because the probe's scheduling (pools, shards, budgets) and its ordered
recording must be read together to see that sampling never waits on recording.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from failover.errors import FailoverError, InspectorError
from failover.incidents import DbProbeState, ServerState
from failover.model import HA_PROBLEM_STATES, Role, Signal
from failover.ports import Clock, DatabaseProbe, ServerInspector, ServerView
from failover.secrets import redact
from failover.service import Responder
from failover.sources.db_faults import is_probe_fault
from failover.sources.probes import DbProbeMemory, Debounce, diff_check, diff_view, view_dict
from failover.sources.resources import flexible_server_from_resource_id

log = logging.getLogger(__name__)

ReadState = Callable[[str], "tuple[ServerState | None, str | None]"]


@dataclass(frozen=True)
class ProbeSchedule:
    window: timedelta = timedelta(seconds=50)
    arm_interval: float = 5.0
    db_interval: float = 0.5
    db_fast_interval: float = 0.2
    max_workers: int = 16  # threads sampling databases, whatever the number of servers
    record_workers: int = 8  # threads recording signals and checking the management API
    record_grace: float = 5.0  # how long past its window a run keeps retrying unrecorded signals
    discovery_interval: timedelta = timedelta(minutes=15)
    debounce: Debounce = field(default_factory=Debounce)


_RETRY_SECONDS = 0.5  # how soon a server's recorder retries after storage refused a record


@dataclass
class ServerHealth:
    server: str
    resource_id: str
    arm: str = "not_checked"  # ok / error / unavailable / not_configured
    arm_error: str | None = None
    db: str = "not_checked"  # ok / unavailable / probe_fault / error / not_configured
    db_error: str | None = None  # a classified reason, never driver text
    db_fault: str | None = None
    signals: int = 0
    checked_at: datetime | None = None
    db_samples: int = 0
    db_worst_gap: float = 0.0  # the longest time between two database samples in this run, seconds
    unrecorded: int = 0  # sampled signals left unrecorded at the end: derived again by the next run

    @property
    def unchecked(self) -> bool:
        """Neither check ran in this run (the window ran out first): left for the next run."""
        return self.arm == "not_checked" and self.db == "not_checked"


@dataclass
class ProbeReport:
    servers: dict[str, ServerHealth] = field(default_factory=dict)

    def summary(self) -> str:
        values = list(self.servers.values())
        arm_bad = sum(1 for s in values if s.arm not in ("ok", "not_configured"))
        db_bad = sum(1 for s in values if s.db not in ("ok", "not_configured"))
        signals = sum(s.signals for s in values)
        return (
            f"{len(values)} servers, {signals} signals,"
            f" management API failing for {arm_bad}, database for {db_bad};"
            f" left for the next run: {self.unchecked} servers unchecked, {self.unrecorded} signals"
        )

    @property
    def unchecked(self) -> int:
        return sum(1 for s in self.servers.values() if s.unchecked)

    @property
    def unrecorded(self) -> int:
        return sum(s.unrecorded for s in self.servers.values())


@dataclass
class Prober:
    responder: Responder
    clock: Clock
    targets: Callable[[], tuple[str, ...]]
    inspector: ServerInspector | None = None
    db_probe: DatabaseProbe | None = None
    schedule: ProbeSchedule = field(default_factory=ProbeSchedule)
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    on_report: Callable[[ProbeReport], None] | None = None
    # (resource id, server, urgent) -> running maintenance windows to record before a check's signals
    maintenance: Callable[[str, str, bool], tuple[Signal, ...]] | None = None
    _fqdn: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fqdn_of(self, server: str) -> str | None:
        with self._lock:
            return self._fqdn.get(server)

    def run_once(
        self, *, window: timedelta | None = None, targets: tuple[str, ...] | None = None
    ) -> ProbeReport:
        """One invocation: watch every target until the window ends; never raises for one server.

        `targets` (resource ids) replaces the configured fleet: a queue-triggered shard watches its
        own servers. The run ends by the window's end plus a short grace for recording; what it
        could not do is counted on the report (`ServerHealth.unrecorded`, servers left unchecked).
        """
        report = ProbeReport()
        deadline = self.monotonic() + (window or self.schedule.window).total_seconds()
        listed = self.targets() if targets is None else targets
        ids = [rid for rid in dict.fromkeys(listed) if flexible_server_from_resource_id(rid)]
        for rid in ids:
            server = _server(rid)
            report.servers[server] = ServerHealth(server=server, resource_id=rid)
        if ids:
            _Fleet(self, report, ids, deadline).run()
        if self.on_report is not None:
            self.on_report(report)
        return report

    def _arm_check(
        self,
        resource_id: str,
        health: ServerHealth,
        stored: dict[str, Any] | None = None,
        read_state: ReadState | None = None,
    ) -> dict[str, Any] | None:
        """One management API check; returns the view it left stored, for the run's next check.

        `stored` is the view an earlier check of this run read stored, with nothing to record: while
        the listing shows it, there is nothing a read could add. Only management API views write a
        server's topology (`absorb_view`), and within a run no other instance checks the server
        (its shard is this run's). Across runs another instance may have written it, so each run's
        first check reads (the same view again after a change back and forth is not "unchanged").
        """
        if self.inspector is None:
            health.arm = "not_configured"
            return None
        inspector = self.inspector
        read = read_state or self.responder.store.read_state
        left: dict[str, Any] | None = None

        def check() -> None:
            nonlocal left
            view = inspector.get_server(resource_id)
            self._remember(view)
            seen = view_dict(view)
            window: tuple[Signal, ...] | None = None
            if seen == stored:
                window = self._maintenance_window(resource_id, view, ())
                if not window:
                    left, health.checked_at = seen, self.clock()
                    return
            state, etag = read(view.server)
            now = self.clock()
            signals = diff_view(
                state.topology if state else None,
                view,
                arm_version=state.arm_version if state else 0,
                observed_at=now,
                received_at=now,
            )
            if window is None:
                window = self._maintenance_window(resource_id, view, signals)
            # Recorded first: a failover opening in a running maintenance is named so at once.
            # Each signal carries the view as far as it goes: a failure part way leaves the rest to
            # be derived again by the next check (the known view advanced only past what was recorded).
            recorded = sum(o.status == "recorded" for o in self.responder.record_all((*window, *signals)))
            health.signals += recorded
            # Nothing recorded since the read: its state and ETag are still current (a quiet check
            # is then one Table request, or none written when the view did not change).
            known = (state, etag) if not recorded else None
            saved = self.responder.save_probe_facts(view.server, view=seen, observed_at=now, known=known)
            left = None if recorded or saved else seen
            health.checked_at = now

        self._guard(health, "arm", check)
        return left

    def _maintenance_window(
        self, resource_id: str, view: ServerView, signals: tuple[Signal, ...]
    ) -> tuple[Signal, ...]:
        """Running maintenance to record before a check's signals (read sooner during a failover)."""
        if self.maintenance is None:
            return ()
        urgent = view.ha_state in HA_PROBLEM_STATES or any(s.role is not Role.CONTEXT for s in signals)
        return self.maintenance(resource_id, view.server, urgent)

    def _db_check(
        self, health: ServerHealth, memory: DbProbeMemory, handoff: queue.Queue[_Sampled]
    ) -> DbProbeMemory:
        assert self.db_probe is not None
        probe = self.db_probe
        result = memory

        def check() -> None:
            nonlocal result
            outcome = probe.check(health.server)
            signals, result = diff_check(
                memory,
                outcome,
                resource_id=health.resource_id,
                received_at=self.clock(),
                debounce=self.schedule.debounce,
            )
            handoff.put(_Sampled(signals, result))
            if not outcome.ok:
                raise _DbDown(outcome.fault, outcome.error)

        self._guard(health, "db", check)
        return result

    def _db_memory(self, server: str, read_state: ReadState | None = None) -> DbProbeMemory | None:
        if self.db_probe is None:
            return None
        try:
            state, _ = (read_state or self.responder.store.read_state)(server)
        except FailoverError:
            return DbProbeMemory(DbProbeState())
        return DbProbeMemory(state.db if state else DbProbeState())

    def _remember(self, view: ServerView) -> None:
        if view.fqdn:
            with self._lock:
                self._fqdn[view.server] = view.fqdn

    def _guard(self, health: ServerHealth, what: str, action: Callable[[], object]) -> None:
        """Run one check; a failure is recorded on the server's health, never raised."""
        try:
            action()
        except _DbDown as down:
            status = "probe_fault" if is_probe_fault(down.fault) else "unavailable"
            _set(health, what, status, str(down))
            health.db_fault = down.fault
            return
        except InspectorError as error:
            _set(health, what, "error", redact(str(error)))
        except FailoverError as error:
            _set(health, what, "unavailable", redact(str(error)))
        except Exception as error:  # a probe must survive anything one server does
            log.exception("probe of server %s (%s) failed unexpectedly", health.server, what)
            _set(health, what, "error", redact(f"{type(error).__name__}: {error}"))
        else:
            _set(health, what, "ok", None)
            return
        log.warning(
            "probe of server %s: %s check %s: %s",
            health.server,
            what,
            getattr(health, what),
            getattr(health, f"{what}_error"),
        )


class _DbDown(Exception):
    """The database answered, but not as a writable primary (or not at all)."""

    def __init__(self, fault: str | None, reason: str | None) -> None:
        super().__init__(reason or fault or "cannot write")
        self.fault = fault


@dataclass(frozen=True)
class _Sampled:
    """What one database check produced: its signals, and the sampler's memory after them."""

    signals: tuple[Signal, ...]
    memory: DbProbeMemory


class _OrderedRecorder:
    """Records sampled signals in order; `committed` advances only past what storage accepted."""

    def __init__(self, prober: Prober, health: ServerHealth, *, committed: DbProbeMemory | None) -> None:
        self._prober = prober
        self._health = health
        self._pending: list[_Sampled] = []
        self.committed = committed

    @property
    def idle(self) -> bool:
        return not self._pending

    @property
    def unrecorded(self) -> int:
        """Signals handed over and not recorded yet."""
        return sum(len(s.signals) for s in self._pending)

    def take(self, handoff: queue.Queue[_Sampled]) -> None:
        self._pending.extend(_drain(handoff))

    def flush(self) -> None:
        while self._pending:
            head = self._pending[0]
            try:
                for outcome in self._prober.responder.record_all(head.signals):
                    self._health.signals += outcome.status == "recorded"
            except FailoverError as error:
                # Kept at the head: retried on the next pass, and derived again next invocation.
                log.warning(
                    "probe of server %s: recording failed, will retry: %s",
                    self._health.server,
                    redact(str(error)),
                )
                return
            self._pending.pop(0)
            if self.committed is not None:
                self.committed = head.memory


class _Watch:
    """One server during a run: the sampler's memory, what it handed over, the ordered recorder."""

    def __init__(self, prober: Prober, resource_id: str, health: ServerHealth, first_arm: float) -> None:
        self.resource_id = resource_id
        self.health = health
        self.memory: DbProbeMemory | None = None  # read by the first sample, in the pool
        self.handoff: queue.Queue[_Sampled] = queue.Queue()
        self.recorder = _OrderedRecorder(prober, health, committed=None)
        self.next_arm = first_arm if prober.inspector is not None else float("inf")
        self.sampling = prober.db_probe is not None
        self.last_sample: float | None = None
        self.working = False  # its work task is running (one at a time per server)
        self.again = False  # work arrived while it ran: it goes round once more
        self.saved = False
        self.stored_view: dict[str, Any] | None = None  # what its last management API check left stored
        self.first_read = _FirstRead(prober.responder.store.read_state)
        self.read_for_db, self.read_for_arm = self.first_read.reader("db"), self.first_read.reader("arm")


class _FirstRead:
    """A server's `state` row, read once for a run's two first readers: the first database sample
    (its memory) and the first management API check, the same row a few seconds apart at most.

    A Table read costs an instance about 2 ms of CPU (`read_state` through azure-data-tables,
    measured against Azurite), and at a tick's start every server of every shard is read at once:
    the window's opening seconds are where the fleet's sampling falls behind (issue 15). The second
    reader may get a row a few seconds old, which is safe: the database memory is only ever
    written by the database side, a view's diff needs only the topology, which only management API
    checks write (and within a run no other instance checks the server), and a stale ETag costs a
    refused write and a fresh read (`Responder.save_probe_facts`). A failed read is not kept.

    The run's end keeps its database bookkeeping on that first row too (`first`): in a quiet run
    nothing else wrote the row, so the write needs no read before it; when something did (a
    recorded signal, a changed view, an alert), its ETag refuses the write and the row is read
    again, so nothing written meanwhile is lost.
    """

    def __init__(self, read: ReadState) -> None:
        self._read = read
        self._lock = threading.Lock()  # the other reader waits for the first one's read
        self._kinds: set[str] = set()  # the kinds of reader that have read
        self._kept: tuple[ServerState | None, str | None] | None = None  # for the other kind
        self._first: tuple[ServerState | None, str | None] | None = None  # the run's first good read

    def reader(self, kind: str) -> ReadState:
        """`read_state` for one kind of reader: its first read may be the other kind's first."""
        return lambda server: self._take(kind, server)

    def _take(self, kind: str, server: str) -> tuple[ServerState | None, str | None]:
        with self._lock:
            first_of_kind = kind not in self._kinds
            self._kinds.add(kind)
            if first_of_kind and self._kept is not None:
                kept, self._kept = self._kept, None
                return kept
            found = self._read(server)
            if first_of_kind and len(self._kinds) == 1:  # the run's first read of the row
                self._kept = found
            if self._first is None:
                self._first = found
            return found

    def first(self) -> tuple[ServerState | None, str | None] | None:
        """The run's first good read of the row and its ETag; None when it was never read."""
        with self._lock:
            return self._first


class _Fleet:
    """One run over many servers with two bounded pools and one dispatcher (the calling thread).

    The dispatcher keeps a heap of due times: a database sample goes to the sampling pool, a
    server's work (a due management API check, recording what was handed over, a retry, keeping
    the memory at the end) to the recording pool. A sample with nothing to record while nothing is
    waiting advances the kept memory at once, without a task. Past the window, while any work is
    still running (a slow management API call, a slow card post), sampling goes on until it ends
    or the grace is spent: the run never holds the database unwatched while it waits on them.
    """

    def __init__(self, prober: Prober, report: ProbeReport, ids: list[str], deadline: float) -> None:
        self._prober = prober
        self._schedule = prober.schedule
        self._deadline = deadline
        self._give_up = deadline + prober.schedule.record_grace
        self._cond = threading.Condition()
        self._samples: list[tuple[float, int, bool, _Watch]] = []  # (due, order, True, server)
        # (rank, due, order, False, server): rank 0 is recording a sample's signals, taken before any
        # management API check however overdue, so a detected failover never queues behind them.
        self._works: list[tuple[int, float, int, bool, _Watch]] = []
        self._order = 0
        self._outstanding = 0
        self._sampling = 0  # samples running
        self._busy = 0  # servers whose work task (management API check, recording) is running
        now = prober.monotonic()
        self._watches: list[_Watch] = []
        for index, rid in enumerate(ids):
            spread = index / len(ids)
            health = report.servers[_server(rid)]
            if prober.inspector is None:
                health.arm = "not_configured"
            if prober.db_probe is None:
                health.db = "not_configured"
            self._watches.append(_Watch(prober, rid, health, now + spread * self._schedule.arm_interval))
        with self._cond:
            for index, watch in enumerate(self._watches):
                if watch.sampling:
                    self._push(now + index / len(ids) * self._schedule.db_interval, True, watch)
                if watch.next_arm < deadline:
                    self._push(watch.next_arm, False, watch)

    def run(self) -> None:
        schedule = self._schedule
        with (
            ThreadPoolExecutor(max(1, schedule.max_workers), thread_name_prefix="probe-db") as samplers,
            ThreadPoolExecutor(max(1, schedule.record_workers), thread_name_prefix="probe-rec") as workers,
        ):
            while (event := self._next()) is not None:
                is_sample, watch, urgent = event
                if is_sample:
                    samplers.submit(self._sample, watch)
                else:
                    workers.submit(self._work, watch, urgent=urgent)
            samplers.shutdown(wait=True, cancel_futures=True)
            with self._cond:  # the budget is spent: keep what was recorded, once per server
                last = [w for w in self._watches if not w.saved and not w.working]
            for watch in last:
                workers.submit(self._save, watch)
        for watch in self._watches:
            watch.recorder.take(watch.handoff)
            watch.health.unrecorded = watch.recorder.unrecorded

    # --- the dispatcher -----------------------------------------------------------------------

    def _push(self, due: float, is_sample: bool, watch: _Watch, *, urgent: bool = False) -> None:
        """Add a due event; the caller holds the condition."""
        self._order += 1
        if is_sample:
            heapq.heappush(self._samples, (due, self._order, True, watch))
        else:
            heapq.heappush(self._works, (0 if urgent else 1, due, self._order, False, watch))
        self._cond.notify()

    def _next(self) -> tuple[bool, _Watch, bool] | None:
        """The next due event a pool has room for, or None when everything is done or the budget is
        spent. Events wait here, not in a pool's queue: a pool never runs a backlog of stale work."""
        with self._cond:
            while True:
                now = self._prober.monotonic()
                idle = not self._samples and not self._works and self._outstanding == 0
                if now >= self._give_up or idle:
                    return None
                heap, until = self._ready(now)
                if heap is None:
                    self._cond.wait(timeout=max(0.001, min(until, self._give_up) - now))
                    continue
                event = heapq.heappop(heap)
                is_sample, watch, urgent = event[-2], event[-1], not event[-2] and event[0] == 0
                if is_sample:
                    self._sampling += 1
                else:
                    if watch.working:  # the running task goes round once more instead
                        watch.again = True
                        continue
                    watch.working = True
                    self._busy += 1
                self._outstanding += 1
                return is_sample, watch, urgent

    def _ready(self, now: float) -> tuple[list[Any] | None, float]:
        """The heap whose head is due with room in its pool (samples first), else when to look again."""
        room_to_sample = self._samples and self._sampling < max(1, self._schedule.max_workers)
        room_to_work = self._works and self._busy < self._work_room(self._works[0][0])
        if room_to_sample and self._samples[0][0] <= now:
            return self._samples, now
        if room_to_work and self._works[0][1] <= now:
            return self._works, now
        times = [self._samples[0][0]] if room_to_sample else []
        times += [self._works[0][1]] if room_to_work else []
        return None, min(times, default=self._give_up)

    def _work_room(self, rank: int) -> int:
        """Workers a task of this rank may fill: one is kept for recording what a sampler handed
        over, so a detected failover never waits on management API calls that hang or crawl."""
        workers = max(1, self._schedule.record_workers)
        return workers if rank == 0 or workers == 1 else workers - 1

    def _done(self, *, sample: bool = False) -> None:
        with self._cond:
            self._outstanding -= 1
            self._sampling -= sample
            self._cond.notify()

    # --- the pools' tasks ---------------------------------------------------------------------

    def _sample(self, watch: _Watch) -> None:
        """One database sample; never waits on recording, effects or the management API."""
        try:
            prober, health = self._prober, watch.health
            started = prober.monotonic()
            if watch.last_sample is not None:
                health.db_worst_gap = max(health.db_worst_gap, started - watch.last_sample)
            watch.last_sample = started
            health.db_samples += 1
            handoff: queue.Queue[_Sampled] = queue.Queue()
            try:
                if watch.memory is None:
                    watch.memory = prober._db_memory(health.server, watch.read_for_db)
                    assert watch.memory is not None
                    with self._cond:
                        watch.recorder.committed = watch.memory
                watch.memory = prober._db_check(health, watch.memory, handoff)
            except Exception:  # as in _work: the server must stay sampled for the rest of the run
                log.exception("probe of server %s: a database sample failed unexpectedly", health.server)
            failing = watch.memory is not None and watch.memory.failing
            wake = started + (self._schedule.db_fast_interval if failing else self._schedule.db_interval)
            with self._cond:
                for sampled in _drain(handoff):
                    quiet = not watch.working and watch.handoff.empty() and watch.recorder.idle
                    if not sampled.signals and quiet:
                        watch.recorder.committed = sampled.memory  # nothing waits before it: in order
                    else:
                        watch.handoff.put(sampled)
                        self._push(started, False, watch, urgent=True)
                if wake < self._deadline or (self._busy and wake < self._give_up):
                    # Past the window the run still waits on management API checks or recording:
                    # sampling goes on meanwhile, so no outage ends unseen while the run cannot end.
                    self._push(wake, True, watch)
                else:
                    watch.sampling = False
                    self._push(started, False, watch)  # keep the memory once everything is recorded
        finally:
            self._done(sample=True)

    def _work(self, watch: _Watch, *, urgent: bool = False) -> None:
        """A server's management API check and recording; one task at a time per server. An urgent
        task (a sampler handed something over) only records: it may hold the worker kept for that,
        and a due management API check is pushed for another worker."""
        try:
            while True:
                try:
                    self._work_once(watch, urgent=urgent)
                except Exception:
                    # A pool swallows what its task raises: without this, the worker's slot and the
                    # server's turn would stay taken for the rest of the run, its signals unrecorded.
                    log.exception("probe of server %s: its work failed unexpectedly", watch.health.server)
                with self._cond:
                    if watch.again:
                        watch.again = False
                        continue
                    watch.working = False
                    self._busy -= 1
                    due = watch.next_arm if watch.next_arm < self._deadline else float("inf")
                    if not watch.recorder.idle:
                        due = min(due, self._prober.monotonic() + _RETRY_SECONDS)
                    if due < self._give_up:
                        self._push(due, False, watch)
                    return
        finally:
            self._done()

    def _work_once(self, watch: _Watch, *, urgent: bool) -> None:
        prober = self._prober
        now = prober.monotonic()
        if watch.next_arm <= now < self._deadline and not urgent:
            watch.next_arm = now + self._schedule.arm_interval
            watch.stored_view = prober._arm_check(
                watch.resource_id, watch.health, watch.stored_view, watch.read_for_arm
            )
        watch.recorder.take(watch.handoff)
        watch.recorder.flush()
        finished = not watch.sampling and watch.next_arm >= self._deadline
        if finished and watch.recorder.idle and watch.handoff.empty() and not watch.saved:
            self._save(watch)

    def _save(self, watch: _Watch) -> None:
        """Keep the database memory as far as it was recorded (the next run starts from it)."""
        watch.saved = True
        committed = watch.recorder.committed
        if committed is None:
            return
        try:
            self._prober.responder.save_probe_facts(
                watch.health.server, db=committed.state, known=watch.first_read.first()
            )
        except FailoverError as error:
            log.warning(
                "probe of server %s: could not keep the database bookkeeping: %s",
                watch.health.server,
                redact(str(error)),
            )


def _drain(handoff: queue.Queue[_Sampled]) -> list[_Sampled]:
    items = []
    while True:
        try:
            items.append(handoff.get_nowait())
        except queue.Empty:
            return items


def _set(health: ServerHealth, what: str, status: str, message: str | None) -> None:
    setattr(health, what, status)
    setattr(health, f"{what}_error", message)


def _server(resource_id: str) -> str:
    parsed = flexible_server_from_resource_id(resource_id)
    assert parsed is not None
    return parsed[1]


class Targets:
    """The watched servers: listed explicitly, plus those discovered in scopes, refreshed periodically."""

    def __init__(
        self,
        listed: tuple[str, ...],
        scopes: tuple[str, ...],
        inspector: ServerInspector | None,
        *,
        clock: Clock,
        refresh: timedelta,
    ) -> None:
        self._listed = listed
        self._scopes = scopes
        self._inspector = inspector
        self._clock = clock
        self._refresh = refresh
        self._found: tuple[str, ...] = ()
        self._found_at: datetime | None = None

    def __call__(self) -> tuple[str, ...]:
        if self._scopes and self._inspector is not None and self._due():
            try:
                self._found = self._inspector.discover(self._scopes)
                self._found_at = self._clock()
            except FailoverError as error:
                log.warning(
                    "discovery failed, keeping %d known servers: %s", len(self._found), redact(str(error))
                )
        return tuple(dict.fromkeys((*self._listed, *self._found)))

    def _due(self) -> bool:
        return self._found_at is None or self._clock() - self._found_at >= self._refresh


__all__ = ["ProbeReport", "ProbeSchedule", "Prober", "ServerHealth", "Targets"]
