"""Azure Storage queue adapter (azure-storage-queue): the probe timer's shard messages go out here.

Layer: adapter. It takes a `QueueClient` (built lazily by the runtime, or by tests against
Azurite's queue service), sends each shard as one message, base64-encoded the way the Functions
host's queue trigger reads it by default (`messageEncoding: base64` in host.json), with a time to
live of one timer period so a message nobody took in time expires instead of piling up. Every SDK
error becomes `StorageUnavailableError` (transport, 5xx) or `StorageError`. It makes no decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from failover.errors import StorageError, StorageUnavailableError
from failover.secrets import redact
from failover.shards import Shard

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

log = logging.getLogger(__name__)
# Short timeouts, few retries: the timer's next tick plans again anyway.
_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.2,
    "connection_timeout": 3,
    "read_timeout": 10,
    "use_env_settings": False,  # no proxy settings read from the environment per request
}


class ShardQueue:
    def __init__(self, client: QueueClient) -> None:
        self._client = client
        self._ready = False

    @classmethod
    def from_connection_string(cls, connection: str, queue: str) -> ShardQueue:
        from azure.storage.queue import QueueClient, TextBase64EncodePolicy

        return cls(
            QueueClient.from_connection_string(
                connection, queue, message_encode_policy=TextBase64EncodePolicy(), **_CLIENT_OPTIONS
            )
        )

    @classmethod
    def from_endpoint(cls, endpoint: str, queue: str, credential: Any) -> ShardQueue:
        """Identity-based access (Storage Queue Data Message Sender on the account)."""
        from azure.storage.queue import QueueClient, TextBase64EncodePolicy

        return cls(
            QueueClient(
                endpoint,
                queue,
                credential=credential,
                message_encode_policy=TextBase64EncodePolicy(),
                **_CLIENT_OPTIONS,
            )
        )

    def send(self, shards: Iterable[Shard], *, ttl: timedelta) -> int:
        """Enqueue every shard; returns how many were sent. Raises on the first failure."""
        self._ensure_queue()
        sent = 0
        for shard in shards:
            self._call(partial(self._client.send_message, shard.to_json(), time_to_live=_seconds(ttl)))
            sent += 1
        return sent

    def _ensure_queue(self) -> None:
        if self._ready:
            return
        from azure.core.exceptions import ResourceExistsError

        try:
            self._call(self._client.create_queue)
        except StorageError as error:
            if not isinstance(error.__cause__, ResourceExistsError):
                raise
        self._ready = True

    def _call(self, action: Callable[[], object]) -> object:
        from azure.core.exceptions import (
            AzureError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        try:
            return action()
        except (ServiceRequestError, ServiceResponseError) as error:
            raise StorageUnavailableError(f"queue unavailable: {redact(str(error))}") from error
        except HttpResponseError as error:
            status = error.status_code or 0
            kind = StorageUnavailableError if status >= 500 or status == 429 else StorageError
            raise kind(f"queue answered {status}: {redact(error.reason or '')}") from error
        except AzureError as error:
            raise StorageError(f"queue error: {redact(type(error).__name__)}") from error


def _seconds(value: timedelta) -> int:
    return max(1, int(value.total_seconds()))


__all__ = ["ShardQueue"]
