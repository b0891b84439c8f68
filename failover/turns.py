"""Writers of one server take turns inside one process.

Layer: core (no I/O). Concurrent deliveries about one server (an alert storm, the probes) would
otherwise race on the server's `state` row ETag: the loser pays a read and a refused transaction
and tries again (measured: 33 such losses in a 2,100-signal storm, docs/benchmarks.md). Holding a
per-server lock from the read to the commit makes the writers of one Functions worker process
queue instead; writers in other processes or instances still meet at the ETag (invariant 3).

The locks are striped (a fixed set, picked by a hash of the server name) so that memory does not
grow with the fleet; two servers sharing a stripe only wait for each other, and the locks are
re-entrant so one thread never blocks on a stripe it already holds.
"""

from __future__ import annotations

import threading
import zlib

_STRIPES = 64


class ServerTurns:
    def __init__(self, stripes: int = _STRIPES) -> None:
        self._locks = tuple(threading.RLock() for _ in range(stripes))

    def of(self, server: str) -> threading.RLock:
        """The lock a writer of `server` holds from its read to its commit."""
        return self._locks[zlib.crc32(server.encode()) % len(self._locks)]
