"""Teams adapter: posts Adaptive Cards to a Power Automate Workflows webhook (design section 5).

Layer: adapter (edge). Implements `failover.ports.Notifier` on a `requests.Session` given to it.
It retries 429, 408 and 5xx inside one call (honouring `Retry-After`, bounded), and translates
every failure into `NotifierUnavailableError` (retry later) or `NotifierError` (permanent).

The webhook URL is a secret (its query holds a `sig=` SAS). This module never logs it, never puts
it (or any part of its path or query) in an exception text or repr, and raises its errors outside
the `except` blocks so no vendor exception (whose text holds the URL) is chained to them. Because
urllib3 logs request paths with their query at DEBUG, a redacting filter is attached to the
urllib3 and requests loggers when a notifier is created (idempotent; it only rewrites records that
hold a URL it has been told about, a `sig=` value, or a path with a query string).
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from failover.cards import envelope
from failover.errors import NotifierError, NotifierUnavailableError

log = logging.getLogger(__name__)

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_RETRYABLE = frozenset({408, 429})
_EXCERPT = 200
_LEGACY_THROTTLE = "returned HTTP error 429"  # old connectors answered 200 with this text
_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.response",
    "urllib3.poolmanager",
    "urllib3.util.retry",
    "requests",
    __name__,
)
_SIG = re.compile(r"(?i)(sig(?:%3D|=))[^&\s'\"]+")
_PATH_WITH_QUERY = re.compile(r"(?:[a-z][a-z0-9+.-]*://[^\s/'\"]+)?/[^\s'\"?]*\?[^\s'\"]+")


class WebhookRefusedError(NotifierError):
    """The webhook refused the card for good (a 4xx other than 408/429, or a redirect)."""

    def __init__(self, message: str, *, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class WebhookUnavailableError(NotifierUnavailableError):
    """The webhook throttled, failed or did not answer; `retry_after` is its own ask, if any."""

    def __init__(self, message: str, *, status: int | None, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class _Redactor(logging.Filter):
    """Rewrites log records that would show a webhook URL, its query or its `sig` value."""

    def __init__(self) -> None:
        super().__init__("webhook-redactor")
        self._secrets: deque[str] = deque(maxlen=256)
        self._lock = threading.Lock()

    def remember(self, url: str) -> None:
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = urlsplit("")
        found = [url, parts.query, parts.path + ("?" + parts.query if parts.query else "")]
        found += [value for key, value in parse_qsl(parts.query) if key.lower() == "sig"]
        with self._lock:
            for secret in found:
                if len(secret) >= 8 and secret not in self._secrets:
                    self._secrets.append(secret)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, "<redacted>")
        text = _PATH_WITH_QUERY.sub("<redacted url>", text)
        return _SIG.sub(r"\1<redacted>", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record: let logging report it as usual
            return True
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


_REDACTOR = _Redactor()
_INSTALL_LOCK = threading.Lock()


def install_log_redaction() -> None:
    """Attach the redacting filter to the HTTP libraries' loggers (once; no I/O)."""
    with _INSTALL_LOCK:
        for name in _LOGGERS:
            logger = logging.getLogger(name)
            if _REDACTOR not in logger.filters:
                logger.addFilter(_REDACTOR)


def describe_host(url: str) -> str:
    """The webhook's host as it may be logged: first label hidden (`*.logic.azure.com`)."""
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
    if value is None:
        return None
    text = value.strip()
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


_RANDOM = random.SystemRandom()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class TeamsWebhookNotifier:
    """`Notifier` for Power Automate Workflows webhooks ("when a Teams webhook request is received")."""

    def __init__(
        self,
        session: requests.Session,
        *,
        timeout: tuple[float, float] = (3.0, 10.0),
        max_attempts: int = 3,
        max_retry_after: float = 30.0,
        backoff_base: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = _utcnow,
        jitter: Callable[[], float] = _RANDOM.random,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._session = session
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._max_retry_after = max_retry_after
        self._backoff_base = backoff_base
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        install_log_redaction()

    def __repr__(self) -> str:
        return f"TeamsWebhookNotifier(timeout={self._timeout!r}, max_attempts={self._max_attempts})"

    def post(self, url: str, card: Mapping[str, Any]) -> None:
        """Post one card; return when the webhook accepted it (2xx), else raise (see module doc)."""
        _REDACTOR.remember(url)
        host = describe_host(url)
        if not _acceptable(url):
            raise WebhookRefusedError(
                f"teams webhook at {host}: the URL must be https (http only on loopback)", status=None
            )
        body = json.dumps(envelope(card), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        retry_after: float | None = None
        status: int | None = None
        reason = ""
        for attempt in range(1, self._max_attempts + 1):
            outcome = self._attempt(url, body, host)
            if outcome is None:
                if attempt > 1:
                    log.info("teams webhook at %s accepted the card on attempt %d", host, attempt)
                return
            status, retry_after, reason, retry_now = outcome
            if not retry_now or attempt == self._max_attempts:
                break
            if retry_after is not None and retry_after > self._max_retry_after:
                log.warning(
                    "teams webhook at %s asks to wait %.0f s (over %.0f s): leaving it to the sweeper",
                    host,
                    retry_after,
                    self._max_retry_after,
                )
                break
            wait = retry_after if retry_after is not None else self._backoff(attempt)
            log.info("teams webhook at %s %s; retrying in %.1f s", host, reason, wait)
            self._sleep(wait)
        raise WebhookUnavailableError(
            f"teams webhook at {host} {reason} (after {attempt} attempt{'s' if attempt > 1 else ''})",
            status=status,
            retry_after=retry_after,
        )

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._max_retry_after, self._backoff_base * 2 ** (attempt - 1))
        return float(ceiling * (0.5 + 0.5 * self._jitter()))

    def _attempt(self, url: str, body: bytes, host: str) -> tuple[int | None, float | None, str, bool] | None:
        """None on success; else (status, retry_after, reason, retry in this call?). Raises permanent."""
        failure: tuple[int | None, float | None, str, bool] | None = None
        try:
            response = self._session.post(
                url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,
            )
        except requests.exceptions.ConnectTimeout:
            failure = (None, None, "did not accept a connection in time", True)
        except requests.exceptions.ReadTimeout:
            # The card may have arrived: do not post it again in this call (the sweeper may).
            failure = (None, None, "did not answer in time", False)
        except requests.exceptions.ConnectionError:
            failure = (None, None, "could not be reached", True)
        except requests.exceptions.RequestException as exc:
            failure = (None, None, f"request failed ({type(exc).__name__})", False)
        if failure is not None:
            log.warning("teams webhook at %s %s", host, failure[2])
            return failure

        try:
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
            excerpt = _excerpt(response)
        finally:
            response.close()

        if 200 <= status < 300:
            if _LEGACY_THROTTLE in excerpt:
                log.warning("teams webhook at %s answered %d with a throttling text", host, status)
                return (429, retry_after, "throttled the card (legacy 200 with HTTP error 429)", True)
            log.info("teams webhook at %s answered %d", host, status)
            return None
        log.warning("teams webhook at %s answered %d", host, status)
        if status in _RETRYABLE or status >= 500:
            return (status, retry_after, f"answered {status}", True)
        if 300 <= status < 400:
            raise WebhookRefusedError(
                f"teams webhook at {host} answered a redirect ({status})", status=status
            )
        detail = f": {excerpt}" if excerpt else ""
        raise WebhookRefusedError(
            f"teams webhook at {host} refused the card with {status}{detail}", status=status
        )


def _acceptable(url: str) -> bool:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if not host:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK)


def _excerpt(response: requests.Response) -> str:
    """At most `_EXCERPT` characters of the answer's body, one line, with secrets redacted."""
    try:
        raw = response.raw.read(4096, decode_content=True) if response.raw is not None else b""
    except Exception:  # an unreadable body is not worth an error of its own
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    text = " ".join(text.split())
    text = _REDACTOR.redact(text)
    return text[:_EXCERPT] + ("\u2026" if len(text) > _EXCERPT else "")
