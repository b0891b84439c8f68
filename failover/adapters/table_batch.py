"""Entity group transactions on Azure Table storage, with the multipart envelope written here.

Layer: adapter, used by `table_store` only. It takes the store's `TableClient`, lets the SDK build
each operation (`TableBatchOperations`: entity serialization, key quoting, If-Match) and sends the
`$batch` request through the client's own pipeline (authentication, retries, transport). Only the
multipart envelope around the operations, and the reading of the answer, are written here, in the
format documented at
https://learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions
(one change set per batch; a refused change set answers with the one part that failed).

Why not `TableClient.submit_transaction`: azure-core writes the envelope with the `email` package and
an `http.client` serializer, and reads the answer with the `email` parser and a new thread pool per
response. That cost 3.6 ms of CPU per transaction of four operations against 0.9 ms here, and it was
the largest share of the alert storm's recording path (docs/benchmarks.md, "Alert storm").

What it must not do: decide anything about the error it meets. A refused transaction is raised as
azure-core's `HttpResponseError` carrying the part's status and error code, so `table_store`
translates it with every other SDK error, in one place. It puts no response text into an error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.rest import HttpRequest
    from azure.data.tables import TableClient

_EOL = "\r\n"
_STATUS_LINE = "HTTP/1.1 "


def submit(client: TableClient, operations: Sequence[tuple[Any, ...]]) -> None:
    """Commit `operations` (as `TableClient.submit_transaction` takes them) all or nothing."""
    from azure.core.exceptions import HttpResponseError
    from azure.core.rest import HttpRequest
    from azure.data.tables._table_batch import TableBatchOperations

    endpoint = f"{client.scheme}://{client._primary_hostname}"
    batch = TableBatchOperations(
        config=client._client._config,
        endpoint=endpoint,
        table_name=client.table_name,
        is_cosmos_endpoint=client._cosmos_endpoint,
    )
    for operation in operations:
        batch.add_operation(operation)
    boundary = f"batch_{uuid.uuid4()}"
    request = HttpRequest(
        "POST",
        f"{endpoint}/$batch",
        headers={
            "x-ms-version": client.api_version,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": f"multipart/mixed; boundary={boundary}",
            "Accept": "application/json",
        },
        content=envelope(batch.requests, boundary, f"changeset_{uuid.uuid4()}"),
    )
    # stream=True: the pipeline must not try to deserialize a multipart answer.
    response = client._client.send_request(request, stream=True)
    response.read()
    if response.status_code != 202:
        status = response.status_code
        raise HttpResponseError(message=f"the transaction was refused ({status})", response=response)
    refusal = first_refusal(response.text())
    if refusal is not None:
        status, code = refusal
        error = HttpResponseError(message=f"the transaction was refused ({status} {code or 'no code'})")
        error.status_code = status
        error.error_code = code  # type: ignore[attr-defined]  # read by table_store as the SDK's errors
        raise error


def envelope(requests: Sequence[HttpRequest], batch_boundary: str, changeset_boundary: str) -> bytes:
    """The `$batch` body: one change set holding each request as an `application/http` part."""
    opening = f"--{batch_boundary}{_EOL}Content-Type: multipart/mixed; boundary={changeset_boundary}{_EOL}"
    parts = [f"{opening}{_EOL}".encode()]
    for index, request in enumerate(requests):
        body = request.content
        data = body.encode() if isinstance(body, str) else bytes(body or b"")
        headers = {name: value for name, value in request.headers.items() if name.lower() != "content-length"}
        headers["Content-Length"] = str(len(data))
        head = "".join(f"{name}: {value}{_EOL}" for name, value in headers.items())
        parts.append(
            (
                f"--{changeset_boundary}{_EOL}Content-Type: application/http{_EOL}"
                f"Content-Transfer-Encoding: binary{_EOL}Content-ID: {index}{_EOL}{_EOL}"
                f"{request.method} {request.url} HTTP/1.1{_EOL}{head}{_EOL}"
            ).encode()
            + data
            + _EOL.encode()
        )
    parts.append(f"--{changeset_boundary}--{_EOL}--{batch_boundary}--{_EOL}".encode())
    return b"".join(parts)


def first_refusal(answer: str) -> tuple[int, str] | None:
    """The status and error code of the first part of a `$batch` answer that is not 2xx, if any."""
    lines = answer.split(_EOL) if _EOL in answer else answer.split("\n")
    for at, line in enumerate(lines):
        if not line.startswith(_STATUS_LINE):
            continue
        status = int(line[len(_STATUS_LINE) :].split(" ", 1)[0])
        if not 200 <= status < 300:
            return status, _error_code(lines[at + 1 :])
    return None


def _error_code(lines: list[str]) -> str:
    """The OData error code in the part that starts at `lines` (its headers, a blank line, JSON)."""
    try:
        blank = lines.index("")
    except ValueError:
        return ""
    body = []
    for line in lines[blank + 1 :]:
        if line.startswith("--"):
            break
        body.append(line)
    try:
        error = json.loads("\n".join(body))["odata.error"]
        return str(error.get("code", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""
