"""Fan-out of the probe: the watched fleet split into shards, one queue message per shard per tick.

Layer: pure core (values in, values out; no I/O, no clock of its own). The probe timer plans the
shards and enqueues them (`failover.adapters.probe_queue`); a queue-triggered function watches one
shard for one window (`handlers.queues`), and Azure Functions spreads the messages over as many
instances as the queue's length calls for.

Affinity: every message of a tick also carries the whole plan (`Shard.plan`, compressed), so the
instance that takes a message may watch any shard of the tick, and it claims the one whose servers
it watched last tick (`failover.shard_claims`): its kept database sessions go on serving, instead of
every instance logging in to most of its servers each minute because the host handed it other
messages. A plan too large for a message (`MAX_MESSAGE_BYTES`) goes without it, and each message is
its own shard.

Why two instances never watch one server at once: within a tick every server is in exactly one
shard, and each shard is claimed once (or, without a plan, is one message, hidden by the Functions
host while its function runs); across ticks every message carries `not_after`, the end of its tick's
window, and a consumer watches until then (a late or retried message gets what is left of its
window, or nothing) and past it only while its last recording runs, for at most the recording grace
(5 s): the timer's window is at most its period less 8 s (`handlers.timers.PROBE_WINDOW_MAX`), so
that ends before the next tick is planned. Messages also expire (`ttl`) after one period.

The queue trigger's module imports this one when the worker indexes the app (for `PROBE_QUEUE`),
so what only reading or writing a message needs is imported inside those methods (cold start).
zlib and base64 are the standard library's: the plan needs nothing more.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache

PROBE_QUEUE = "probe-shards"  # the queue the timer fills and `handlers.queues.probe_shard` drains
MIN_WINDOW = timedelta(seconds=2)  # a message with less of its window left is not worth starting
# A queue message holds at most 64 KiB, and the Functions host reads it base64-encoded (host.json
# `messageEncoding`): 48 KiB of body. https://learn.microsoft.com/azure/storage/queues/scalability-targets
MAX_MESSAGE_BYTES = 48 * 1024
_VERSION = 2


@dataclass(frozen=True)
class Shard:
    """One message: which servers to watch, and until when at the latest; with the tick's whole
    plan (every shard's servers, `plan[index] == targets`) when it fits in a message."""

    index: int
    count: int
    targets: tuple[str, ...]  # flexible server resource ids
    issued_at: datetime
    not_after: datetime
    plan: tuple[tuple[str, ...], ...] = ()

    def to_json(self) -> str:
        from failover.timeutil import iso

        body: dict[str, object] = {
            "v": _VERSION,
            "shard": self.index,
            "of": self.count,
            "targets": list(self.targets),
            "issued_at": iso(self.issued_at),
            "not_after": iso(self.not_after),
        }
        if self.plan:
            body["plan"] = _packed(self.plan)
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Shard:
        """Parse a message body; ValueError names what is wrong (a poison message is dropped)."""
        from failover.timeutil import parse_iso

        try:
            raw = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise ValueError("shard message is not JSON") from error
        if not isinstance(raw, dict) or raw.get("v") != _VERSION:
            raise ValueError(f"shard message: not a version {_VERSION} shard")
        targets = _server_ids(raw.get("targets"), "shard message: targets must be a list of resource ids")
        index, count = raw.get("shard"), raw.get("of")
        if not isinstance(index, int) or not isinstance(count, int) or not 0 <= index < count:
            raise ValueError("shard message: shard and of must be integers, 0 <= shard < of")
        try:
            issued_at, not_after = parse_iso(raw.get("issued_at")), parse_iso(raw.get("not_after"))
        except ValueError as error:
            raise ValueError("shard message: issued_at and not_after must be ISO 8601 times") from error
        if not_after <= issued_at:
            raise ValueError("shard message: not_after must come after issued_at")
        shard_plan = _unpacked(raw["plan"]) if "plan" in raw else ()
        if shard_plan and (len(shard_plan) != count or shard_plan[index] != targets):
            raise ValueError("shard message: the plan must hold `of` shards, this one's targets at `shard`")
        return cls(index, count, targets, issued_at, not_after, shard_plan)

    def window_at(self, now: datetime, window: timedelta) -> timedelta | None:
        """How long to watch when starting at `now`: the window, cut at `not_after`; None if too late."""
        left = min(window, self.not_after - now)
        return left if left >= MIN_WINDOW else None

    def sibling(self, index: int) -> Shard:
        """Another shard of this message's plan (the message must carry one)."""
        return replace(self, index=index, targets=self.plan[index])


def plan(targets: tuple[str, ...], *, shard_size: int, issued_at: datetime, window: timedelta) -> list[Shard]:
    """Split `targets` into balanced shards of at most `shard_size`, in a stable (sorted) order; each
    carries the whole plan unless that makes a message longer than `MAX_MESSAGE_BYTES`."""
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    ordered = sorted(dict.fromkeys(targets), key=str.lower)
    if not ordered:
        return []
    count = math.ceil(len(ordered) / shard_size)
    parts = tuple(tuple(ordered[index::count]) for index in range(count))
    not_after = issued_at + window
    shards = [Shard(index, count, parts[index], issued_at, not_after, parts) for index in range(count)]
    if max(len(s.to_json().encode("utf-8")) for s in shards) > MAX_MESSAGE_BYTES:
        return [replace(s, plan=()) for s in shards]
    return shards


def preference(free: Iterable[int], shard: Shard, recent: frozenset[str]) -> list[int]:
    """The free shards of `shard`'s plan, best first for an instance that watched `recent` last tick:
    most of those servers first (their sessions are kept), then the message's own shard, then by index."""
    return sorted(free, key=lambda i: (-len(recent.intersection(shard.plan[i])), i != shard.index, i))


@lru_cache(maxsize=1)  # every message of a tick carries the one plan: packed once, not per message
def _packed(shards: tuple[tuple[str, ...], ...]) -> str:
    import base64
    import zlib

    # Resource ids share long prefixes: 500 of them pack from about 76 KB to 3 to 31 KB.
    return base64.b64encode(zlib.compress(json.dumps(shards, separators=(",", ":")).encode(), 9)).decode()


def _unpacked(text: object) -> tuple[tuple[str, ...], ...]:
    import base64
    import binascii
    import zlib

    bad = "shard message: plan must be a packed list of shards of flexible server resource ids"
    if not isinstance(text, str):
        raise ValueError(bad)
    try:
        # Bounded: resource ids pack 3x to 25x, so 64x the body is room for any real plan and
        # keeps a hostile one (zlib reaches 1,000x) from taking the instance's memory.
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(text, validate=True), 64 * MAX_MESSAGE_BYTES)
        if inflater.unconsumed_tail:
            raise ValueError(bad)
        shards = json.loads(raw)
    except (binascii.Error, zlib.error, ValueError, RecursionError) as error:
        raise ValueError(bad) from error
    if not isinstance(shards, list) or not shards:
        raise ValueError(bad)
    return tuple(_server_ids(part, bad) for part in shards)


def _server_ids(value: object, problem: str) -> tuple[str, ...]:
    from failover.sources.resources import flexible_server_from_resource_id

    if not isinstance(value, list) or not all(
        isinstance(t, str) and flexible_server_from_resource_id(t) for t in value
    ):
        raise ValueError(problem)
    return tuple(value)


__all__ = ["MAX_MESSAGE_BYTES", "MIN_WINDOW", "PROBE_QUEUE", "Shard", "plan", "preference"]
