"""The parsers' shared result type and the small, defensive helpers they all use.

Layer: pure core (`failover.sources`). Takes decoded JSON values, returns values. It must not do
I/O, read the clock, log payload contents, or let any exception but `InvalidPayloadError` escape
for bad input: every accessor here tolerates nulls, wrong types, numbers sent as strings and
`{"value": ...}` wrappers, and text copied into signals is cleaned and clipped.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from failover.errors import InvalidPayloadError
from failover.model import Cause, Signal, SignalKind, Source
from failover.sources.resources import describe_first
from failover.timeutil import parse_iso

JsonMap = Mapping[str, object]
T = TypeVar("T")

EMPTY: JsonMap = {}
MAX_TEXT = 200  # characters of Azure-written text (titles, statuses) kept in a signal
MAX_ID = 512  # longest identifier accepted from a payload
MAX_EMBEDDED_JSON = 64 * 1024  # JSON documents inside strings (requestbody, impactedServices)
_MAX_INT_BITS = 64  # larger "numbers" are noise (and Python refuses to print ints over 4300 digits)

# Control characters and lone surrogates (JSON can carry "\ud800"): never copied into a signal.
_UNCLEAN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_ALNUM = re.compile(r"[^0-9a-z]")


@dataclass(frozen=True)
class ParseResult:
    """What a payload means: the signals it carries, or why it is ignored (valid but not ours)."""

    signals: tuple[Signal, ...] = ()
    ignored_reason: str | None = None

    @property
    def ignored(self) -> bool:
        return self.ignored_reason is not None


def ignore(reason: str) -> ParseResult:
    return ParseResult(ignored_reason=clip(reason, 300) or "ignored")


def ignore_foreign(what: str, candidates: Iterable[object]) -> ParseResult:
    """Ignored: the payload is about some other resource than a flexible server."""
    return ignore(f"{what} about {describe_first(candidates)}, not a PostgreSQL flexible server")


def accept(*signals: Signal) -> ParseResult:
    return ParseResult(signals=tuple(signals))


@dataclass(frozen=True)
class Alert:
    """The common alert schema envelope, validated; `context` is the raw `alertContext`."""

    alert_id: str
    rule: str | None
    monitoring_service: str | None
    signal_type: str | None
    monitor_condition: str | None
    target_ids: tuple[str, ...]
    fired_at: datetime | None
    resolved_at: datetime | None
    context: JsonMap
    received_at: datetime

    def signal(
        self,
        server: tuple[str, str],
        *,
        signal_id: str,
        kind: SignalKind,
        cause: tuple[Cause, int],
        observed_at: datetime,
        summary: str,
        details: dict[str, Any],
    ) -> Signal:
        return build_signal(
            Source.MONITOR_ALERT,
            server,
            received_at=self.received_at,
            signal_id=signal_id,
            kind=kind,
            cause=cause,
            observed_at=observed_at,
            summary=summary,
            details={**details, "alert_rule": clip(self.rule)},
        )


def build_signal(
    source: Source,
    server: tuple[str, str],
    *,
    received_at: datetime,
    signal_id: str,
    kind: SignalKind,
    cause: tuple[Cause, int],
    observed_at: datetime,
    summary: str,
    details: dict[str, Any],
) -> Signal:
    resource_id, name = server
    return Signal(
        signal_id=signal_id,
        server=name,
        resource_id=resource_id,
        source=source,
        kind=kind,
        cause=cause[0],
        cause_confidence=cause[1],
        observed_at=observed_at,
        received_at=received_at,
        summary=summary,
        details={key: value for key, value in details.items() if value is not None and value != ""},
    )


# --- field access -------------------------------------------------------------------------------


def field(mapping: JsonMap, *names: str) -> object:
    """The first non-null value among `names`: exact key first, then case-insensitively."""
    for name in names:
        value = mapping.get(name)
        if value is not None:
            return value
    folded = {key.lower(): value for key, value in mapping.items() if isinstance(key, str)}
    for name in names:
        value = folded.get(name.lower())
        if value is not None:
            return value
    return None


def child(mapping: JsonMap, *names: str) -> JsonMap:
    """A nested object, or an empty one when it is missing, null or not an object."""
    value = field(mapping, *names)
    return value if isinstance(value, Mapping) else EMPTY


def require_object(value: object, where: str) -> JsonMap:
    if not isinstance(value, Mapping):
        raise InvalidPayloadError(f"{where} must be a JSON object")
    return value


def text(value: object) -> str | None:
    """A string field as Azure sends it: a string, a number, or an Activity Log `{"value": ...}`."""
    if isinstance(value, Mapping):
        value = value.get("value")
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int):
        return str(value) if value.bit_length() <= _MAX_INT_BITS else None
    if isinstance(value, float) and math.isfinite(value):
        return str(value)
    return None


def fold(value: object) -> str | None:
    """A lookup key: lower-case letters and digits only ("In Progress" -> "inprogress")."""
    raw = text(value)
    if raw is None:
        return None
    return _NOT_ALNUM.sub("", raw.lower()) or None


def lookup(table: Mapping[str, T], value: object) -> T | None:
    key = fold(value)
    return table.get(key) if key else None


def clip(value: object, limit: int = MAX_TEXT) -> str | None:
    """Azure-written text made safe for a summary or details: one line, clean, bounded."""
    raw = text(value)
    if raw is None:
        return None
    cleaned = " ".join(_UNCLEAN.sub(" ", raw).split())
    if not cleaned:
        return None
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def ident(mapping: JsonMap, *names: str, where: str) -> str | None:
    """An identifier: absent or empty is None; present but not a clean string is malformed."""
    value = field(mapping, *names)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidPayloadError(f"{where} must be a string")
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_ID or _UNCLEAN.search(value):
        raise InvalidPayloadError(f"{where} is not a valid identifier")
    return value


def string_list(value: object, where: str) -> tuple[str, ...]:
    """A list of identifiers (null is empty); anything else is malformed."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidPayloadError(f"{where} must be a list of strings")
    items = []
    for item in value:
        if not isinstance(item, str):
            raise InvalidPayloadError(f"{where} must be a list of strings")
        if len(item) > MAX_ID * 4 or _UNCLEAN.search(item):
            raise InvalidPayloadError(f"{where} holds an invalid resource id")
        items.append(item.strip())
    return tuple(items)


PLAUSIBLE_YEARS = (2000, 2100)


def timestamp(value: object, where: str) -> datetime | None:
    """An ISO 8601 time (null or empty is None); present but unparseable is malformed."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        parsed = parse_iso(value)
    except (ValueError, OverflowError) as exc:
        raise InvalidPayloadError(f"{where} is not an ISO 8601 timestamp") from exc
    if not PLAUSIBLE_YEARS[0] <= parsed.year <= PLAUSIBLE_YEARS[1]:
        # An alert about year 1 or 9999 cannot be real; refusing it (400) stops endless retries.
        raise InvalidPayloadError(f"{where} is outside the years {PLAUSIBLE_YEARS[0]}-{PLAUSIBLE_YEARS[1]}")
    return parsed


def soft_timestamp(value: object) -> datetime | None:
    """An informative time (impact window, evaluation window): unparseable is simply unknown."""
    try:
        return timestamp(value, "time")
    except InvalidPayloadError:
        return None


def number(value: object) -> int | float | None:
    """A JSON number, also when sent as a string ("25"); non-finite values are unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value.bit_length() <= _MAX_INT_BITS else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    raw = text(value)
    if raw is None or len(raw) > 40:
        return None
    for convert in (int, float):
        try:
            parsed: int | float = convert(raw)
        except ValueError:
            continue
        return parsed if not isinstance(parsed, float) or math.isfinite(parsed) else None
    return None


def flag(value: object) -> bool | None:
    """A boolean, also when sent as "true"/"false" or 1/0."""
    if isinstance(value, bool):
        return value
    return _FLAGS.get(fold(value) or "")


_FLAGS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def decode_json(raw: bytes | str, what: str = "body") -> object:
    """A JSON document; InvalidPayloadError when it is not JSON or nests deeper than the decoder can.

    Python's decoder raises RecursionError past about a thousand levels, well inside the 256 KiB
    an alert may have: that is a malformed payload (400), not a failure of the service (503).
    """
    try:
        return json.loads(raw)
    except RecursionError:
        raise InvalidPayloadError(f"{what} nests JSON deeper than this service reads") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidPayloadError(f"{what} is not JSON") from None


def embedded_json(value: object) -> object:
    """A JSON document Azure sends inside a string (or already decoded); None when unreadable."""
    if isinstance(value, (Mapping, list)):
        return value
    if not isinstance(value, str) or len(value) > MAX_EMBEDDED_JSON:
        return None
    try:
        return decode_json(value)
    except InvalidPayloadError:
        return None


def first_id(prefix: str, *candidates: str | None) -> str:
    """`{prefix}:{first candidate}`; callers end the chain with an always-present identity."""
    for candidate in candidates:
        if candidate:
            return f"{prefix}:{candidate}"
    raise InvalidPayloadError("the payload carries no identity to deduplicate it by")


def joined(*parts: str | None) -> str | None:
    """Parts joined with ':' when every part is known, else None (a fallback identity)."""
    if all(parts):
        return ":".join(part for part in parts if part)
    return None


def event_time(alert: Alert) -> datetime:
    """When an activity-log-style event happened: `alertContext.eventTimestamp`, else firedDateTime."""
    observed = timestamp(field(alert.context, "eventTimestamp"), "alertContext.eventTimestamp")
    if observed is None:
        observed = alert.fired_at
    if observed is None:
        raise InvalidPayloadError("the alert has no eventTimestamp and no firedDateTime")
    return observed


def unique(items: Iterable[T]) -> tuple[T, ...]:
    return tuple(dict.fromkeys(items))
