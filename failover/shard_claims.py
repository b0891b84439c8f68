"""Which shard a probe queue message watches: each shard of a tick once, by the instance that
watched its servers last tick when it can.

Layer: application. Storage through `SideRows` only: partition `~shards`, one row per shard index
(`RowKey` the index, 4 digits) holding the tick it was last claimed for and by which message.
A claim is a compare-and-swap on that row (insert when absent, else replace under the ETag just
read), so a shard is claimed once per tick whatever the number of instances. Every message of a
tick carries the whole plan (`failover.shards`): the message is a slot to fill, not a shard, and
there are as many messages as shards, so each message finds a shard left (the others claimed at
most one each). Which one is `failover.shards.preference`'s (pure): most of the servers this
instance watched in its latest earlier tick, whose database sessions it keeps. A message taken
again (the host retries it after a failure) finds the claim it made. It must not watch without
a claim when the claims could be read; when they cannot, the message's own shard is watched as
before claims existed (a failed read must not leave servers unwatched; at worst two instances
watch one shard for one tick).

Cost: a query of the partition, then a read and a write of the chosen row: 3 Table requests per
message, one more read and write per lost race.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from failover.errors import ConcurrencyConflictError, StorageError, StorageUnavailableError
from failover.ports import SideRows, swap_row
from failover.shards import Shard, preference
from failover.timeutil import iso, parse_iso

log = logging.getLogger(__name__)

PARTITION = "~shards"


class ShardClaims:
    """Claims on the `~shards` rows, and what this instance watched (its memory, per tick)."""

    def __init__(self, rows: SideRows) -> None:
        self._rows = rows
        self._lock = threading.Lock()
        self._watched: dict[datetime, frozenset[str]] = {}  # tick (issued_at) -> servers taken

    def take(self, message: Shard, holder: str) -> Shard | None:
        """The shard `message` (queue message id `holder`) watches; None when every one of its tick
        is claimed by other messages. `ConcurrencyConflictError` after more lost races than shards."""
        if not message.plan:
            return message
        try:
            taken = self._claim(message, holder)
        except (StorageError, StorageUnavailableError) as error:
            log.warning(
                "probe shard %d/%d: claims unreadable (%s); watching the message's own shard",
                message.index + 1,
                message.count,
                type(error).__name__,
            )
            taken = message
        if taken is not None:
            self._remember(taken)
        return taken

    def _claim(self, message: Shard, holder: str) -> Shard | None:
        for _ in range(message.count + 1):  # each lost race is another message's claim of this tick
            claims = {int(row["RowKey"]): row for row in self._rows.query(PARTITION, "")}
            mine = [i for i, row in claims.items() if i < message.count and _is(row, message, holder)]
            if mine:
                return message.sibling(mine[0])
            free = [i for i in range(message.count) if not _claimed(claims.get(i), message)]
            if not free:
                return None
            choice = preference(free, message, self._recent(message.issued_at))[0]
            found = self._rows.get(PARTITION, _key(choice))
            if _claimed(found[0] if found else None, message):
                continue
            entity = {"PartitionKey": PARTITION, "RowKey": _key(choice), "tick": iso(message.issued_at)}
            try:
                swap_row(self._rows, {**entity, "holder": holder}, found)
            except ConcurrencyConflictError:
                continue
            return message.sibling(choice)
        raise ConcurrencyConflictError(f"probe shard {message.index + 1}/{message.count}: claims kept moving")

    def _recent(self, tick: datetime) -> frozenset[str]:
        """The servers this instance took in its latest tick before `tick`."""
        with self._lock:
            earlier = [t for t in self._watched if t < tick]
            return self._watched[max(earlier)] if earlier else frozenset()

    def _remember(self, taken: Shard) -> None:
        with self._lock:
            tick = taken.issued_at
            self._watched[tick] = self._watched.get(tick, frozenset()) | frozenset(taken.targets)
            for old in sorted(self._watched)[:-2]:  # the latest two ticks are all `_recent` needs
                del self._watched[old]


def _key(index: int) -> str:
    return f"{index:04d}"


def _tick_of(row: dict[str, Any] | None) -> datetime | None:
    try:
        return parse_iso(row.get("tick")) if row else None
    except ValueError:
        return None  # a row nobody can read is free to claim again


def _claimed(row: dict[str, Any] | None, message: Shard) -> bool:
    """Claimed for this tick (or a later one: this message is stale, the shard not its to take)."""
    tick = _tick_of(row)
    return tick is not None and tick >= message.issued_at


def _is(row: dict[str, Any], message: Shard, holder: str) -> bool:
    return row.get("holder") == holder and _tick_of(row) == message.issued_at


__all__ = ["PARTITION", "ShardClaims"]
