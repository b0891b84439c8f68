"""The session watcher's selector follows the idle sessions by changes only, and still sees a server speak.

Before, the watcher built a new selector and registered every idle socket at every wakeup (each
check's own reply wakes it): 43 `epoll.register` calls per sample with 126 servers watched, the
largest CPU cost of a consumer (issue 15). Real socket pairs stand in for the kept sessions.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failover.adapters.session_watch import SessionWatch, Watched, _in_step, idle_sessions


@contextmanager
def _socket_pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """Eight connected socket pairs: ours (the kept session's end) and the server's."""
    made = [socket.socketpair() for _ in range(8)]
    try:
        yield made
    finally:
        for a, b in made:
            a.close()
            b.close()


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    with _socket_pairs() as made:
        yield made


def _keys(selector: selectors.BaseSelector) -> dict[int, selectors.SelectorKey]:
    return {key.fd: key for key in selector.get_map().values()}


@settings(max_examples=40, deadline=None)
@given(rounds=st.lists(st.lists(st.integers(0, 7), max_size=8), min_size=1, max_size=6))
def test_only_the_sessions_that_changed_are_registered_again(rounds: list[list[int]]) -> None:
    with _socket_pairs() as pairs:
        entries = [Watched() for _ in pairs]
        for entry, (ours, _) in zip(entries, pairs, strict=True):
            entry.idle(ours.fileno())
        with selectors.DefaultSelector() as selector:
            for busy in rounds:  # the sessions checked between two wakeups
                before = _keys(selector)
                for i in set(busy):
                    entries[i].busy()
                    entries[i].idle(pairs[i][0].fileno())
                assert _in_step(selector, idle_sessions(entries))
                after = _keys(selector)
                assert set(after) == {ours.fileno() for ours, _ in pairs}
                for i, (ours, _) in enumerate(pairs):
                    fd = ours.fileno()
                    entry, generation = after[fd].data
                    assert entry is entries[i] and generation == entries[i].generation
                    if i not in busy and fd in before:
                        assert after[fd] is before[fd]  # not registered again


def test_a_closed_session_is_forgotten(pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    entries = [Watched() for _ in pairs]
    for entry, (ours, _) in zip(entries, pairs, strict=True):
        entry.idle(ours.fileno())
    with selectors.DefaultSelector() as selector:
        assert _in_step(selector, idle_sessions(entries))
        gone = pairs[0][0].fileno()
        entries[0].idle(None)
        pairs[0][0].close()
        assert _in_step(selector, idle_sessions(entries))
        assert gone not in _keys(selector)


def test_the_server_speaking_on_an_idle_session_is_noted_once(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    watch = SessionWatch(clock=_now, interval=0.01)
    entries = [watch.add() for _ in pairs]
    try:
        for entry, (ours, _) in zip(entries, pairs, strict=True):
            entry.idle(ours.fileno())
        time.sleep(0.05)
        pairs[3][1].sendall(b"E")  # the server's FATAL message on session 3
        deadline = time.monotonic() + 5
        while entries[3].spoke_at is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert entries[3].spoke_at is not None
        assert [e.spoke_at is not None for e in entries] == [i == 3 for i in range(len(entries))]
        assert entries[3].busy() is not None
    finally:
        watch.close()


def _now() -> datetime:
    return datetime.now(timezone.utc)
