"""Recognise Azure Database for PostgreSQL flexible servers in ARM resource ids.

Layer: pure core (`failover.sources`). String work only: no I/O, no clock, no logging, and no
exception for any input (a value that is not a flexible server id gives None).

Accepted: `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DBforPostgreSQL/
flexibleServers/{name}`, in any letter case, with surrounding spaces or a trailing slash, and
with a child path after the name (`/databases/x`, `/providers/Microsoft.ResourceHealth/
availabilityStatuses/current`, ...). A child path maps to its server, because a signal about a
server's child is a signal about that server; callers that care about the operation (Event Grid,
Activity Log) check the operation name, not the id. Server names follow Azure's rule (letters,
digits and hyphens, at most 63), which also keeps them safe as Table storage keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_RESOURCE_ID = 2048

_FLEXIBLE_SERVER = re.compile(
    r"/subscriptions/(?P<sub>[^/\s?#\\]+)/resourcegroups/(?P<rg>[^/\s?#\\]+)"
    r"/providers/microsoft\.dbforpostgresql/flexibleservers/(?P<name>[a-z0-9][a-z0-9-]{0,62})"
    r"(?:/[^?#\s]*)?",
    re.IGNORECASE,
)
_PROVIDER_TYPE = re.compile(r"/providers/([^/\s]+)/([^/\s]+)", re.IGNORECASE)
_SCOPE = re.compile(r"/subscriptions/[^/\s]+(?P<rg>/resourcegroups/[^/\s]+)?/?", re.IGNORECASE)


def flexible_server_from_resource_id(resource_id: object) -> tuple[str, str] | None:
    """(lower-cased canonical server id, lower-cased server name), or None if not a flexible server."""
    if not isinstance(resource_id, str) or len(resource_id) > MAX_RESOURCE_ID:
        return None
    match = _FLEXIBLE_SERVER.fullmatch(resource_id.strip())
    if match is None:
        return None
    sub, group, name = (match.group(part).lower() for part in ("sub", "rg", "name"))
    canonical = (
        f"/subscriptions/{sub}/resourcegroups/{group}"
        f"/providers/microsoft.dbforpostgresql/flexibleservers/{name}"
    )
    return canonical, name


def first_flexible_server(candidates: Iterable[object]) -> tuple[str, str] | None:
    """The first candidate id that names a flexible server."""
    for candidate in candidates:
        found = flexible_server_from_resource_id(candidate)
        if found is not None:
            return found
    return None


def describe_resource(resource_id: object) -> str:
    """A short, safe description of what an id points at, for ignored reasons."""
    if not isinstance(resource_id, str) or not resource_id.strip():
        return "no resource"
    raw = resource_id.strip()[:MAX_RESOURCE_ID]
    provider = _PROVIDER_TYPE.search(raw)
    if provider is not None:
        kind = f"{provider.group(1)}/{provider.group(2)}".lower()
        return kind if len(kind) <= 80 and kind.isprintable() else "another resource type"
    scope = _SCOPE.fullmatch(raw)
    if scope is not None:
        return "a resource group" if scope.group("rg") else "a subscription"
    return "an unrecognised resource id"


def describe_first(candidates: Iterable[object]) -> str:
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return describe_resource(candidate)
    return "no resource"
