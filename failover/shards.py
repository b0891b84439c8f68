"""Fan-out of the probe: the watched fleet split into shards, one queue message per shard per tick.

Layer: pure core (values in, values out; no I/O, no clock of its own). The probe timer plans the
shards and enqueues them (`failover.adapters.probe_queue`); a queue-triggered function watches one
shard for one window (`handlers.queues`), and Azure Functions spreads the messages over as many
instances as the queue's length calls for.

Why two instances never watch one server at once: within a tick every server is in exactly one
shard, and the Functions host hides a message while its function runs, so one message is one
consumer; across ticks every message carries `not_after`, the end of its tick's window, and a
consumer watches until then (a late or retried message gets what is left of its window, or
nothing) and past it only while its last recording runs, for at most the recording grace (5 s):
the timer's window is at most its period less 8 s (`handlers.timers.PROBE_WINDOW_MAX`), so that
ends before the next tick is planned. Messages also expire (`ttl`) after one period.

The queue trigger's module imports this one when the worker indexes the app (for `PROBE_QUEUE`),
so what only reading or writing a message needs is imported inside those methods (cold start).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

PROBE_QUEUE = "probe-shards"  # the queue the timer fills and `handlers.queues.probe_shard` drains
MIN_WINDOW = timedelta(seconds=2)  # a message with less of its window left is not worth starting
_VERSION = 1


@dataclass(frozen=True)
class Shard:
    """One message: which servers to watch, and until when at the latest."""

    index: int
    count: int
    targets: tuple[str, ...]  # flexible server resource ids
    issued_at: datetime
    not_after: datetime

    def to_json(self) -> str:
        from failover.timeutil import iso

        return json.dumps(
            {
                "v": _VERSION,
                "shard": self.index,
                "of": self.count,
                "targets": list(self.targets),
                "issued_at": iso(self.issued_at),
                "not_after": iso(self.not_after),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Shard:
        """Parse a message body; ValueError names what is wrong (a poison message is dropped)."""
        from failover.sources.resources import flexible_server_from_resource_id
        from failover.timeutil import parse_iso

        try:
            raw = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise ValueError("shard message is not JSON") from error
        if not isinstance(raw, dict) or raw.get("v") != _VERSION:
            raise ValueError("shard message: not a version 1 shard")
        targets = raw.get("targets")
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise ValueError("shard message: targets must be a list of resource ids")
        if not all(flexible_server_from_resource_id(t) for t in targets):
            raise ValueError("shard message: a target is not a flexible server resource id")
        index, count = raw.get("shard"), raw.get("of")
        if not isinstance(index, int) or not isinstance(count, int) or not 0 <= index < count:
            raise ValueError("shard message: shard and of must be integers, 0 <= shard < of")
        try:
            issued_at, not_after = parse_iso(raw.get("issued_at")), parse_iso(raw.get("not_after"))
        except ValueError as error:
            raise ValueError("shard message: issued_at and not_after must be ISO 8601 times") from error
        if not_after <= issued_at:
            raise ValueError("shard message: not_after must come after issued_at")
        return cls(index, count, tuple(targets), issued_at, not_after)

    def window_at(self, now: datetime, window: timedelta) -> timedelta | None:
        """How long to watch when starting at `now`: the window, cut at `not_after`; None if too late."""
        left = min(window, self.not_after - now)
        return left if left >= MIN_WINDOW else None


def plan(targets: tuple[str, ...], *, shard_size: int, issued_at: datetime, window: timedelta) -> list[Shard]:
    """Split `targets` into balanced shards of at most `shard_size`, in a stable (sorted) order."""
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    ordered = sorted(dict.fromkeys(targets), key=str.lower)
    if not ordered:
        return []
    count = math.ceil(len(ordered) / shard_size)
    not_after = issued_at + window
    return [Shard(index, count, tuple(ordered[index::count]), issued_at, not_after) for index in range(count)]


__all__ = ["MIN_WINDOW", "PROBE_QUEUE", "Shard", "plan"]
