"""Issue 15, shard affinity: a tick's messages claim each shard once, an instance its own shards again.

`failover.shard_claims` on the in-memory store (which honours ETags like Table storage; the contract
suite checks it against Azurite). Generated histories: how many instances, which message each one
gets, in which order, and where another message's whole claim runs between one message's read and
its write (a race between instances). The invariants:
- every message of a tick gets a different shard; once all of them ran, every shard is claimed;
- a message taken again (the host's retry) gets the shard it claimed before;
- next tick, an instance given as many messages as it had shards takes those very shards back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failover.adapters.memory_store import MemoryStore
from failover.ports import SideRows
from failover.shard_claims import PARTITION, ShardClaims
from failover.shards import Shard, plan

TICK = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)
PERIOD = timedelta(minutes=1)
IDS = tuple(
    "/subscriptions/00000000-0000-0000-0000-000000000015/resourceGroups/rg"
    f"/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg-{n:03d}"
    for n in range(40)
)


@dataclass
class RacingRows:
    """The store's side rows; before a read of one row, maybe another message's whole claim runs."""

    rows: SideRows
    interrupts: list[bool]
    pending: list[Callable[[], None]] = field(default_factory=list)

    def get(self, partition: str, row: str) -> Any:
        if self.pending and self.interrupts and self.interrupts.pop(0):
            self.pending.pop(0)()
        return self.rows.get(partition, row)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rows, name)


def _tick(
    racing: RacingRows, instances: list[ShardClaims], shards: list[Shard], who: list[int], order: list[int]
) -> dict[str, tuple[int, Shard | None]]:
    """Every message of the tick (message `m` taken by instance `who[m]`), in `order`."""
    taken: dict[str, tuple[int, Shard | None]] = {}

    def message(m: int) -> Callable[[], None]:
        def run() -> None:
            holder = f"msg-{shards[m].issued_at:%Y%m%d%H%M}-{m}"
            taken[holder] = (who[m], instances[who[m]].take(shards[m], holder))

        return run

    racing.pending = [message(m) for m in order]
    while racing.pending:
        racing.pending.pop(0)()
    return taken


@st.composite
def histories(draw: st.DrawFn) -> dict[str, Any]:
    servers = draw(st.integers(2, 40))
    size = draw(st.integers(1, servers))
    count = len(plan(IDS[:servers], shard_size=size, issued_at=TICK, window=PERIOD))
    instances = draw(st.integers(1, 4))
    who = draw(st.lists(st.integers(0, instances - 1), min_size=count, max_size=count))
    return {
        "servers": servers,
        "size": size,
        "instances": instances,
        "who": who,
        "first": draw(st.permutations(range(count))),
        "second": draw(st.permutations(range(count))),
        "reshuffle": draw(st.permutations(who)),  # the same number of messages per instance
        "interrupts": draw(st.lists(st.booleans(), max_size=40)),
    }


@settings(max_examples=300, deadline=None)
@given(history=histories())
def test_each_shard_once_per_tick_retries_find_their_claim_and_instances_keep_their_shards(history):
    each_shard_once_and_instances_keep_theirs(MemoryStore().side_rows(), history, TICK)


def each_shard_once_and_instances_keep_theirs(
    rows: SideRows, history: dict[str, Any], tick: datetime
) -> None:
    """Two ticks of `history` on `rows` from `tick` (the memory store here, Table storage on Azurite
    in tests/integration/test_probe_table_cost.py, with later ticks for later examples)."""
    racing = RacingRows(rows, list(history["interrupts"]))
    instances = [ShardClaims(racing) for _ in range(history["instances"])]
    ids = IDS[: history["servers"]]
    first = plan(ids, shard_size=history["size"], issued_at=tick, window=PERIOD)
    before = _tick(racing, instances, first, history["who"], history["first"])

    assert sorted(s.index for _, s in before.values() if s is not None) == list(range(len(first)))
    for holder, (instance, shard) in before.items():  # the host takes the message again
        again = instances[instance].take(first[int(holder.rsplit("-", 1)[1])], holder)
        assert again == shard

    second = plan(ids, shard_size=history["size"], issued_at=tick + PERIOD, window=PERIOD)
    after = _tick(racing, instances, second, history["reshuffle"], history["second"])
    assert sorted(s.index for _, s in after.values() if s is not None) == list(range(len(second)))

    def held(taken: dict[str, tuple[int, Shard | None]]) -> list[set[int]]:
        per_instance: list[set[int]] = [set() for _ in instances]
        for instance, shard in taken.values():
            assert shard is not None
            per_instance[instance].add(shard.index)
        return per_instance

    assert held(after) == held(before)


def test_a_stale_message_takes_nothing_a_later_tick_claimed():
    rows = MemoryStore().side_rows()
    now, late = (plan(IDS[:6], shard_size=3, issued_at=at, window=PERIOD) for at in (TICK + PERIOD, TICK))
    claims = ShardClaims(rows)
    assert [claims.take(s, f"now-{s.index}") for s in now] == now
    assert claims.take(late[0], "late-0") is None
    assert {r["tick"] for r in rows.query(PARTITION, "")} == {"2026-12-01T14:01:00Z"}


def test_more_messages_than_shards_leave_the_extra_one_idle():
    shards = plan(IDS[:6], shard_size=3, issued_at=TICK, window=PERIOD)
    claims = ShardClaims(MemoryStore().side_rows())
    assert {claims.take(shards[0], h).index for h in ("a", "b")} == {0, 1}  # type: ignore[union-attr]
    assert claims.take(shards[0], "c") is None  # a duplicate delivery: nothing left to watch


def test_unreadable_claims_fall_back_to_the_messages_own_shard():
    store = MemoryStore()
    shards = plan(IDS[:6], shard_size=3, issued_at=TICK, window=PERIOD)
    store.fail_next("side_query")  # a 503 from Table storage
    assert ShardClaims(store.side_rows()).take(shards[1], "m") == shards[1]


def test_a_message_without_a_plan_is_its_own_shard_and_claims_nothing():
    store = MemoryStore()
    shard = plan(IDS[:6], shard_size=3, issued_at=TICK, window=PERIOD)[1]
    bare = Shard(shard.index, shard.count, shard.targets, shard.issued_at, shard.not_after)
    assert ShardClaims(store.side_rows()).take(bare, "m") == bare
    assert store.side_rows().query(PARTITION, "") == []


def claims_cost_three_requests_a_message(store: Any) -> None:
    """The README's cost: a message's claim is a query of the `~shards` rows, a read of the chosen
    one and its write, whether the row exists yet or not. `store`: the memory store here, Table
    storage on Azurite in tests/integration/test_probe_table_cost.py."""
    for tick in (TICK, TICK + PERIOD):  # the rows are inserted, then replaced
        shards = plan(IDS[:9], shard_size=3, issued_at=tick, window=PERIOD)
        claims, before = ShardClaims(store.side_rows()), store.round_trips
        assert [claims.take(s, f"{tick:%M}-{s.index}") for s in shards] == shards
        assert store.round_trips - before == 3 * len(shards)


def test_a_claim_costs_three_table_requests_a_message():
    claims_cost_three_requests_a_message(MemoryStore())


@pytest.mark.parametrize("part", ["shard_claims", "prober"])
def test_messages_starting_together_on_a_new_instance_share_one_memory(part, monkeypatch):
    """The first messages of a new instance run on several threads at once; a memory of claimed
    shards (or a prober: its listing, maintenance reads and addresses) built by each would forget
    what the others learnt."""
    import threading
    import time

    from failover import wiring
    from failover.config import Settings
    from failover.service import Responder

    def slowly(build: Callable[..., Any]) -> Callable[..., Any]:
        def built(*args: Any) -> Any:
            time.sleep(0.05)  # room for every thread to find nothing built yet
            return build(*args)

        return built

    class SlowStore(MemoryStore):
        side_rows = slowly(MemoryStore.side_rows)

    monkeypatch.setattr(wiring, "build_prober", slowly(wiring.build_prober))
    store = SlowStore()
    settings = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    runtime = wiring.Runtime(settings, store, Responder(store=store, clock=lambda: TICK))  # type: ignore[arg-type]
    start, built = threading.Barrier(6), []

    def first_message() -> None:
        start.wait()
        built.append(getattr(runtime, part))

    threads = [threading.Thread(target=first_message) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 6 and all(one is built[0] for one in built)


def test_claims_that_keep_moving_raise_for_the_hosts_retry():
    """Each write lost to another writer: after one more try than the tick has shards the message
    fails, and the host takes it again (within what is left of its window)."""
    from failover.errors import ConcurrencyConflictError

    store = MemoryStore()
    shards = plan(IDS[:6], shard_size=3, issued_at=TICK, window=PERIOD)
    store.fail_next("side_create", times=len(shards) + 1, error=ConcurrencyConflictError("lost"))
    trips = store.round_trips
    with pytest.raises(ConcurrencyConflictError):
        ShardClaims(store.side_rows()).take(shards[0], "m")
    assert store.round_trips - trips == 3 * (len(shards) + 1)
    assert store.side_rows().query(PARTITION, "") == []
