"""One thread that cancels what outlived its bound, for every statement of a probe.

Layer: adapter helper (edge; no driver import: the caller says how to cancel). The database probe
bounds each statement beyond the server-side `statement_timeout` (a commit waiting for a
synchronous standby that is gone is not ended by it). It used to start a `threading.Timer`, a
thread, per statement: two threads started and joined per check, at a thousand checks a second
the bulk of the probe's own CPU (bench/fleet.py). Here one thread keeps a heap of deadlines.

What it must not do: call `expire` for a watch that is already `done` (a late cancel would hit the
connection's next statement: `done` waits while that watch is being expired), or keep a thread
once closed. The standard library has no shared timer wheel; `sched` runs in the caller's thread.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any


class Deadlines:
    def __init__(
        self, expire: Callable[[Any], None], *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._expire = expire
        self._monotonic = monotonic
        self._ready = threading.Condition()
        self._heap: list[tuple[float, int, Any]] = []
        self._live: set[int] = set()
        self._ids = itertools.count()
        self._expiring: int | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, item: Any, seconds: float) -> int:
        """Expire `item` in `seconds` unless `done` is called first; returns the watch's token."""
        with self._ready:
            token = next(self._ids)
            heapq.heappush(self._heap, (self._monotonic() + seconds, token, item))
            self._live.add(token)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="statement-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][1] == token:
                self._ready.notify()
            return token

    def done(self, token: int) -> None:
        """The watched work ended: never expire it (waits if it is being expired right now)."""
        with self._ready:
            self._live.discard(token)
            while self._expiring == token:
                self._ready.wait()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._live.clear()
            self._ready.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._ready:
                due = self._next_due()
                if due is None:
                    return
                token, item = due
                self._expiring = token
            try:
                self._expire(item)
            finally:
                with self._ready:
                    self._expiring = None
                    self._ready.notify_all()

    def _next_due(self) -> tuple[int, Any] | None:
        """Wait (holding the condition) for the earliest live deadline to pass; None once closed."""
        while not self._closed:
            while self._heap and self._heap[0][1] not in self._live:
                heapq.heappop(self._heap)  # done before its deadline
            if not self._heap:
                self._ready.wait()
                continue
            deadline, token, item = self._heap[0]
            wait = deadline - self._monotonic()
            if wait > 0:
                self._ready.wait(wait)
                continue
            heapq.heappop(self._heap)
            self._live.discard(token)
            return token, item
        return None
