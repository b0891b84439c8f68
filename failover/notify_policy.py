"""Notification policy: where a server's messages go on each channel, and maintenance windows.

Layer: pure core. Parses the per-channel routes settings and the windows setting with one entry
parser and answers questions about them; it must not read the environment, the clock or the
network. Targets are secrets (a webhook URL carries a `sig=` SAS, a routing key is a credential):
no error message, repr or str produced here ever contains one, or any part of one.

Routes settings (`TEAMS_ROUTES`, `PAGERDUTY_ROUTES`, ...), entries separated by `;` or new lines::

    pg-prod-*=https://prod-01.westeurope.logic.azure.com/workflows/...&sig=...;pg-dev-*=off

`pattern=target`: the first entry whose `fnmatch` glob matches the (lower-case) server name wins;
`off` (or `none`) instead of a target sends nothing for those servers. A server that matches no
entry uses the channel's default target (`TEAMS_WEBHOOK_URL`, `PAGERDUTY_ROUTING_KEY`).

Maintenance windows setting (default name `MAINTENANCE_WINDOWS`), entries separated by `;`::

    pg-prod-*@sun 02:00-04:00            weekly, UTC; may cross midnight (sat 23:00-01:00)
    pg-dev-*@daily 01:00-01:30           every day, UTC
    *@2026-12-01T00:00Z/2026-12-01T06:00Z absolute, ISO 8601 with a time zone

A window's start is inclusive and its end exclusive.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import TypeVar

from failover.errors import ConfigError
from failover.timeutil import ensure_utc, parse_iso
from failover.urls import https_or_loopback

T = TypeVar("T")
WINDOWS_SETTING = "MAINTENANCE_WINDOWS"

_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAYS = {
    **{name[:3]: i for i, name in enumerate(_DAY_NAMES)},
    **{name: i for i, name in enumerate(_DAY_NAMES)},
}
_EVERY_DAY = frozenset({"daily", "*"})
_OFF = frozenset({"off", "none"})
# A server-name glob: flexible server names are lower-case letters, digits and hyphens.
_PATTERN = re.compile(r"^[A-Za-z0-9*?\[\]!._-]{1,80}$")
_WEEKLY = re.compile(
    r"^(?P<day>[a-z]{3,9}|\*)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$", re.IGNORECASE
)
_WEEK = timedelta(days=7)
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Route:
    """One `pattern=target` entry. `target` None means: send nothing for matching servers."""

    pattern: str
    target: str | None = field(repr=False)

    def matches(self, server: str) -> bool:
        return fnmatchcase(server.lower(), self.pattern)

    def __repr__(self) -> str:
        return f"Route(pattern={self.pattern!r}, target={'off' if self.target is None else '***'!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class MaintenanceWindow:
    """A weekly (UTC) or absolute window during which cards for matching servers are held back.

    Weekly: `weekday` 0=Monday..6=Sunday, or None for every day; `start_minute` minutes after
    midnight UTC; `duration_minutes` (may run past midnight). Absolute: `starts_at`/`ends_at`.
    """

    pattern: str
    text: str  # the window as written in the setting, without the pattern (safe to show)
    weekday: int | None = None
    start_minute: int = 0
    duration_minutes: int = 0
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @property
    def absolute(self) -> bool:
        return self.starts_at is not None

    def matches(self, server: str) -> bool:
        return fnmatchcase(server.lower(), self.pattern)

    def describe(self) -> str:
        return f"{self.pattern}@{self.text}"

    def occurrence(self, when: datetime) -> tuple[datetime, datetime] | None:
        """The (start, end) of this window's occurrence containing `when`, or None."""
        when = ensure_utc(when)
        if self.starts_at is not None and self.ends_at is not None:
            return (self.starts_at, self.ends_at) if self.starts_at <= when < self.ends_at else None
        for start in self._starts_around(when):
            end = start + timedelta(minutes=self.duration_minutes)
            if start <= when < end:
                return start, end
        return None

    def next_start(self, when: datetime) -> datetime | None:
        """The first start of this window strictly after `when` (None for a past absolute window)."""
        when = ensure_utc(when)
        if self.starts_at is not None:
            return self.starts_at if self.starts_at > when else None
        return min(s for s in self._starts_around(when, ahead=True) if s > when)

    def _starts_around(self, when: datetime, *, ahead: bool = False) -> Iterable[datetime]:
        midnight = when.replace(hour=0, minute=0, second=0, microsecond=0)
        step = _DAY if self.weekday is None else _WEEK
        if self.weekday is None:
            anchor = midnight
        else:
            anchor = midnight - timedelta(days=(midnight.weekday() - self.weekday) % 7)
        anchor += timedelta(minutes=self.start_minute)
        # The occurrence containing `when` started at most one step before `anchor`'s period.
        return (anchor - step, anchor, anchor + step) if ahead else (anchor - step, anchor)


def _entries(text: str | None) -> list[str]:
    if not text:
        return []
    return [part.strip() for part in re.split(r"[;\n]", text) if part.strip()]


def _safe_pattern(raw: str) -> str | None:
    candidate = raw.strip().lower()
    return candidate if _PATTERN.match(candidate) else None


def _bad_pattern_reason(raw: str) -> str:
    if not raw.strip():
        return "the pattern is empty"
    if "/" in raw or ":" in raw or "http" in raw.lower():
        return "the pattern looks like a URL (is the 'pattern=' part missing?)"
    return "the pattern may only hold letters, digits, '-', '.', '_' and the glob characters * ? [ ] !"


def _parse_entries(
    text: str | None, setting: str, shape: str, parse: Callable[[int, str, str], T | str]
) -> tuple[T, ...]:
    """Every entry of `shape` (`pattern=url`, `pattern@window`) parsed by `parse(index, pattern,
    value)`, which returns a value or the reason it is invalid; problems raise one ConfigError."""
    separator = "=" if "=" in shape else "@"
    parsed: list[T] = []
    problems: list[str] = []
    for index, entry in enumerate(_entries(text), start=1):
        raw_pattern, sep, value = entry.partition(separator)
        pattern = _safe_pattern(raw_pattern)
        if not sep:
            problems.append(f"entry {index} has no '{separator}' (expected {shape})")
        elif pattern is None:
            problems.append(f"entry {index}: {_bad_pattern_reason(raw_pattern)}")
        else:
            result = parse(index, pattern, value.strip())
            if isinstance(result, str):
                problems.append(result)
            else:
                parsed.append(result)
    if problems:
        raise ConfigError(f"{setting}: " + "; ".join(problems))
    return tuple(parsed)


def parse_routes(
    text: str | None,
    *,
    setting: str = "TEAMS_ROUTES",
    valid: Callable[[str], bool] = https_or_loopback,
    noun: str = "URL",
    what: str = "https URL",
) -> tuple[Route, ...]:
    """Parse `pattern=target;...`; invalid entries raise ConfigError (never quoting a target)."""

    def route(index: int, pattern: str, target: str) -> Route | str:
        if target.lower() in _OFF:
            return Route(pattern, None)
        if not target:
            return f"entry {index} ({pattern!r}) has no {noun} (use 'off' to send nothing)"
        if not valid(target):
            shown = f"the {noun} is not a valid {what} (value not shown: it is a secret)"
            return f"entry {index} ({pattern!r}): {shown}"
        return Route(pattern, target)

    return _parse_entries(text, setting, f"pattern={noun.lower()}", route)


def route_for(server: str, routes: Iterable[Route], default: str | None) -> str | None:
    """The target for `server`: the first matching route's, else `default`.

    None means nothing is sent (no default configured, or the matching route is `off`).
    """
    for route in routes:
        if route.matches(server):
            return route.target
    return default or None


def _minutes(text: str, *, end: bool) -> int | None:
    hours_text, _, minutes_text = text.partition(":")
    hours, minutes = int(hours_text), int(minutes_text)
    if minutes > 59:
        return None
    if hours == 24 and minutes == 0 and end:
        return 24 * 60
    if hours > 23:
        return None
    return hours * 60 + minutes


def _parse_window(pattern: str, spec: str) -> MaintenanceWindow | str:
    """A window, or the reason the spec is invalid."""
    if "/" in spec:
        start_text, _, end_text = spec.partition("/")
        try:
            starts_at, ends_at = parse_iso(start_text.strip()), parse_iso(end_text.strip())
        except ValueError:
            return "expected start/end as ISO 8601 times with a time zone, e.g. 2026-12-01T00:00Z"
        if ends_at <= starts_at:
            return "the end is not after the start"
        return MaintenanceWindow(pattern, spec, starts_at=starts_at, ends_at=ends_at)
    match = _WEEKLY.match(spec)
    if match is None:
        return "expected 'sun 02:00-04:00', 'daily 02:00-04:00' or 'START/END' (ISO 8601)"
    day = match["day"].lower()
    if day in _EVERY_DAY:
        weekday: int | None = None
    elif day in _DAYS:
        weekday = _DAYS[day]
    else:
        return "unknown day (use mon, tue, wed, thu, fri, sat, sun or daily)"
    start = _minutes(match["start"], end=False)
    end = _minutes(match["end"], end=True)
    if start is None or end is None:
        return "a time is not a valid HH:MM (00:00-23:59, 24:00 as an end)"
    duration = (end - start) % (24 * 60) if end != 24 * 60 else 24 * 60 - start
    if duration == 0:
        return "the window is empty (start equals end)"
    return MaintenanceWindow(pattern, spec, weekday=weekday, start_minute=start, duration_minutes=duration)


def parse_windows(text: str | None, *, setting: str = WINDOWS_SETTING) -> tuple[MaintenanceWindow, ...]:
    """Parse `pattern@window;...` (see the module docstring); invalid text raises ConfigError."""

    def window(index: int, pattern: str, spec: str) -> MaintenanceWindow | str:
        parsed = _parse_window(pattern, " ".join(spec.split()))
        if not isinstance(parsed, str):
            return parsed
        shown = spec[:60]
        if "://" in shown or "sig=" in shown.lower():  # a webhook URL pasted into the wrong setting
            shown = "<value not shown>"
        return f"entry {index} ({pattern}@{shown}): {parsed}"

    return _parse_entries(text, setting, "pattern@window", window)


def window_at(server: str, when: datetime, windows: Iterable[MaintenanceWindow]) -> MaintenanceWindow | None:
    """The first window matching `server` that is open at `when`, or None."""
    for window in windows:
        if window.matches(server) and window.occurrence(when) is not None:
            return window
    return None


def window_end(window: MaintenanceWindow, when: datetime) -> datetime:
    """When the window's occurrence containing `when` ends.

    Outside the window: the end of its next occurrence (for an absolute window, its end).
    """
    when = ensure_utc(when)
    current = window.occurrence(when)
    if current is not None:
        return current[1]
    if window.ends_at is not None:
        return window.ends_at
    start = window.next_start(when)
    if start is None:  # unreachable: a recurring window always has a next start
        raise ValueError("window has no next occurrence")
    return start + timedelta(minutes=window.duration_minutes)
