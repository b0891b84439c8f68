"""Small facts about URLs and HTTP answers, shared by every adapter and channel.

Layer: pure core. Values in, values out: no I/O, no clock (callers pass `now`). The one place
that decides whether a URL may be posted to (https, or plain http only to a loopback host: the
local sinks and emulator), how a host is shown in logs, and how a `Retry-After` header reads.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048


def is_loopback_host(host: str | None) -> bool:
    """Whether `host` is localhost, 127.0.0.0/8 or ::1."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_http(url: str | None) -> bool:
    """Whether `url` is plain http to a loopback host."""
    if not url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() == "http" and is_loopback_host(parts.hostname)


def https_or_loopback(url: str | None) -> bool:
    """Whether `url` may be posted to: https with a host and a valid port, or http to loopback."""
    if not url or len(url) > MAX_URL_LENGTH or any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    if not parts.hostname:
        return False
    return parts.scheme.lower() == "https" or is_loopback_http(url)


def describe_host(url: str) -> str:
    """A URL's host as it may be logged: first label hidden (`*.logic.azure.com`), nothing else."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return "<invalid url>"
    labels = host.split(".")
    if len(labels) > 2 and not host.replace(".", "").isdigit():
        return "*." + ".".join(labels[1:])
    return host or "<invalid url>"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date); None if absent/bad."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - now).total_seconds(), 0.0)
