"""Issue 15: a benchmark's seeding retries a dropped connection, and stops on what it cannot fix."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from bench.lookups import _submit


class FlakyClient:
    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls = 0

    def submit_transaction(self, operations):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


def test_a_connection_reset_is_retried_until_the_batch_is_written():
    client = FlakyClient([ServiceResponseError("Connection reset by peer")])
    _submit(client, [("upsert", {"PartitionKey": "p", "RowKey": "r"})])
    assert client.calls == 2 and not client.errors


def test_a_refused_batch_stops_the_seeding_at_once():
    refused = HttpResponseError("bad request")
    refused.status_code = 400
    client = FlakyClient([refused])
    with pytest.raises(HttpResponseError):
        _submit(client, [("upsert", {"PartitionKey": "p", "RowKey": "r"})])
    assert client.calls == 1
