"""A run reads a server's state row once for its two first readers (issue 15).

The database memory (first sample) and the first management API check read the same row a few
seconds apart at most; each Table read costs an instance about 2 ms of CPU, and at a tick's start
every server is read at once. Model-based: whatever the order of reads and of writes to the row,
only a kind's first read may be served the other kind's first read; every other read is fresh.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.probing import _FirstRead


class Row:
    """The stored row: its version changes with every write; reads are counted."""

    def __init__(self) -> None:
        self.version = 0
        self.reads = 0

    def read(self, server: str) -> tuple[None, str | None]:
        self.reads += 1
        return None, f"{server}@{self.version}"


@given(st.lists(st.sampled_from(["db", "arm", "write"]), max_size=14))
def test_only_a_kinds_first_read_may_be_the_other_kinds_first(ops: list[str]) -> None:
    row = Row()
    shared = _FirstRead(row.read)
    readers = {kind: shared.reader(kind) for kind in ("db", "arm")}
    kinds: set[str] = set()
    kept: str | None = None
    first_etag: str | None = None
    fresh = 0
    for op in ops:
        if op == "write":
            row.version += 1
            continue
        _, etag = readers[op]("pg-a")
        if op not in kinds and kept is not None:
            assert etag == kept  # the other kind's first read, not read again
            kept = None
        else:
            assert etag == f"pg-a@{row.version}"
            fresh += 1
            first_etag = first_etag or etag
            if not kinds:
                kept = etag
        kinds.add(op)
    assert row.reads == fresh
    # What the run's end writes on: its first good read, whatever came after it.
    assert shared.first() == ((None, first_etag) if first_etag else None)


def test_a_failed_first_read_is_not_kept() -> None:
    calls = []

    def failing_once(server: str) -> tuple[None, str | None]:
        calls.append(server)
        if len(calls) == 1:
            raise OSError("table unavailable")
        return None, "etag-2"

    shared = _FirstRead(failing_once)
    db, arm = shared.reader("db"), shared.reader("arm")
    with pytest.raises(OSError):
        db("pg-a")
    assert shared.first() is None
    assert arm("pg-a") == (None, "etag-2") and len(calls) == 2
    assert shared.first() == (None, "etag-2")
