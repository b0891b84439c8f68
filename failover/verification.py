"""Post-failover verification: which checks, their verdicts from observations, and the schedule.

Layer: pure core. Values in, values out: an `Observation` (what the management API and the
database said at one moment) and the steps decided so far give the new steps; `next_run` says
when to look again. It must not do I/O, read the clock or the environment, or log.

The checks follow Microsoft's guidance after an HA failover (docs/verification.md): the new
writer accepts writes, the standby is rebuilt (HA `Healthy`), read replicas follow the new
primary, logical replication slots survived, planner statistics came over (with the advice to
ANALYZE where the promotion restarted autovacuum's counters or a table was never analyzed), and the
primary's zone matches the zones the application tier runs in (`APP_ZONES`). A step is `pending`
until decided; `passed`, `failed` and `skipped` are final and keep the time they were decided. At the deadline
(`VERIFY_DEADLINE_SECONDS` after primary restored) every pending step fails. Failures make one
card when verification is complete, never one per check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from failover.model import _StrEnum
from failover.ports import DbObservation, ServerView
from failover.presentation import format_duration
from failover.timeutil import ensure_utc, iso, parse_iso


class Check(_StrEnum):
    WRITER_WRITABLE = "writer_writable"
    STANDBY_HEALTHY = "standby_healthy"
    REPLICAS_FOLLOWING = "replicas_following"
    SLOTS_SYNCED = "slots_synced"
    STATISTICS = "statistics"
    ZONE_ALIGNMENT = "zone_alignment"


class StepStatus(_StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    PENDING = "pending"
    SKIPPED = "skipped"

    @property
    def final(self) -> bool:
        return self is not StepStatus.PENDING


@dataclass(frozen=True)
class Step:
    """One verification step: the public JSON is `{check, status, at, detail}` (design section 5)."""

    check: Check
    status: StepStatus
    at: datetime
    detail: str

    def to_public(self) -> dict[str, Any]:
        return {
            "check": self.check.value,
            "status": self.status.value,
            "at": iso(self.at),
            "detail": self.detail,
        }

    @classmethod
    def from_public(cls, raw: Mapping[str, Any]) -> Step:
        return cls(Check(raw["check"]), StepStatus(raw["status"]), parse_iso(raw["at"]), str(raw["detail"]))


@dataclass(frozen=True)
class VerifyPolicy:
    deadline: timedelta = timedelta(seconds=1800)  # VERIFY_DEADLINE_SECONDS
    app_zones: tuple[str, ...] = ()  # APP_ZONES: where the application tier runs
    # How often to look again: every `fast` during the first `fast_for`, then every `slow`.
    fast: timedelta = timedelta(seconds=2)
    fast_for: timedelta = timedelta(minutes=2)
    slow: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class Observation:
    """What was seen at `at`; None where a source could not be asked (not configured)."""

    at: datetime
    server: ServerView | None
    database: DbObservation | None
    server_error: str | None = None  # why the management API could not be read (classified)


_ACTIVE = "active"
_BROKEN = "broken"
_NAMES_SHOWN = 5


def _names(items: Iterable[str], total: int | None = None) -> str:
    shown = list(items)
    text = ", ".join(shown[:_NAMES_SHOWN])
    more = (total if total is not None else len(shown)) - min(len(shown), _NAMES_SHOWN)
    return f"{text} and {more} more" if more > 0 else text


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():.0f} s"


def _writer(obs: Observation) -> tuple[StepStatus, str]:
    db = obs.database
    if db is None:
        return StepStatus.SKIPPED, "the database probe is off for this server"
    if not db.reachable:
        return StepStatus.PENDING, f"the writer endpoint does not answer ({db.error or 'unreachable'})"
    if db.in_recovery:
        return StepStatus.PENDING, "the node behind the writer endpoint is still in recovery"
    if not db.writable:
        return StepStatus.PENDING, f"the writer refused a write ({db.error or 'read only'})"
    return StepStatus.PASSED, "the new primary accepts writes and is not in recovery"


def _standby(obs: Observation, restored_at: datetime) -> tuple[StepStatus, str]:
    view = obs.server
    if view is None:
        return StepStatus.PENDING, f"the management API could not be read ({obs.server_error or 'no answer'})"
    if (view.ha_mode or "").lower() == "disabled":
        return StepStatus.SKIPPED, "high availability is not enabled on this server"
    if (view.ha_state or "").lower() == "healthy":
        took = max(obs.at - restored_at, timedelta(0))
        zone = view.standby_zone or "unknown"
        return (
            StepStatus.PASSED,
            f"HA Healthy: standby rebuilt in zone {zone}, {format_duration(took.total_seconds())}"
            " after primary restored",
        )
    return StepStatus.PENDING, f"HA state {view.ha_state or 'unknown'}: the standby is not rebuilt yet"


def _replicas(obs: Observation) -> tuple[StepStatus, str]:
    view = obs.server
    if view is None:
        return StepStatus.PENDING, f"the management API could not be read ({obs.server_error or 'no answer'})"
    if not view.replicas:
        return StepStatus.SKIPPED, "the server has no read replicas"
    states = {r.name: (r.replication_state or "unknown") for r in view.replicas}
    broken = sorted(n for n, s in states.items() if s.lower() == _BROKEN)
    if broken:
        return StepStatus.FAILED, f"replication Broken on {_names(broken)}: recreate these replicas"
    behind = sorted(n for n, s in states.items() if s.lower() != _ACTIVE)
    if behind:
        return StepStatus.PENDING, "not Active yet: " + _names(f"{n} ({states[n]})" for n in behind)
    return StepStatus.PASSED, "every replica Active: " + _names(sorted(states))


def _slots(obs: Observation) -> tuple[StepStatus, str]:
    db = obs.database
    if db is None:
        return StepStatus.SKIPPED, "the database probe is off for this server"
    if not (db.reachable and db.writable and db.catalog_read):
        return StepStatus.PENDING, "waiting for the writer before reading its slots"
    if not db.slots:
        return StepStatus.SKIPPED, "no logical replication slots on the new primary"
    names = sorted(s.name for s in db.slots)
    unsafe = sorted(s.name for s in db.slots if s.failover is False)
    if unsafe:
        return (
            StepStatus.FAILED,
            f"slots without the failover flag will not survive the next failover: {_names(unsafe)}"
            " (recreate them with failover = true, or enable pg_failover_slots)",
        )
    synced = [s.name for s in db.slots if s.synced]
    note = f"; synced from the old primary: {_names(sorted(synced))}" if synced else ""
    return StepStatus.PASSED, f"{len(names)} logical slot(s) present: {_names(names)}{note}"


def _statistics(obs: Observation) -> tuple[StepStatus, str]:
    """Planner statistics (`pg_statistic`) are replicated, so the promotion keeps them: what it
    resets is the activity counters autovacuum schedules by. Both are advice, never a failure."""
    db = obs.database
    if db is None:
        return StepStatus.SKIPPED, "the database probe is off for this server"
    if not (db.reachable and db.writable and db.catalog_read):
        return StepStatus.PENDING, "waiting for the writer before reading its statistics"
    advice: list[str] = []
    if db.tables_with_reset_counters:
        advice.append(
            f"the activity counters autovacuum reads restarted at the promotion for"
            f" {db.tables_with_reset_counters} analyzed table(s): run ANALYZE (the whole database)"
            " so autovacuum sees their row counts again"
        )
    if db.tables_without_statistics_count:
        count = db.tables_without_statistics_count
        advice.append(
            f"{count} table(s) with data were never analyzed, before the failover too"
            f" ({_names(db.tables_without_statistics, count)}): run ANALYZE on them"
        )
    kept = "planner statistics came over with the standby (physical replication copies pg_statistic)"
    return StepStatus.PASSED, kept + ("; advice: " + "; ".join(advice) if advice else "")


def _zones(obs: Observation, app_zones: tuple[str, ...]) -> tuple[StepStatus, str]:
    if not app_zones:
        return StepStatus.SKIPPED, "APP_ZONES is not set"
    view = obs.server
    zone = view.primary_zone if view is not None else None
    if zone is None:
        return StepStatus.PENDING, "the primary's zone is not known yet"
    wanted = ", ".join(app_zones)
    if zone in app_zones:
        return StepStatus.PASSED, f"the primary is in zone {zone}, where the application tier runs ({wanted})"
    return (
        StepStatus.FAILED,
        f"the primary is in zone {zone} but the application tier runs in zone(s) {wanted}:"
        " every query now crosses zones; plan a planned failover back in a quiet hour",
    )


def judge(
    obs: Observation,
    previous: Iterable[Step],
    *,
    restored_at: datetime,
    policy: VerifyPolicy,
) -> tuple[Step, ...]:
    """Every check's step after `obs`: final steps are kept as they were, pending ones re-judged."""
    at = ensure_utc(obs.at)
    kept = {s.check: s for s in previous if s.status.final}
    verdicts = {
        Check.WRITER_WRITABLE: lambda: _writer(obs),
        Check.STANDBY_HEALTHY: lambda: _standby(obs, restored_at),
        Check.REPLICAS_FOLLOWING: lambda: _replicas(obs),
        Check.SLOTS_SYNCED: lambda: _slots(obs),
        Check.STATISTICS: lambda: _statistics(obs),
        Check.ZONE_ALIGNMENT: lambda: _zones(obs, policy.app_zones),
    }
    late = at >= restored_at + policy.deadline
    steps: list[Step] = []
    for check in Check:
        if check in kept:
            steps.append(kept[check])
            continue
        status, detail = verdicts[check]()
        if status is StepStatus.PENDING and late:
            status, detail = StepStatus.FAILED, f"not done within {_seconds(policy.deadline)}: {detail}"
        steps.append(Step(check, status, at, detail))
    return tuple(steps)


def complete(steps: Iterable[Step]) -> bool:
    """Whether every check is decided."""
    decided = {s.check for s in steps if s.status.final}
    return decided == set(Check)


def failed(steps: Iterable[Step]) -> tuple[Step, ...]:
    return tuple(s for s in steps if s.status is StepStatus.FAILED)


def next_run(
    steps: Iterable[Step], *, restored_at: datetime, now: datetime, policy: VerifyPolicy
) -> datetime | None:
    """When to look again, never past the deadline; None when verification is complete."""
    if complete(steps):
        return None
    elapsed = now - restored_at
    step = policy.fast if elapsed < policy.fast_for else policy.slow
    return min(now + step, restored_at + policy.deadline)
