"""When the server spoke on, or closed, an idle kept database session: one watcher thread.

Layer: adapter support (edge). The database probe keeps one session per server between checks.
A server that shuts down for a failover terminates its sessions at once (PostgreSQL sends a
FATAL message, 57P01 or 57P02, and closes): the session's socket becomes readable at the moment
the old primary stopped serving, up to a sampling interval before the next check finds out. One
daemon thread waits on the sockets of idle sessions (`selectors`) and notes that moment; the check
that next finds its session broken reports it (`DbCheck.session_lost_at`).

A check notes when its session leaves and re-enters the idle state (`Watched.busy`, `Watched.idle`)
on a queue; the watcher alone changes its selector, applying what the queue holds once a round, at
most `pace` apart. Before, the watcher brought its selector in step with every idle session at each
wakeup and each check's own reply woke it: O(kept sessions) work a few hundred times a second, a
quarter of a 125-server consumer's CPU (issue 15). Changing the selector from the checks' threads
under a lock was no better: the lock was held across the `epoll_ctl` system call, which lets
another thread take the GIL, and at a run's start dozens of checks queued on it (py-spy: 14 of a
consumer's threads waiting there). A session that speaks is noted at most two rounds late (70 ms),
well inside the 0.3 s the downtime figure allows.

What it must not do: read from or write to a socket (the driver owns them), watch a session while
a check uses it (its own traffic is not the server speaking), or spin (a socket seen readable is
no longer watched until its next check).
"""

from __future__ import annotations

import logging
import selectors
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Watched:
    """One kept session's idle state, shared by its checks and the watcher (under `lock`)."""

    watch: SessionWatch  # whose watcher follows this session's idle spells
    lock: threading.Lock = field(default_factory=threading.Lock)
    fd: int | None = None  # the idle session's socket; None while a check runs, or without a session
    generation: int = 0  # bumped at every change: a late sighting of an earlier idle spell is ignored
    spoke_at: datetime | None = None

    def busy(self) -> datetime | None:
        """A check starts using the session: stop watching; when the server spoke while it was idle."""
        with self.lock:
            self.generation += 1
            if self.fd is not None:
                self.watch.changes.append((self, self.fd, None))
            self.fd = None
            return self.spoke_at

    def idle(self, fd: int | None) -> None:
        """The check is over: watch `fd` (None: no session kept) from now on."""
        with self.lock:
            self.generation += 1
            self.fd = fd
            self.spoke_at = None
            if fd is not None:
                self.watch.changes.append((self, fd, self.generation))

    def spoke(self, at: datetime, generation: int) -> None:
        """The watcher saw the socket readable during idle spell `generation`."""
        with self.lock:
            if self.generation == generation and self.fd is not None and self.spoke_at is None:
                self.spoke_at = at


# (session, socket, idle spell to watch it for; None: stop watching it)
Change = tuple[Watched, int, int | None]
Ready = tuple[selectors.SelectorKey, int]


@dataclass
class SessionWatch:
    """The watcher thread of one probe; started by the first session it is given, bounded waits."""

    clock: Callable[[], datetime]
    interval: float = 0.05  # longest round: how late a newly idle session is watched
    pace: float = 0.02  # shortest round: a check's reply on a session not yet forgotten wakes it
    changes: deque[Change] = field(default_factory=deque)  # appended by checks, applied by the watcher
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def add(self) -> Watched:
        """A new kept session's state; the first one starts the thread."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="probe-sessions", daemon=True)
                self._thread.start()
        return Watched(self)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            while not self._stop.is_set():
                began = time.monotonic()
                _apply(selector, self.changes)
                ready = selector.select(self.interval)
                if ready:
                    self._heard(selector, ready, self.clock())
                    self._stop.wait(self.pace - (time.monotonic() - began))

    def _heard(self, selector: selectors.BaseSelector, ready: list[Ready], at: datetime) -> None:
        """Note each readable socket for its idle spell and stop watching it (no spinning). A sighting
        from a spell that ended is ignored by `Watched.spoke`; its queued change watches it again."""
        for key, _ in ready:
            selector.unregister(key.fd)
            entry, generation = key.data
            entry.spoke(at, generation)


def _apply(selector: selectors.BaseSelector, changes: deque[Change]) -> None:
    """Apply the queued changes in order: watch a socket for a new idle spell, or forget it."""
    watched = selector.get_map()
    while changes:
        entry, fd, generation = changes.popleft()
        key = watched.get(fd)
        if key is not None and (generation is not None or key.data[0] is entry):
            selector.unregister(fd)  # the spell ended, or a number reused after an unnoticed close
        if generation is None:
            continue
        try:
            selector.register(fd, selectors.EVENT_READ, (entry, generation))
        except (ValueError, OSError):  # closed meanwhile: its next check finds out
            log.debug("session watch: socket %d not watched", fd)
