"""Reconciliation: write again the topology Redis lost (design section 5, "what Redis lost").

Layer: core use case. `plan` is the pure decision (which stale servers to write in this run);
`reconcile` orders the calls on a `TopologyCache` port: one batched check of what Redis holds,
then at most `max_writes` publishes. It must not import Redis or storage SDKs, post anything
else, or decide topology itself: the topologies and epochs it writes come from the caller, as
the app last recorded them, and the cache's compare-and-set keeps a newer one in Redis.

A cache that restarted empty, was flushed, evicted a key or missed a lost effect is repaired
within the runs needed to cover every stale server at `max_writes` per run (one sweeper period
when the budget covers the fleet).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from failover.errors import FailoverError, is_retryable
from failover.model import Topology
from failover.ports import TopologyCache
from failover.secrets import redact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Publication:
    """What the app last decided for one server: the topology and its primary epoch."""

    topology: Topology
    epoch: int

    @property
    def server(self) -> str:
        return self.topology.server.lower()


@dataclass(frozen=True)
class ReconcileReport:
    checked: int = 0  # servers whose Redis copy was checked
    stale: int = 0  # missing or older in Redis
    written: int = 0  # written again (or their lost epoch restored)
    failed: int = 0  # refused for good (e.g. a key of the wrong type); logged
    deferred: int = 0  # stale but over this run's budget: the next run takes them
    error: str | None = None  # Redis unavailable: the run stopped here (redacted)


def plan(known: Sequence[Publication], stale: Collection[str], *, max_writes: int) -> tuple[Publication, ...]:
    """The publications to write in this run: stale servers only, newest version first per server,
    in server-name order (deterministic), at most `max_writes`."""
    newest: dict[str, Publication] = {}
    for item in known:
        if item.server in stale:
            current = newest.get(item.server)
            if current is None or item.topology.version > current.topology.version:
                newest[item.server] = item
    return tuple(newest[server] for server in sorted(newest))[: max(max_writes, 0)]


def reconcile(
    cache: TopologyCache,
    known: Callable[[], Iterable[Publication]],
    *,
    max_writes: int = 500,
    max_seconds: float = 20.0,
    monotonic: Callable[[], float] = time.monotonic,
) -> ReconcileReport:
    """Check every known server's topology in Redis and write again what is missing or older.

    Bounded per run: at most `max_writes` publishes and no new publish after `max_seconds`.
    A Redis that is down ends the run early with `error` set (nothing raised: the caller's timer
    tries again next period); a permanent refusal for one server is counted and logged.
    """
    started = monotonic()
    items = list(known())
    versions: dict[str, int] = {}
    for item in items:
        versions[item.server] = max(versions.get(item.server, item.topology.version), item.topology.version)
    try:
        stale = cache.missing_or_older(versions) if versions else frozenset()
    except FailoverError as error:
        log.warning("reconcile: could not check redis: %s", redact(str(error)))
        return ReconcileReport(checked=0, error=redact(str(error)))
    chosen = plan(items, stale, max_writes=max_writes)
    written, failed, error_text = _write(cache, chosen, deadline=started + max_seconds, monotonic=monotonic)
    report = ReconcileReport(
        checked=len(versions),
        stale=len(stale),
        written=written,
        failed=failed,
        deferred=len(stale) - written - failed,
        error=error_text,
    )
    if report.stale:
        log.info(
            "reconcile: %d of %d servers stale in redis, %d written, %d deferred",
            report.stale,
            report.checked,
            report.written,
            report.deferred,
        )
    return report


def _write(
    cache: TopologyCache, chosen: Sequence[Publication], *, deadline: float, monotonic: Callable[[], float]
) -> tuple[int, int, str | None]:
    """Publish the chosen topologies until the deadline: (written, failed, why the run stopped)."""
    written = failed = 0
    for item in chosen:
        if monotonic() >= deadline:
            break
        try:
            cache.publish(item.topology, epoch=item.epoch)
        except FailoverError as error:
            if is_retryable(error):
                error_text = redact(str(error))
                log.warning("reconcile: redis unavailable, stopping this run: %s", error_text)
                return written, failed, error_text
            failed += 1
            log.error("reconcile: topology of %s refused: %s", item.server, redact(str(error)))
            continue
        except Exception as error:  # an adapter bug for one server never stops the run
            failed += 1
            log.exception(
                "reconcile: topology of %s failed unexpectedly: %s", item.server, type(error).__name__
            )
            continue
        written += 1
    return written, failed, None
