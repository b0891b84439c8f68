"""An independent client that writes through the server's endpoint and measures the outage it sees.

Layer: local tooling (the drill, the benchmarks, tests). Never deployed. It is the yardstick the
app's own measurement is compared with, so it shares no code with the app's probe.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg


@dataclass
class WritingClient:
    """Writes every `interval` seconds through the pair's single endpoint, as an application would."""

    conninfo: str
    interval: float = 0.05
    successes: list[float] = field(default_factory=list)  # time.time() of every good write
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> WritingClient:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS drill_writes (id bigserial PRIMARY KEY, at timestamptz)")
        self._thread = threading.Thread(target=self._run, name="writing-client", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        deadline = time.monotonic() + 600  # bounded whatever happens
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=1)
                conn.execute("SET statement_timeout = 1000")
                conn.execute("INSERT INTO drill_writes (at) VALUES (clock_timestamp())")
                self.successes.append(time.time())
            except psycopg.Error:
                if conn is not None:
                    conn.close()  # connect again next time
            time.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def gap_within(self, start: float = -math.inf, end: float = math.inf) -> tuple[float, float, float]:
        """(seconds, last good write, first good write): the longest gap between two good writes
        spanning a moment in [start, end] (by default: the longest outage the client saw)."""
        best = (0.0, start, start)
        for before, after in itertools.pairwise(list(self.successes)):
            if after >= start and before <= end and after - before > best[0]:
                best = (after - before, before, after)
        return best
