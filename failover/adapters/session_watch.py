"""When the server spoke on, or closed, an idle kept database session: one watcher thread.

Layer: adapter support (edge). The database probe keeps one session per server between checks.
A server that shuts down for a failover terminates its sessions at once (PostgreSQL sends a
FATAL message, 57P01 or 57P02, and closes): the session's socket becomes readable at the moment
the old primary stopped serving, up to a sampling interval before the next check finds out. One
daemon thread waits on the sockets of idle sessions (`selectors`) and notes that moment; the check
that next finds its session broken reports it (`DbCheck.session_lost_at`).

What it must not do: read from or write to a socket (the driver owns them), watch a session while
a check uses it (its own traffic is not the server speaking), or spin (a socket seen readable is
no longer watched until its next check).
"""

from __future__ import annotations

import logging
import selectors
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

log = logging.getLogger(__name__)


@dataclass
class Watched:
    """One kept session's idle state, shared by its checks and the watcher (under `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    fd: int | None = None  # the idle session's socket; None while a check runs, or without a session
    generation: int = 0  # bumped at every change: a late sighting of an earlier idle spell is ignored
    spoke_at: datetime | None = None

    def busy(self) -> datetime | None:
        """A check starts using the session: stop watching; when the server spoke while it was idle."""
        with self.lock:
            self.generation += 1
            self.fd = None
            return self.spoke_at

    def idle(self, fd: int | None) -> None:
        """The check is over: watch `fd` (None: no session kept) from now on."""
        with self.lock:
            self.generation += 1
            self.fd = fd
            self.spoke_at = None

    def _spoke(self, at: datetime, generation: int) -> None:
        with self.lock:
            if self.generation == generation and self.fd is not None and self.spoke_at is None:
                self.spoke_at = at


@dataclass
class SessionWatch:
    """The watcher thread of one probe; started by the first session it is given, bounded waits."""

    clock: Callable[[], datetime]
    interval: float = 0.1  # how soon a newly idle session is watched
    _entries: list[Watched] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def add(self) -> Watched:
        entry = Watched()
        with self._lock:
            self._entries.append(entry)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="probe-sessions", daemon=True)
                self._thread.start()
        return entry

    def remove(self, entry: Watched) -> None:
        with self._lock:  # by identity: two idle entries compare equal as dataclasses
            self._entries = [e for e in self._entries if e is not entry]

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _idle(self) -> list[tuple[Watched, int, int]]:
        with self._lock:
            entries = list(self._entries)
        return idle_sessions(entries)

    def _run(self) -> None:
        # One selector for the thread's life, brought in step with the idle sessions at each round:
        # rebuilding it registered every idle socket again at every wakeup (each check's own reply
        # wakes the thread once), the largest CPU cost of a probe watching a hundred servers.
        with selectors.DefaultSelector() as selector:
            while not self._stop.is_set():
                if not _in_step(selector, self._idle()):
                    self._stop.wait(self.interval)
                    continue
                ready = selector.select(self.interval)
                at = self.clock()
                for key, _ in ready:
                    entry, generation = key.data
                    entry._spoke(at, generation)


def idle_sessions(entries: list[Watched]) -> list[tuple[Watched, int, int]]:
    """(entry, socket, generation) of each session idle and not yet heard from."""
    idle = []
    for entry in entries:
        with entry.lock:
            if entry.fd is not None and entry.spoke_at is None:
                idle.append((entry, entry.fd, entry.generation))
    return idle


def _in_step(selector: selectors.BaseSelector, idle: list[tuple[Watched, int, int]]) -> bool:
    """Watch exactly the `idle` sockets, changing only what changed; True when any is watched."""
    wanted = {fd: (entry, generation) for entry, fd, generation in idle}
    for key in list(selector.get_map().values()):
        entry, generation = key.data
        kept = wanted.get(key.fd)
        if kept is None or kept[0] is not entry or kept[1] != generation:
            selector.unregister(key.fd)  # a socket closed meanwhile is forgotten too (errors ignored)
    for fd, data in wanted.items():
        if fd in selector.get_map():
            continue
        try:
            selector.register(fd, selectors.EVENT_READ, data)
        except (ValueError, KeyError, OSError):  # closed meanwhile, or a reused number
            log.debug("session watch: socket %d not watched this round", fd)
    return bool(selector.get_map())
