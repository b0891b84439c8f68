"""The `$batch` envelope written by `table_batch`, read back by the standard library's MIME parser,
and the answers of the Table service (fixtures shaped like the documented ones) read by it."""

from __future__ import annotations

import email.parser
import email.policy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from failover.adapters.table_batch import envelope, first_refusal

if TYPE_CHECKING:
    from azure.core.rest import HttpRequest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "table_batch"
ENDPOINT = "https://myaccount.table.core.windows.net"


def _requests(entities: list[dict[str, str]]) -> list[HttpRequest]:
    from azure.core import MatchConditions
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.data.tables import TableClient, UpdateMode
    from azure.data.tables._table_batch import TableBatchOperations

    key = AzureNamedKeyCredential("myaccount", "a2V5")
    client = TableClient(endpoint=ENDPOINT, table_name="incidents", credential=key)
    batch = TableBatchOperations(
        config=client._client._config, endpoint=ENDPOINT, table_name="incidents", is_cosmos_endpoint=False
    )
    batch.add_operation(("create", entities[0]))
    for entity in entities[1:]:
        etag = "W/\"datetime'2026-11-30T08%3A15%3A02Z'\""
        options = {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
        batch.add_operation(("update", entity, options))
    return batch.requests


def _parts(body: bytes) -> list[Any]:
    head = b"Content-Type: multipart/mixed; boundary=batch_b\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    (changeset,) = cast(list[Any], message.get_payload())
    assert changeset.get_content_type() == "multipart/mixed"
    return cast(list[Any], changeset.get_payload())


texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.lists(texts, min_size=1, max_size=5, unique=True), texts)
def test_every_operation_is_one_http_part_that_carries_its_entity_whole(rows: list[str], value: str) -> None:
    entities = [
        {"PartitionKey": "srv~pg-prod-01", "RowKey": f"r{i}-{row}", "note": value}
        for i, row in enumerate(rows)
    ]
    parts = _parts(envelope(_requests(entities), "batch_b", "changeset_c"))

    assert [part["Content-ID"] for part in parts] == [str(i) for i in range(len(entities))]
    for part, entity in zip(parts, entities, strict=True):
        assert part.get_content_type() == "application/http"
        raw = part.get_payload(decode=True)
        head, _, body = raw.partition(b"\r\n\r\n")
        request_line, *headers = head.decode().split("\r\n")
        assert request_line.startswith(("POST https://", "PUT https://"))
        assert request_line.endswith(" HTTP/1.1")
        lengths = [h.split(": ", 1)[1] for h in headers if h.lower().startswith("content-length:")]
        body = body.removesuffix(b"\r\n")
        assert lengths == [str(len(body))]
        sent = json.loads(body)
        assert {key: sent[key] for key in entity} == entity


def test_a_committed_answer_has_no_refusal() -> None:
    assert first_refusal((FIXTURES / "committed.http").read_text()) is None


def test_a_refused_change_set_names_its_status_and_odata_code() -> None:
    assert first_refusal((FIXTURES / "refused_etag.http").read_text()) == (412, "UpdateConditionNotSatisfied")


def test_a_refusal_without_a_readable_body_still_has_its_status() -> None:
    answer = (FIXTURES / "refused_etag.http").read_text().replace("\r\n", "\n")
    cut = answer.replace('{"odata.error"', "not json {")
    assert first_refusal(cut) == (412, "")
