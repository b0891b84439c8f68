"""A `$batch` the Table service refuses as a whole (no multipart answer) is translated like every
other storage error: 5xx is worth a retry, 4xx is not, and the answer's text stays out of it.
A real HTTP server on loopback answers in place of the service."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from failover.adapters.table_store import TableStore
from failover.errors import ConcurrencyConflictError, StorageError, StorageUnavailableError

KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
SECRET_TEXT = "internal detail that must not travel"


@pytest.fixture
def refusing() -> Iterator[tuple[ThreadingHTTPServer, list[int]]]:
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            error = {"odata.error": {"code": "Refused", "message": {"value": SECRET_TEXT}}}
            body = json.dumps(error).encode()
            self.send_response(statuses[0])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, statuses
    server.shutdown()
    server.server_close()


def _store(server: ThreadingHTTPServer) -> TableStore:
    port = server.server_address[1]
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={KEY};TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    return TableStore.from_connection_string(connection, "incidents")


OPERATIONS = [
    ("create", {"PartitionKey": "p", "RowKey": "a"}),
    ("create", {"PartitionKey": "p", "RowKey": "b"}),
]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (503, StorageUnavailableError),
        (400, StorageError),
        (413, StorageError),
        (412, ConcurrencyConflictError),
    ],
)
def test_a_whole_batch_refusal_is_translated(refusing, status: int, expected: type[Exception]) -> None:
    server, statuses = refusing
    statuses.append(status)
    with pytest.raises(expected) as raised:
        _store(server)._transaction(list(OPERATIONS))
    assert type(raised.value) is expected
    assert SECRET_TEXT not in str(raised.value)
