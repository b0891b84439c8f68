"""The project's own errors. Adapters translate vendor errors into these.

Layer: pure core. Whether a failure is worth retrying is decided here, in one place:
`RetryableError` subclasses are transient (throttling, timeouts, a service down), everything
else is permanent. Exception texts never carry secrets: adapters pass messages cleaned by
`failover.secrets.redact`.
"""

from __future__ import annotations


class FailoverError(Exception):
    """Base of every error this project raises on purpose."""


class RetryableError(FailoverError):
    """A transient failure: the same call may succeed later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(FailoverError):
    """A failure that retrying will not fix (bad request, forbidden, not found)."""


class InvalidPayloadError(PermanentError):
    """An inbound payload is malformed; the message is the reason given to the caller."""


class ConfigError(PermanentError):
    """Missing or invalid settings; the message names every bad key."""


class StorageUnavailableError(RetryableError):
    """Table storage cannot be reached or keeps failing: the caller should be retried later."""


class ConcurrencyConflictError(RetryableError):
    """An ETag compare-and-swap lost to another writer after every bounded retry."""


class StorageError(PermanentError):
    """Table storage refused a request for a reason retrying will not fix."""


class NotFoundError(PermanentError):
    """The thing asked for does not exist."""


class CacheUnavailableError(RetryableError):
    """Redis cannot be reached or timed out."""


class NotifierError(PermanentError):
    """The Teams webhook refused the card for good (4xx other than 429)."""


class NotifierUnavailableError(RetryableError):
    """The Teams webhook is throttling (429) or failing (5xx, timeout)."""


class InspectorError(PermanentError):
    """The management API refused (403 forbidden, 404 not found, bad answer)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InspectorUnavailableError(RetryableError):
    """The management API is throttling or failing (429, 5xx, timeout, connection refused)."""


class DatabaseProbeError(RetryableError):
    """A PostgreSQL availability check could not connect or write."""


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, RetryableError)
