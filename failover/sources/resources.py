"""Recognise Azure Database for PostgreSQL flexible servers in ARM resource ids.

Layer: pure core (`failover.sources`). String work only: no I/O, no clock, no logging. A value
that is not a flexible server id gives None; the one exception is `first_flexible_server`, which
raises `InvalidPayloadError` for an id that names a flexible server with a name Azure could never
have given (so parsers refuse it with 400 instead of passing it on to storage).

Accepted: `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DBforPostgreSQL/
flexibleServers/{name}`, in any letter case, with surrounding spaces or a trailing slash, and
with a child path after the name (`/databases/x`, `/providers/Microsoft.ResourceHealth/
availabilityStatuses/current`, ...). A child path maps to its server, because a signal about a
server's child is a signal about that server; callers that care about the operation (Event Grid,
Activity Log) check the operation name, not the id.

Server names follow Azure's rule, and this module is the one place that states it (`SERVER_NAME`):
3 to 63 characters, lower-case letters, digits and hyphens, not starting or ending with a hyphen.
It also keeps them safe as Table storage keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeGuard

from failover.errors import InvalidPayloadError

MAX_RESOURCE_ID = 2048
SERVER_NAME = r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]"  # Azure's rule for flexible server names
SERVER_NAME_RULE = "3-63 lower-case letters, digits and '-', not starting or ending with '-'"

_SERVER_NAME = re.compile(SERVER_NAME)
_ID_PREFIX = (
    r"/subscriptions/(?P<sub>[^/\s?#\\]+)/resourcegroups/(?P<rg>[^/\s?#\\]+)"
    r"/providers/microsoft\.dbforpostgresql/flexibleservers/"
)
_FLEXIBLE_SERVER = re.compile(rf"{_ID_PREFIX}(?P<name>{SERVER_NAME})(?:/[^?#\s]*)?", re.IGNORECASE)
_ANY_FLEXIBLE_SERVER = re.compile(rf"{_ID_PREFIX}[^/?#\s]+(?:/[^?#\s]*)?", re.IGNORECASE)


def is_server_name(value: object) -> TypeGuard[str]:
    """True for a flexible server name as Azure allows it (already lower-case)."""
    return isinstance(value, str) and _SERVER_NAME.fullmatch(value) is not None


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
    """The first candidate id naming a flexible server; InvalidPayloadError if that name is impossible."""
    for candidate in candidates:
        found = flexible_server_from_resource_id(candidate)
        if found is not None:
            return found
        if (
            isinstance(candidate, str)
            and len(candidate) <= MAX_RESOURCE_ID
            and _ANY_FLEXIBLE_SERVER.fullmatch(candidate.strip())
        ):
            raise InvalidPayloadError(
                f"the resource id names a flexible server whose name is not {SERVER_NAME_RULE}"
            )
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
