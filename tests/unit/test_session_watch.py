"""The session watcher wakes only when a server speaks on an idle session, and notes it once.

Before, the watcher brought its selector in step with every idle session at each wakeup, and each
check's own reply woke it (the socket stayed registered until the next wakeup): a few hundred
rounds a second of O(kept sessions) work, a quarter of a fleet consumer's CPU (issue 15). Real
socket pairs stand in for the kept sessions: ours is the driver's end, the other the server's.
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

from failover.adapters.session_watch import SessionWatch, Watched

Pair = tuple[socket.socket, socket.socket]
SETTLE = 0.15  # two of the watcher's longest rounds and then some: time to wake on anything readable


@contextmanager
def _socket_pairs(count: int) -> Iterator[list[Pair]]:
    made = [socket.socketpair() for _ in range(count)]
    for ours, server in made:
        ours.setblocking(False)
        server.setblocking(False)
    try:
        yield made
    finally:
        for a, b in made:
            a.close()
            b.close()


@contextmanager
def _watch() -> Iterator[SessionWatch]:
    watch = SessionWatch(clock=_now)
    try:
        yield watch
    finally:
        watch.close()


def _drain(ours: socket.socket) -> None:
    """What the driver does with a reply: read it all."""
    try:
        while ours.recv(4096):
            pass
    except BlockingIOError:
        return


def _check(entry: Watched, pair: Pair) -> None:
    """One probe check on a kept session: busy, a query and its reply, idle again."""
    ours, server = pair
    entry.busy()
    ours.sendall(b"Q")
    _drain(server)
    server.sendall(b"reply")
    time.sleep(0.002)  # the reply sits readable a moment, as it does while the driver parses it
    _drain(ours)
    entry.idle(ours.fileno())


def _wait_for(condition: object, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.002)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def test_checks_own_traffic_wakes_the_watcher_at_most_once_a_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many checks a second on kept sessions cost the watcher a bounded number of rounds."""
    wakeups: list[float] = []

    class Counting(selectors.DefaultSelector):
        def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            ready = super().select(timeout)
            if ready:
                wakeups.append(time.monotonic())
            return ready

    monkeypatch.setattr(selectors, "DefaultSelector", Counting)  # the watcher opens its own
    with _socket_pairs(8) as pairs, _watch() as watch:
        entries = [watch.add() for _ in pairs]
        for entry, (ours, _) in zip(entries, pairs, strict=True):
            entry.idle(ours.fileno())
        began = time.monotonic()
        for turn in range(200):
            _check(entries[turn % 8], pairs[turn % 8])
        spent = time.monotonic() - began
        time.sleep(SETTLE)
        assert len(wakeups) <= spent / watch.pace + 2  # before: one per check
        assert all(entry.spoke_at is None for entry in entries)

        sent = _now()
        pairs[5][1].sendall(b"E")  # the server's FATAL message on an idle session
        _wait_for(lambda: entries[5].spoke_at is not None)
        assert [entry.spoke_at is not None for entry in entries] == [i == 5 for i in range(8)]
        assert sent <= entries[5].spoke_at <= _now()  # type: ignore[operator]


OPS = st.lists(
    st.tuples(st.sampled_from(["check", "begin", "end", "speak"]), st.integers(0, 3)),
    max_size=14,
)


@settings(max_examples=30, deadline=None)
@given(history=OPS)
def test_a_server_is_heard_exactly_when_it_spoke_while_its_session_was_idle(
    history: list[tuple[str, int]],
) -> None:
    """Invariant over any history: an entry's `spoke_at` is set iff its server spoke during the
    current idle spell, however the watcher's rounds fall between the checks."""
    with _socket_pairs(4) as pairs, _watch() as watch:
        entries = [watch.add() for _ in pairs]
        for entry, (ours, _) in zip(entries, pairs, strict=True):
            entry.idle(ours.fileno())
        idle, heard = [True] * 4, [False] * 4
        for op, i in history:
            ours, server = pairs[i]
            if op == "check" and idle[i]:
                _check(entries[i], pairs[i])
                heard[i] = False
            elif op == "begin" and idle[i]:
                entries[i].busy()
                idle[i] = False
            elif op == "end" and not idle[i]:
                _drain(ours)
                entries[i].idle(ours.fileno())
                idle[i], heard[i] = True, False
            elif op == "speak":
                server.sendall(b"E")
                heard[i] = heard[i] or idle[i]
                if idle[i]:
                    _wait_for(lambda entry=entries[i]: entry.spoke_at is not None)
                else:
                    _drain(ours)  # the check in progress reads it: its own traffic
                    time.sleep(SETTLE)  # room for a wrong sighting
            assert [e.spoke_at is not None for e in entries] == heard
        time.sleep(SETTLE)
        assert [e.spoke_at is not None for e in entries] == heard


def test_a_socket_number_reused_after_an_unnoticed_close_is_watched_for_its_new_session() -> None:
    with _watch() as watch:
        gone, new = watch.add(), watch.add()
        first = socket.socketpair()
        number = first[0].fileno()
        gone.idle(number)
        time.sleep(SETTLE)  # watched
        first[0].close()  # closed without a check: the selector still holds the number
        first[1].close()
        with _socket_pairs(1) as [(ours, server)]:
            assert ours.fileno() == number  # the lowest free number is taken again
            new.idle(ours.fileno())
            server.sendall(b"E")
            _wait_for(lambda: new.spoke_at is not None)
            assert new.spoke_at is not None and gone.spoke_at is None
