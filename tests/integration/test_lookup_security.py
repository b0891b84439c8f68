"""Hostile input against the lookup functions, called the way the host calls them, on a real Azurite.

The functions come from `function_app.app.get_functions()` (read once per session by `app_harness`)
and get `func.HttpRequest` values. Injection attempts, path traversal, bad limits and forged
continuation tokens must get 400 with a reason and never reach a query; stored hostile text must come
back escaped in the HTML page and as JSON (`application/json`) in the API; nothing answers 500.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import azure.functions as func
import pytest

from failover.adapters.table_store import TableStore
from failover.config import Secret, Settings
from failover.model import Cause, SignalKind, Source
from failover.service import Responder
from failover.wiring import Runtime
from handlers._runtime import set_runtime
from tests.builders import T0, signal
from tests.conftest import FakeClock
from tests.integration import app_harness as app

pytestmark = pytest.mark.integration

SERVER = "pg-sec-01"
SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '" onmouseover="alert(2)'
INJECTIONS = (
    "pg-sec-01' or PartitionKey ne '",
    "' or ''='",
    "pg-sec-01 or RowKey ne ''",
    "PartitionKey ne ''",
    "pg-sec-01')",
    "pg-sec-01%27%20or%20true",
    "PG-SEC-01",
    "pg-sec-01\n",
    "x" * 64,
)


@pytest.fixture(scope="module")
def runtime(azurite: str) -> Iterator[Runtime]:
    table = f"sec{uuid.uuid4().hex[:12]}"
    clock = FakeClock(T0 + timedelta(minutes=20))
    installed = app.install({"AzureWebJobsStorage": azurite, "FAILOVER_TABLE": table}, clock=clock)
    installed.responder.record_all(
        [
            replace(
                signal(SignalKind.FAILOVER_STARTED, 0, server=SERVER, cause=Cause.PLANNED, confidence=3),
                summary=f"restart with failover started by {SCRIPT} {ATTRIBUTE}",
            ),
            signal(SignalKind.WRITE_UNAVAILABLE, 5, server=SERVER, source=Source.DB_PROBE),
            signal(
                SignalKind.WRITE_RESTORED,
                12,
                server=SERVER,
                source=Source.DB_PROBE,
                details={"downtime_seconds": 7.0},
            ),
            signal(SignalKind.HEALTH_AVAILABLE, 30, server=SERVER),
        ]
    )
    yield installed
    set_runtime(None)
    installed.store._client.delete_table()


@pytest.fixture(scope="module")
def incident_id(runtime: Runtime) -> str:
    state, _ = runtime.store.read_state(SERVER)
    assert state is not None and state.records
    return state.records[-1].incident_id


def call(
    name: str, *, params: dict[str, str] | None = None, route: dict[str, str] | None = None
) -> func.HttpResponse:
    path = "/".join((route or {}).values())
    request = func.HttpRequest(
        "GET",
        f"http://localhost:7071/api/{name}/{path}",
        headers={},
        params=params or {},
        route_params=route or {},
        body=b"",
    )
    response: func.HttpResponse = app.call(name, req=request)
    return response


def body(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


def assert_refused(response: func.HttpResponse, *, hostile: str = "") -> None:
    assert response.status_code == 400, response.get_body()
    assert response.mimetype == "application/json"
    reason = body(response)["error"]
    assert isinstance(reason, str) and reason
    if hostile:
        assert hostile not in reason  # reasons never echo the input back


# --- injection -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", INJECTIONS)
def test_filter_injection_in_server_is_refused(runtime: Runtime, value: str) -> None:
    trips = runtime.store.round_trips
    assert_refused(call("list_incidents", params={"server": value}), hostile=value)
    assert_refused(call("get_server", route={"server": value}), hostile=value)
    assert runtime.store.round_trips == trips  # refused before any query


@pytest.mark.parametrize(
    "params",
    [
        {"status": "open' or status ne '"},
        {"status": "open or true"},
        {"status": "OPEN"},
        {"status": "PartitionKey ne ''"},
        {"since": "2026-11-25T00:00:00Z' or '1'='1"},
        {"since": "PartitionKey ne ''"},
        {"until": "2026-11-25T00:00:00Z or RowKey ne ''"},
        {"since": "2026-11-25T00:00:00"},  # naive: refused
        {"since": "2026-13-45T00:00:00Z"},
        {"since": "0001-01-01T00:00:00+01:00"},
        {"since": "2026-11-26T00:00:00Z", "until": "2026-11-25T00:00:00Z"},
        {"since": "2024-01-01T00:00:00Z", "until": "2026-11-25T00:00:00Z"},  # over 366 days across servers
    ],
)
def test_bad_status_and_times_are_refused(runtime: Runtime, params: dict[str, str]) -> None:
    assert_refused(call("list_incidents", params=params))


@pytest.mark.parametrize(
    "value",
    [
        "../state",
        "..%2f..%2fstate",
        "%2e%2e",
        "%2e%2e%2fstate",
        "pg~1/../x",
        "pg-sec-01~20261125T071602Z/../state",
        "pg-sec-01~20261125T071602Z\n",
        "pg-sec-01~20261125T071602Z' or ''='",
        "pg-sec-01~20261399T071602Z",
        "state",
        "pg-sec-01~",
        "",
    ],
)
def test_path_traversal_in_incident_ids_is_refused(runtime: Runtime, value: str) -> None:
    for name in ("get_incident", "get_incident_timeline"):
        assert_refused(call(name, route={"incident_id": value}), hostile=value if len(value) > 3 else "")


@pytest.mark.parametrize("limit", ["0", "201", "-1", "1e9", "abc", "5.0", " 5", "0x10", "99999", "+5"])
def test_bad_limits_are_refused(runtime: Runtime, limit: str) -> None:
    assert_refused(call("list_incidents", params={"server": SERVER, "limit": limit}))


# --- continuation tokens -------------------------------------------------------------------------


def _token(params: dict[str, str]) -> str:
    response = call("list_incidents", params={**params, "limit": "1"})
    assert response.status_code == 200
    token = body(response)["continuation"]
    assert isinstance(token, str)
    return token


def _altered(token: str, position: int) -> str:
    head, mac = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    raw[position % len(raw)] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=") + "." + mac


def test_continuation_tokens_work_for_their_own_query(runtime: Runtime) -> None:
    params = {"since": "2026-11-20T00:00:00Z", "until": "2026-11-26T00:00:00Z"}
    token = _token({"server": SERVER})
    response = call("list_incidents", params={"server": SERVER, "limit": "1", "continuation": token})
    assert response.status_code == 200
    token = _token(params)
    assert call("list_incidents", params={**params, "continuation": token}).status_code == 200


def test_forged_and_borrowed_tokens_are_refused(runtime: Runtime) -> None:
    server_token = _token({"server": SERVER})
    day_params = {"since": "2026-11-20T00:00:00Z", "until": "2026-11-26T00:00:00Z"}
    day_token = _token(day_params)
    forged = [
        secrets.token_urlsafe(40),
        secrets.token_urlsafe(30) + "." + secrets.token_urlsafe(32),
        base64.urlsafe_b64encode(b'{"v":1,"m":"server","rk":"incident~00000000000000"}').decode().rstrip("=")
        + "."
        + "A" * 43,
        _altered(server_token, 5),
        _altered(server_token, -3),
        server_token[:-1] + ("A" if server_token[-1] != "A" else "B"),
        "x" * 5000,
    ]
    for token in forged:
        assert_refused(call("list_incidents", params={"server": SERVER, "continuation": token}))
    # a real token replayed for another query
    assert_refused(
        call("list_incidents", params={"server": SERVER, "status": "open", "continuation": server_token})
    )
    assert_refused(call("list_incidents", params={"server": "pg-sec-02", "continuation": server_token}))
    assert_refused(call("list_incidents", params={**day_params, "continuation": server_token}))
    assert_refused(call("list_incidents", params={"server": SERVER, "continuation": day_token}))
    other_window = {**day_params, "since": "2026-11-21T00:00:00Z"}
    assert_refused(call("list_incidents", params={**other_window, "continuation": day_token}))


def test_tokens_from_another_deployment_are_refused(runtime: Runtime) -> None:
    from failover import lookups

    other = replace(runtime.settings, continuation_secret=None)
    other = replace(other, storage_connection=Secret("AccountName=elsewhere"))
    query = lookups.parse_query(server=SERVER)
    token = lookups.ContinuationSigner(other).sign(query, {"m": "server", "rk": "incident~00000000000000"})
    assert_refused(call("list_incidents", params={"server": SERVER, "continuation": token}))


# --- output encoding -----------------------------------------------------------------------------


def test_stored_markup_is_escaped_in_the_html_page(runtime: Runtime, incident_id: str) -> None:
    response = call("get_incident_timeline", route={"incident_id": incident_id})
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.charset == "utf-8"
    headers = response.headers
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    page = response.get_body().decode("utf-8")
    assert SCRIPT not in page
    assert ATTRIBUTE not in page
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#34; onmouseover=&#34;alert(2)" in page  # Jinja2 autoescape spells a quote &#34;


def test_json_answers_are_json_and_carry_the_text_verbatim(runtime: Runtime, incident_id: str) -> None:
    response = call("get_incident", route={"incident_id": incident_id})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    incident = body(response)
    assert any(SCRIPT in e["summary"] for e in incident["timeline"])
    assert incident["write_downtime_seconds"] == 7.0
    listing = call("list_incidents", params={"server": SERVER})
    assert listing.mimetype == "application/json"
    assert [i["incident_id"] for i in body(listing)["incidents"]] == [incident_id]
    server = call("get_server", route={"server": SERVER})
    assert server.status_code == 200
    assert body(server)["recent_incident_ids"] == [incident_id]


def test_unknown_things_are_404(runtime: Runtime) -> None:
    for name, route in (
        ("get_incident", {"incident_id": "pg-sec-01~20200101T000000Z"}),
        ("get_incident_timeline", {"incident_id": "pg-nobody~20261125T071602Z"}),
        ("get_server", {"server": "pg-nobody"}),
    ):
        response = call(name, route=route)
        assert response.status_code == 404, name
        assert "error" in body(response)


def test_storage_down_answers_503_not_500(runtime: Runtime, incident_id: str) -> None:
    dead = TableStore.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "TableEndpoint=http://127.0.0.1:9/devstoreaccount1",
        "nowhere",
    )
    settings: Settings = runtime.settings
    set_runtime(Runtime(settings=settings, store=dead, responder=Responder(store=dead, clock=runtime.clock)))
    try:
        for name, kwargs in (
            ("list_incidents", {"params": {"server": SERVER}}),
            ("get_incident", {"route": {"incident_id": incident_id}}),
            ("get_server", {"route": {"server": SERVER}}),
        ):
            response = call(name, **kwargs)
            assert response.status_code == 503, name
            assert body(response)["error"] == "storage is unavailable, retry later"
    finally:
        set_runtime(runtime)
