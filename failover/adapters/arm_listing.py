"""The probe's reads of the management API: one subscription listing for the whole fleet.

Layer: adapter (edge), over ``ManagementApiInspector``. It must not change what a view says, only how
it is read, and it must not hide an error: a failed listing fails the checks that needed it, as a
failed GET did.

Why: Azure Resource Manager throttles reads per subscription and principal with a token bucket of
250 requests refilled at 25 a second
(https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling).
A check of one server is a GET of the server and a list of its replicas, so at the default
`PROBE_ARM_INTERVAL_SECONDS` (5 s) checking every server on its own throttles past about 60
servers, and every 429 delays the next look. Here every check of a subscription's servers is served
from one listing of the subscription's flexible servers (replicas included), taken again once it is
older than `max_age`: a listing is a few paged reads whatever the fleet's size. A view a check
reads is thus at most `max_age` older than the check (the probe passes half its interval); the
database probe, not this view, times an outage.

A server missing from the listing (created since, or not visible at the subscription scope) is read
on its own; a subscription whose listing is refused for good (403: the identity may read only some
resource groups) is read server by server until `refused_for` has passed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from failover.adapters.arm import ManagementApiInspector, parse_server_id
from failover.errors import InspectorError, InspectorUnavailableError
from failover.ports import MaintenanceEvent, ReplicaView, ServerView

logger = logging.getLogger(__name__)


@dataclass
class _Listing:
    lock: threading.Lock = field(default_factory=threading.Lock)
    taken: float = float("-inf")  # monotonic time the listing was asked for
    views: dict[str, ServerView] = field(default_factory=dict)
    refused_until: float = float("-inf")


class ListedInspector:
    """``ServerInspector`` whose ``get_server`` is served from a subscription listing at most
    ``max_age`` seconds old; every other call goes to the inspector as it is."""

    def __init__(
        self,
        inspector: ManagementApiInspector,
        *,
        max_age: float,
        refused_for: float = 900.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inspector = inspector
        self._max_age = max_age
        self._refused_for = refused_for
        self._monotonic = monotonic
        self._listings: dict[str, _Listing] = {}
        self._lock = threading.Lock()

    def get_server(self, resource_id: str) -> ServerView:
        ref = parse_server_id(resource_id)
        views = self._views(ref.subscription_id)
        view = views.get(ref.resource_id) if views is not None else None
        return view if view is not None else self._inspector.get_server(resource_id)

    def _views(self, subscription_id: str) -> dict[str, ServerView] | None:
        """The subscription's listing, taken again when too old; one caller lists, the others wait.

        Fresh enough is judged from when the caller asked, not from when it got the lock: a listing
        asked for while the caller waited is as new as any it could take itself. Judged from the
        lock, a listing slower than `max_age` (a loaded ARM, many pages) would be stale for every
        waiter, and each would list again in turn, one check per listing.
        """
        asked = self._monotonic()
        with self._lock:
            listing = self._listings.setdefault(subscription_id.lower(), _Listing())
        with listing.lock:
            now = self._monotonic()
            if now < listing.refused_until:
                return None
            if asked - listing.taken < self._max_age:
                return listing.views
            try:
                listing.views = self._inspector.list_servers(subscription_id)
            except InspectorUnavailableError:
                raise  # throttled or down: this check fails as a GET would have
            except InspectorError as error:
                listing.refused_until = now + self._refused_for
                logger.warning("arm: listing refused, reading servers one by one: %s", error)
                return None
            listing.taken = now
            return listing.views

    def list_replicas(self, resource_id: str) -> tuple[ReplicaView, ...]:
        return self._inspector.list_replicas(resource_id)

    def start_failover(self, resource_id: str, mode: str, *, wait: bool = True) -> None:
        self._inspector.start_failover(resource_id, mode, wait=wait)

    def discover(self, scopes: tuple[str, ...]) -> tuple[str, ...]:
        return self._inspector.discover(scopes)

    def maintenance_events(self, resource_id: str, upcoming: bool = True) -> tuple[MaintenanceEvent, ...]:
        return self._inspector.maintenance_events(resource_id, upcoming)
