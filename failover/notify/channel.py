"""The `Channel` protocol every notification channel implements, and the values crossing it.

Layer: pure core (protocols and values only; no I/O). A channel renders one incident transition
into a message (or nothing, when it has nothing to say about that transition), picks its target
for a server (a webhook URL, a routing key; None when the server is routed `off` or the channel
has no default), sends, and classifies the answer into `ChannelRefusedError` (permanent) or
`ChannelUnavailableError` (retryable, with the receiver's `Retry-After`). It never retries or
sleeps: the outbox (the Responder's effect retry) is the only retry policy.

Targets are secrets: no error text, repr or log line produced by a channel contains one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from failover.errors import NotifierError, NotifierUnavailableError
from failover.model import Transition
from failover.presentation import IncidentView


@dataclass(frozen=True)
class Links:
    """Where people can read more: the app's timeline page and the Azure portal (None if unknown)."""

    timeline_url: str | None = None
    portal_url: str | None = None


class ChannelRefusedError(NotifierError):
    """The receiver refused the message for good (a 4xx other than 408/429, a redirect, a bad target)."""

    def __init__(self, message: str, *, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class ChannelUnavailableError(NotifierUnavailableError):
    """The receiver throttled, failed or did not answer; `retry_after` is its own ask, if any."""

    def __init__(self, message: str, *, status: int | None, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class Channel(Protocol):
    """One way of telling people about an incident (Teams, PagerDuty, ...)."""

    name: str  # lower-case letters and digits; the effect is `notify_{name}`, stored notifications name it

    def target_for(self, server: str) -> str | None:
        """Where this server's messages go, or None: nothing is sent for it (routed off, no default)."""
        ...

    def render(self, view: IncidentView, transition: Transition, links: Links) -> Mapping[str, Any] | None:
        """The message for one transition (pure), or None when the channel says nothing about it."""
        ...

    def send(self, target: str, message: Mapping[str, Any]) -> None:
        """Deliver once; return on acceptance, else raise ChannelRefusedError/ChannelUnavailableError."""
        ...
