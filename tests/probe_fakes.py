"""Fakes of the management API port that several probe tests share (functional and integration).

Layer: test support. They answer at once, from memory, and count their calls (thread-safe: the
probe calls them from its pools); they never touch a network.
"""

from __future__ import annotations

import threading

from failover.ports import MaintenanceEvent, ServerView


def _server(resource_id: str) -> str:
    return resource_id.rsplit("/", 1)[1]


class CountingInspector:
    """Every server healthy in zone 1 (standby in zone 2); counts the checks of each server."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {}

    def get_server(self, resource_id: str) -> ServerView:
        server = _server(resource_id)
        with self.lock:
            self.calls[server] = self.calls.get(server, 0) + 1
        return ServerView(
            resource_id, server, "eastus", "Ready", "ZoneRedundant", "Healthy", "1", "2", None, "Primary"
        )

    def list_replicas(self, resource_id: str) -> tuple[()]:
        return ()

    def start_failover(self, resource_id: str, mode: str, *, wait: bool = True) -> None:
        raise AssertionError("no failover here")

    def discover(self, scopes: tuple[str, ...]) -> tuple[str, ...]:
        return ()

    def maintenance_events(self, resource_id: str, upcoming: bool = True) -> tuple[MaintenanceEvent, ...]:
        return ()


class FailingOverInspector:
    """Healthy in zone 1 on the first call, failing over, then healthy in zone 2 from call `moved_at`.

    `maintenance` is what `maintenance_events` lists as upcoming (nothing as past).
    """

    def __init__(self, *, moved_at: int = 3, maintenance: tuple[MaintenanceEvent, ...] = ()) -> None:
        self.calls = 0
        self.lock = threading.Lock()
        self.moved_at = moved_at
        self.maintenance = maintenance

    def get_server(self, resource_id: str) -> ServerView:
        with self.lock:
            self.calls += 1
            step = self.calls
        ha, primary, standby = ("Healthy", "1", "2") if step == 1 else ("FailingOver", "1", "2")
        if step >= self.moved_at:
            ha, primary, standby = "Healthy", "2", "1"
        return ServerView(
            resource_id,
            _server(resource_id),
            "eastus",
            "Ready",
            "ZoneRedundant",
            ha,
            primary,
            standby,
            None,
            "Primary",
        )

    def maintenance_events(self, resource_id: str, upcoming: bool = True) -> tuple[MaintenanceEvent, ...]:
        return self.maintenance if upcoming else ()
