"""One JSON poster and one answer classifier for every HTTP channel.

Layer: adapter (edge). `JsonPoster` posts once on a `requests.Session` given to it and returns
the answer (status, `Retry-After`, a redacted excerpt of the body); `classify` turns an answer
into the project's errors in one place: 2xx accepted; 408, 429 and 5xx retryable (with the
receiver's `Retry-After`); redirects and other 4xx permanent. Transport failures are retryable,
except a read timeout, which is reported retryable too but logged: the message may have arrived.
There is no retry and no sleep here; the outbox retries.

Targets are secrets (a webhook URL holds a `sig=` SAS; a routing key is a credential). The URL
posted to is registered with `failover.secrets`, errors are raised outside `except` blocks so no
vendor exception (whose text holds the URL) is chained, and only `describe_host` reaches a log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import requests

from failover.notify.channel import ChannelRefusedError, ChannelUnavailableError
from failover.secrets import install_log_redaction, redact, register
from failover.urls import describe_host, https_or_loopback, parse_retry_after

log = logging.getLogger(__name__)

_RETRYABLE = frozenset({408, 429})
_EXCERPT = 200


@dataclass(frozen=True)
class Answer:
    """What a receiver answered: its status, its `Retry-After` in seconds, a redacted excerpt."""

    status: int
    retry_after: float | None = None
    excerpt: str = ""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def classify(answer: Answer, label: str) -> None:
    """Return on 2xx; raise ChannelUnavailableError (408, 429, 5xx) or ChannelRefusedError (the rest)."""
    status = answer.status
    if 200 <= status < 300:
        return
    if status in _RETRYABLE or status >= 500:
        raise ChannelUnavailableError(
            f"{label} answered {status}", status=status, retry_after=answer.retry_after
        )
    if 300 <= status < 400:
        raise ChannelRefusedError(f"{label} answered a redirect ({status})", status=status)
    detail = f": {answer.excerpt}" if answer.excerpt else ""
    raise ChannelRefusedError(f"{label} refused the message with {status}{detail}", status=status)


class JsonPoster:
    """Posts one JSON body to a URL, once, with bounded timeouts and no redirects."""

    def __init__(
        self,
        session: requests.Session,
        *,
        timeout: tuple[float, float] = (3.0, 10.0),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._session = session
        self._timeout = timeout
        self._clock = clock
        install_log_redaction()

    def __repr__(self) -> str:
        return f"JsonPoster(timeout={self._timeout!r})"

    def post(self, url: str, body: Mapping[str, Any], *, channel: str) -> Answer:
        """The receiver's answer; transport failures raise ChannelUnavailableError (never the URL)."""
        register(url)
        label = f"{channel} at {describe_host(url)}"
        if not https_or_loopback(url):
            raise ChannelRefusedError(f"{label}: the URL must be https (http only on loopback)", status=None)
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        failure: str | None = None
        try:
            response = self._session.post(
                url,
                data=data,
                headers={"Content-Type": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,
            )
        except requests.exceptions.ConnectTimeout:
            failure = "did not accept a connection in time"
        except requests.exceptions.ReadTimeout:
            failure = "did not answer in time (the message may have arrived)"
        except requests.exceptions.ConnectionError:
            failure = "could not be reached"
        except requests.exceptions.RequestException as exc:
            failure = f"request failed ({type(exc).__name__})"
        if failure is not None:
            log.warning("%s %s", label, failure)
            raise ChannelUnavailableError(f"{label} {failure}", status=None)
        try:
            answer = Answer(
                status=response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After"), self._clock()),
                excerpt=_excerpt(response),
            )
        finally:
            response.close()
        log.info("%s answered %d", label, answer.status)
        return answer


def _excerpt(response: requests.Response) -> str:
    """At most `_EXCERPT` characters of the answer's body, one line, with secrets redacted."""
    try:
        raw = response.raw.read(4096, decode_content=True) if response.raw is not None else b""
    except Exception:  # an unreadable body is not worth an error of its own
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return redact(" ".join(text.split()), limit=_EXCERPT)
