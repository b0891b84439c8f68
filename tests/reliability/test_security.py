"""Security through the local runner over HTTP: keys on every route, no secret anywhere, early 413.

- Every route the app registers (read from the served host, so a new route is covered the day it
  is added) and the Event Grid webhook refuse a missing or wrong function key with 401.
- The secrets (Teams webhook URL and its `sig`, the storage account key, the Redis password, the
  function key, the continuation-token secret) never appear in log records (caplog, every logger at
  DEBUG), in Table entities (the whole table is scanned) or in HTTP responses, while things go
  wrong: Teams refusing and echoing its URL, Redis down, storage down.
- An oversized alert is refused with 413 before the parser runs (declared and chunked bodies).
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import secrets
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
import requests

import failover.sources.monitor
from failover.adapters.table_store import TableStore
from failover.sources.monitor import MAX_ALERT_BYTES, parse_alert
from handlers._runtime import set_runtime
from local.services import AZURITE_ACCOUNT, AZURITE_KEY, free_port
from local.teams_sink import SinkResponse, TeamsSink
from tests.conftest import AZURITE_PORT, FakeClock
from tests.integration.redis_fixtures import RedisServer
from tests.payloads import load
from tests.reliability.stack import EVENT_GRID_PATH, KEY_HEADER, Served, install_runtime, send_all
from tests.reliability.workload import T0, zone_outage

pytestmark = pytest.mark.integration

SAMPLE = {
    "incident_id": "pg-prod-01~20261125T071602Z",
    "server": "pg-prod-01",
    "digest_id": "westeurope~20261125T071602Z",
}


def _explicit_connection_string(port: int) -> str:
    """Azurite addressed with its account key spelled out, so there is a key that must not leak."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    )


@pytest.fixture
def served(azurite: str, table_name: str) -> Iterator[Served]:
    runtime = install_runtime({"AzureWebJobsStorage": azurite, "FAILOVER_TABLE": table_name})
    with Served() as app:
        yield app
    runtime.store._client.delete_table()


def _raw(
    app: Served, method: str, target: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes]:
    """A request with the target sent as given (http.client logs nothing, so caplog sees only the app)."""
    connection = http.client.HTTPConnection("127.0.0.1", app.host.port, timeout=30)
    try:
        connection.request(method, target, body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _targets(app: Served) -> list[tuple[str, str, dict[str, str], bytes]]:
    """(method, path, headers, body) for every HTTP route the app registers, plus the Event Grid webhook."""
    found = []
    for template, methods, _name in app.host.routes():
        path = "/" + template
        for name, value in SAMPLE.items():
            path = path.replace("{" + name + "}", quote(value, safe=""))
        assert "{" not in path, f"add a sample value for {path}"
        for method in sorted(methods):
            body = (
                json.dumps(load("monitor/resource_health_degraded_unplanned.json")).encode()
                if method == "POST"
                else b""
            )
            found.append((method, path, {"Content-Type": "application/json"}, body))
    found.append(
        (
            "POST",
            EVENT_GRID_PATH,
            {"Content-Type": "application/json", "aeg-event-type": "Notification"},
            json.dumps(load("event_grid/resource_action_success_restart.json")).encode(),
        )
    )
    found.append(
        (
            "POST",
            EVENT_GRID_PATH,
            {"Content-Type": "application/json", "aeg-event-type": "SubscriptionValidation"},
            json.dumps(load("event_grid/subscription_validation.json")).encode(),
        )
    )
    return found


def test_every_route_refuses_a_missing_or_wrong_key(served: Served) -> None:
    targets = _targets(served)
    assert {t[1].split("?")[0] for t in targets} >= {"/api/alerts", "/api/health", "/api/incidents"}
    wrong_keys = ["", "x", served.key[:-1], served.key + "x", served.key.upper(), " " + served.key, "null"]
    refused = 0
    for method, path, headers, body in targets:
        joiner = "&" if "?" in path else "?"
        attempts: list[tuple[str, dict[str, str]]] = [(path, headers)]  # no key at all
        for wrong in wrong_keys:
            if wrong.strip() != served.key:  # HTTP strips a header value's surrounding spaces
                attempts.append((path, {**headers, KEY_HEADER: wrong}))
            attempts.append((f"{path}{joiner}code={quote(wrong, safe='')}", headers))
        # the header wins over the query parameter, as in the Functions host
        attempts.append(
            (f"{path}{joiner}code={quote(served.key, safe='')}", {**headers, KEY_HEADER: "wrong"})
        )
        for target, sent in attempts:
            status, answer = _raw(served, method, target, sent, body)
            assert status == 401, f"{method} {target} with {sent.get(KEY_HEADER)!r}: {status}"
            assert served.key.encode() not in answer
            refused += 1
        status, _ = _raw(served, method, path, {**headers, KEY_HEADER: served.key}, body)
        assert status != 401, f"{method} {path} refused the right key"
        status, _ = _raw(served, method, f"{path}{joiner}code={quote(served.key, safe='')}", headers, body)
        assert status != 401, f"{method} {path} refused the right key in ?code="
    assert refused >= 15 * len(targets)


# --- no secret anywhere ------------------------------------------------------------------------


class Evidence:
    """Every text the app produced: responses (bodies and headers), log records, table entities."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def add(self, where: str, text: str) -> None:
        with self.lock:
            self.texts.append((where, text))

    def response(self, response: requests.Response) -> None:
        self.add(f"response {response.request.method} {response.status_code}", response.text)
        self.add("response headers", json.dumps(dict(response.headers)))


def test_secrets_never_appear_in_logs_entities_or_responses(
    azurite: str, table_name: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    redis_password = "rp-" + secrets.token_urlsafe(18)
    continuation_secret = "cs-" + secrets.token_urlsafe(18)
    storage = _explicit_connection_string(AZURITE_PORT)
    evidence = Evidence()
    with TeamsSink() as sink, RedisServer(password=redis_password) as redis_server:
        # Teams refuses a card and echoes the URL, then fails a few times: errors are stored and logged
        sink.script(
            [
                SinkResponse(400, body=f"bad card for {sink.url}"),
                500,
                500,
                500,
                SinkResponse(429, {"Retry-After": "0"}),
            ]
        )
        clock = FakeClock(T0 + timedelta(minutes=10))
        env = {
            "AzureWebJobsStorage": storage,
            "FAILOVER_TABLE": table_name,
            "REDIS_URL": redis_server.url,
            "TEAMS_WEBHOOK_URL": sink.url,
            "CONTINUATION_SECRET": continuation_secret,
            "PUBLIC_BASE_URL": "https://pgfailover.example.net",
        }
        runtime = install_runtime(env, clock)
        with Served() as app:
            secrets_ = {
                "teams url": sink.url,
                "teams sig": sink.secret,
                "storage key": AZURITE_KEY,
                "redis password": redis_password,
                "function key": app.key,
                "continuation secret": continuation_secret,
            }
            workload = zone_outage(6, prefix="pg-secret", seed=8)
            half = len(workload.deliveries) // 2
            for sent in send_all(app, workload.deliveries[:half], workers=4):
                evidence.add(f"response {sent.status}", json.dumps(sent.body))
            redis_server.stop()  # Redis errors get logged and stored
            for sent in send_all(app, workload.deliveries[half:], workers=4):
                evidence.add(f"response {sent.status}", json.dumps(sent.body))
            clock.advance(1800)
            runtime.responder.sweep(limit=1000)  # resolutions publish to the Redis that is down
            redis_server.start()
            clock.advance(3600)
            runtime.responder.sweep(limit=1000)
            _read_everything(app, workload.servers, evidence)
            status, body = _raw(
                app, "GET", f"/api/incidents?server=pg-secret-000&limit=1&code={quote(app.key)}", {}
            )
            evidence.add(f"response {status} (key in ?code=)", body.decode())
            for entity in runtime.store._client.list_entities():
                evidence.add(
                    f"entity {entity['PartitionKey']}/{entity['RowKey']}",
                    json.dumps(dict(entity), default=str),
                )

            runtime.store._client.delete_table()
            # storage goes away: the 503 answers and the SDK's logs must not carry the account key,
            # both for a worker whose storage dies under it and for a cold worker that cannot start
            dead = dict(env, AzureWebJobsStorage=_explicit_connection_string(free_port()))
            with monkeypatch.context() as patch:
                patch.setattr(TableStore, "ensure_table", lambda self: None)
                install_runtime(dead, clock)
            unavailable = _storage_down_answers(app, evidence)
            for name, value in dead.items():
                monkeypatch.setenv(name, value)
            set_runtime(None)  # the next invocation builds the runtime from the environment, and fails
            unavailable += _storage_down_answers(app, evidence)
            set_runtime(None)
            assert unavailable == [503] * 8

    for record in caplog.records:
        evidence.add(f"log {record.name}", record.getMessage())
        if record.exc_info:
            evidence.add(f"log {record.name} exception", logging.Formatter().formatException(record.exc_info))
        if record.exc_text:
            evidence.add(f"log {record.name} exception", record.exc_text)
    evidence.add("caplog", caplog.text)
    texts = "\n".join(t for _, t in evidence.texts)
    # the bad days really happened, so there were secrets to leak
    assert "refused the message with 400" in texts and "answered 500" in texts
    assert re.search(r"redis (unreachable|timed out|could not serve|failed)", texts), "redis was down"
    assert "storage is unavailable" in texts
    assert len(caplog.records) > 50 and any(w.startswith("entity") for w, _ in evidence.texts)
    leaks = [
        (name, where, text[:200])
        for name, secret in secrets_.items()
        for where, text in evidence.texts
        for form in {secret, quote(secret, safe=""), json.dumps(secret)[1:-1]}
        if form in text
    ]
    assert not leaks, leaks[:10]


def _storage_down_answers(app: Served, evidence: Evidence) -> list[int]:
    statuses = []
    for path in ("/api/health", "/api/incidents?server=pg-secret-000", "/api/servers/pg-secret-000"):
        response = app.request("GET", path)
        evidence.response(response)
        statuses.append(response.status_code)
    response = app.post_alert(load("monitor/resource_health_degraded_unplanned.json"))
    evidence.response(response)
    return [*statuses, response.status_code]


def _read_everything(app: Served, servers: list[str], evidence: Evidence) -> None:
    for path in ("/api/health", "/api/incidents", "/api/incidents?limit=1", "/api/incidents?since=bad"):
        evidence.response(app.request("GET", path))
    for server in servers:
        listing = app.request("GET", f"/api/incidents?server={server}&limit=1")
        evidence.response(listing)
        evidence.response(app.request("GET", f"/api/servers/{server}"))
        token = listing.json().get("continuation")
        if token:
            evidence.response(
                app.request("GET", f"/api/incidents?server={server}&limit=1&continuation={token}")
            )
        for incident in listing.json()["incidents"]:
            incident_id = quote(incident["incident_id"], safe="")
            evidence.response(app.request("GET", f"/api/incidents/{incident_id}"))
            evidence.response(app.request("GET", f"/api/incidents/{incident_id}/timeline"))


# --- oversized bodies ----------------------------------------------------------------------------


@pytest.fixture
def counted_parser(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = parse_alert

    def counting(payload: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(payload, **kwargs)

    monkeypatch.setattr(failover.sources.monitor, "parse_alert", counting)
    return calls


def test_oversized_alerts_are_refused_before_they_are_parsed(
    served: Served, counted_parser: list[int]
) -> None:
    payload = load("monitor/resource_health_degraded_unplanned.json")
    text = json.dumps(payload)
    padded = text[:-1] + ', "padding": "' + "x" * (MAX_ALERT_BYTES - len(text)) + '"}'
    oversized = padded.encode()
    assert len(oversized) > MAX_ALERT_BYTES
    declared = served.request(
        "POST", "/api/alerts", body=oversized, headers={"Content-Type": "application/json"}
    )
    assert declared.status_code == 413 and declared.json()["error"]
    chunked = served.session().post(
        served.url + "/api/alerts",
        data=(oversized[i : i + 8192] for i in range(0, len(oversized), 8192)),  # no Content-Length
        headers={KEY_HEADER: served.key, "Content-Type": "application/json"},
        timeout=30,
    )
    assert chunked.request.headers.get("Transfer-Encoding") == "chunked"
    assert chunked.status_code == 413
    huge = served.request("POST", "/api/alerts", body=b"[" * (4 * MAX_ALERT_BYTES), headers={})
    assert huge.status_code == 413
    assert counted_parser == [], "the parser ran on an oversized body"
    fits = (text[:-1] + ', "padding": "' + "x" * (MAX_ALERT_BYTES - len(text) - 20) + '"}').encode()
    assert len(fits) <= MAX_ALERT_BYTES
    assert served.request("POST", "/api/alerts", body=fits).status_code == 202
    assert counted_parser == [1]  # the counter does see the parser run
