"""Time helpers: parse what Azure sends, format what we publish. Aware UTC only.

Layer: pure core. Never reads the clock.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

# Azure sends 7 fractional digits (.NET ticks) and sometimes none; Python's fromisoformat
# before 3.11 accepts at most 6 and no trailing "Z".
_FRACTION = re.compile(r"\.(\d+)")
_TZ_SUFFIX = re.compile(r"(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


def ensure_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime; aware UTC required")
    return value.astimezone(timezone.utc)


def parse_iso(text: object) -> datetime:
    """Parse an ISO 8601 timestamp as Azure writes it; naive times are refused."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("timestamp missing")
    raw = text.strip()
    suffix = _TZ_SUFFIX.search(raw)
    if suffix is None:
        raise ValueError(f"timestamp without a time zone: {raw[:40]!r}")
    body, zone = raw[: suffix.start()], suffix.group(1)
    zone = "+00:00" if zone.upper() == "Z" else zone
    if len(zone) == 5:  # +hhmm
        zone = f"{zone[:3]}:{zone[3:]}"
    body = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], body)
    try:
        return datetime.fromisoformat(body.replace(" ", "T") + zone).astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:  # OverflowError: year 1 or 9999 shifted out of range
        raise ValueError(f"not an ISO 8601 timestamp: {raw[:40]!r}") from exc


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a trailing Z (the public JSON format), or None."""
    if value is None:
        return None
    utc = ensure_utc(value)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def compact(value: datetime) -> str:
    """`YYYYMMDDTHHMMSSZ`: the incident id's time part."""
    utc = ensure_utc(value)
    return f"{utc.year:04d}" + utc.strftime("%m%dT%H%M%SZ")  # %Y is not zero-padded below year 1000


def sortable(value: datetime) -> str:
    """A fixed-width, lexically sortable key part with microseconds."""
    return ensure_utc(value).strftime("%Y%m%dT%H%M%S%fZ")
