"""Issue 15, shard affinity: every message of a tick carries the whole plan, within a queue message.

Pure core (`failover.shards`): the packed plan round-trips, a plan too large for a message is left
out (each message is then its own shard), a hostile plan is refused with a clear reason, and the
preference puts first the shard whose servers an instance watched last tick.
"""

from __future__ import annotations

import base64
import json
import uuid
import zlib
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.shards import MAX_MESSAGE_BYTES, Shard, plan, preference

ISSUED = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)
WINDOW = timedelta(seconds=50)


def _ids(count: int, *, random_names: bool = False) -> tuple[str, ...]:
    def one(n: int) -> str:
        if random_names:  # every server in its own subscription and group: the worst case to pack
            return (
                f"/subscriptions/{uuid.uuid4()}/resourceGroups/rg-{uuid.uuid4().hex[:12]}"
                f"/providers/Microsoft.DBforPostgreSQL/flexibleServers/{uuid.uuid4().hex[:20]}"
            )
        return (
            "/subscriptions/00000000-0000-0000-0000-000000000015/resourceGroups/rg-data"
            f"/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg-orders-{n:04d}"
        )

    return tuple(one(n) for n in range(count))


def test_every_message_carries_the_whole_plan_and_round_trips():
    ids = _ids(500)
    shards = plan(ids, shard_size=63, issued_at=ISSUED, window=WINDOW)
    assert len(shards) == 8
    assert all(s.plan == tuple(x.targets for x in shards) for s in shards)
    for shard in shards:
        body = shard.to_json()
        assert len(body.encode()) <= MAX_MESSAGE_BYTES
        assert Shard.from_json(body) == shard
    assert shards[3].sibling(5) == shards[5]


def test_a_plan_too_large_for_a_message_is_left_out_and_each_message_is_its_own_shard():
    ids = _ids(900, random_names=True)  # packs to about 56 KB: more than a message holds
    shards = plan(ids, shard_size=100, issued_at=ISSUED, window=WINDOW)
    assert all(s.plan == () for s in shards)
    assert sorted(t for s in shards for t in s.targets) == sorted(ids)
    assert all(len(s.to_json().encode()) <= MAX_MESSAGE_BYTES for s in shards)
    assert Shard.from_json(shards[0].to_json()) == shards[0]


def _body(shard: Shard, **changes: object) -> str:
    raw = json.loads(shard.to_json())
    raw.update(changes)
    return json.dumps(raw)


def _pack(value: object) -> str:
    return base64.b64encode(zlib.compress(json.dumps(value).encode())).decode()


@pytest.mark.parametrize(
    "plan_field",
    [
        "not base64!",
        base64.b64encode(b"not zlib").decode(),
        _pack({"not": "a list"}),
        _pack([]),
        _pack([["/not/a/server"]]),
        _pack([[1, 2]]),
        12,
    ],
)
def test_a_malformed_plan_is_refused_with_a_reason(plan_field):
    (shard,) = plan(_ids(3), shard_size=5, issued_at=ISSUED, window=WINDOW)
    with pytest.raises(ValueError, match="plan"):
        Shard.from_json(_body(shard, plan=plan_field))


def test_a_plan_that_disagrees_with_its_message_is_refused():
    shards = plan(_ids(6), shard_size=3, issued_at=ISSUED, window=WINDOW)
    other = plan(_ids(9), shard_size=3, issued_at=ISSUED, window=WINDOW)
    with pytest.raises(ValueError, match="plan must hold"):
        Shard.from_json(_body(shards[0], plan=json.loads(other[0].to_json())["plan"]))


def test_a_plan_that_inflates_beyond_any_message_is_refused_unread():
    (shard,) = plan(_ids(3), shard_size=5, issued_at=ISSUED, window=WINDOW)
    bomb = base64.b64encode(zlib.compress(b"[" + b" " * (10 * 1024 * 1024) + b"]", 9)).decode()
    assert len(bomb) < MAX_MESSAGE_BYTES
    with pytest.raises(ValueError, match="plan"):
        Shard.from_json(_body(shard, plan=bomb))


@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=6),
    own=st.integers(0, 5),
    watched=st.sets(st.integers(0, 35)),
    taken=st.sets(st.integers(0, 5)),
)
def test_the_preference_puts_most_of_what_was_watched_first_then_the_own_shard(sizes, own, watched, taken):
    ids = _ids(36)
    parts, start = [], 0
    for size in sizes:
        parts.append(ids[start : start + size])
        start += size
    count = len(parts)
    message = Shard(own % count, count, parts[own % count], ISSUED, ISSUED + WINDOW, tuple(parts))
    recent = frozenset(ids[n] for n in watched)
    free = [i for i in range(count) if i not in taken]
    ranked = preference(free, message, recent)
    assert sorted(ranked) == sorted(free)
    kept = [len(recent.intersection(parts[i])) for i in ranked]
    assert kept == sorted(kept, reverse=True)  # never a shard with fewer kept sessions first
    if ranked and message.index in free:
        best = [i for i in ranked if kept[ranked.index(i)] == kept[0]]
        assert (message.index in best) == (ranked[0] == message.index)
