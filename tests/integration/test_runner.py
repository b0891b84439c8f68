"""The local Functions runner (local/runner.py), over real HTTP on loopback.

The sample app in runner_app/function_app_sample.py declares every trigger shape the runner serves.
Every wait is bounded; the whole file runs in a few seconds.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.message import Message
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from local.runner import ALL_HTTP_METHODS, FunctionHost, next_fire
from tests.integration.runner_app.function_app_sample import Recorder, build_app

KEY = "k-" + secrets.token_hex(16)
REPO_ROOT = Path(__file__).resolve().parents[2]
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(
    url: str, *, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _NO_PROXY.open(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def wait_for(condition: threading.Event, seconds: float = 5.0) -> bool:
    return condition.wait(seconds)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FunctionHost, Recorder]]:
    app, rec = build_app()
    host = FunctionHost(app, function_key=KEY, port=0, run_timers=False)
    host.start()
    try:
        yield host, rec
    finally:
        host.stop()


@pytest.fixture
def base(served: tuple[FunctionHost, Recorder]) -> str:
    return served[0].base_url


@pytest.fixture
def rec(served: tuple[FunctionHost, Recorder]) -> Recorder:
    served[1].events.clear()
    return served[1]


# ---- routes ------------------------------------------------------------------------------------


def declared_http_routes() -> list[tuple[str, str, frozenset[str]]]:
    """(function name, route, methods) straight from get_functions() of a fresh twin of the sample app."""
    twin, _ = build_app()  # same decorators, fresh app: get_functions() works once per app
    routes = []
    for f in twin.get_functions():
        t: Any = f.get_trigger()
        if t.type == "httpTrigger":
            methods = (
                frozenset(str(getattr(m, "value", m)) for m in t.methods) if t.methods else ALL_HTTP_METHODS
            )
            routes.append((str(f.get_function_name()), str(t.route), methods))
    return routes


def test_routes_served_are_the_routes_the_app_declares(served: tuple[FunctionHost, Recorder]) -> None:
    declared = {("api/" + route, methods, name) for name, route, methods in declared_http_routes()}
    host = served[0]
    assert len(host.routes()) == len(declared) == 6
    assert set(host.routes()) == declared


def test_every_declared_route_answers(base: str) -> None:
    for _, route, methods in declared_http_routes():
        path = re.sub(r"\{[^}]*\}", "1", route)
        method = "POST" if "POST" in methods else sorted(methods)[0]
        status, _, _ = call(
            f"{base}/api/{path}",
            method=method,
            body=b"{}" if method == "POST" else None,
            headers={"x-functions-key": KEY},
        )
        assert status not in (401, 404, 405), (route, method, status)


def test_unknown_path_is_404(base: str) -> None:
    assert call(f"{base}/api/nope", headers={"x-functions-key": KEY})[0] == 404
    assert call(f"{base}/api/incidents", headers={"x-functions-key": KEY})[0] == 404
    # Never a redirect: Werkzeug would merge the slashes and answer 308.
    assert call(f"{base}/api/incidents/x//timeline", headers={"x-functions-key": KEY})[0] == 404
    assert call(f"{base}/alerts", method="POST", body=b"{}", headers={"x-functions-key": KEY})[0] == 404


def test_wrong_method_is_405_with_allow(base: str) -> None:
    status, headers, _ = call(f"{base}/api/alerts", headers={"x-functions-key": KEY})
    assert status == 405
    assert headers["Allow"] == "POST"
    # Only the declared methods: Werkzeug's implicit HEAD-for-GET is not served.
    assert call(f"{base}/api/incidents/1", method="HEAD", headers={"x-functions-key": KEY})[0] == 405


def test_route_params_query_and_url_reach_the_function(base: str) -> None:
    status, _, body = call(f"{base}/api/incidents/inc%2042?x=1&x=2&empty=&code={KEY}")
    assert status == 200
    got = json.loads(body)
    assert got["route_params"] == {"incident_id": "inc 42"}
    assert got["params"] == {"x": "1", "empty": "", "code": KEY}  # first value per key, as the host
    assert got["method"] == "GET"
    assert got["url"].startswith(f"{base}/api/incidents/inc%2042?")


def test_trailing_slash_is_accepted(base: str) -> None:
    assert call(f"{base}/api/health/")[0] == 200


# ---- auth --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, query",
    [
        ({}, ""),
        ({"x-functions-key": "wrong"}, ""),
        ({}, "?code=wrong"),
        ({"x-functions-key": ""}, ""),
        ({"x-functions-key": KEY[:-1]}, ""),
    ],
)
def test_function_route_without_the_right_key_is_401(base: str, headers: dict[str, str], query: str) -> None:
    status, _, body = call(f"{base}/api/alerts{query}", method="POST", body=b"{}", headers=headers)
    assert status == 401
    assert KEY.encode() not in body
    assert body == b""


@pytest.mark.parametrize("headers, query", [({"x-functions-key": KEY}, ""), ({}, f"?code={KEY}")])
def test_function_route_with_the_key_in_header_or_code_param(
    base: str, headers: dict[str, str], query: str
) -> None:
    status, _, _ = call(f"{base}/api/alerts{query}", method="POST", body=b"{}", headers=headers)
    assert status == 202


ALERTS_KEY = "alerts-" + secrets.token_hex(16)
READ_KEY = "read-" + secrets.token_hex(16)


def test_a_function_key_opens_only_its_own_functions() -> None:
    """The action group holds a key for POST /api/alerts only; readers hold one for the read routes."""
    app, _ = build_app(fast_timers=False)
    keys = {"post_alert": ALERTS_KEY, "get_incident": READ_KEY, "GET_TIMELINE": READ_KEY}
    host = FunctionHost(app, function_key=KEY, function_keys=keys, port=0, run_timers=False)
    host.start()
    try:
        base = host.base_url

        def status(path: str, key: str, method: str = "GET") -> int:
            body = b"{}" if method == "POST" else None
            return call(f"{base}{path}", method=method, body=body, headers={"x-functions-key": key})[0]

        assert status("/api/alerts", ALERTS_KEY, "POST") == 202
        assert call(f"{base}/api/alerts?code={ALERTS_KEY}", method="POST", body=b"{}")[0] == 202
        assert status("/api/incidents/x", ALERTS_KEY) == 401
        assert status("/api/incidents/x/timeline", ALERTS_KEY) == 401
        assert status("/api/incidents/x", READ_KEY) == 200
        assert status("/api/incidents/x/timeline", READ_KEY) == 200
        assert status("/api/alerts", READ_KEY, "POST") == 401
        for path, method in [("/api/alerts", "POST"), ("/api/incidents/x", "GET")]:
            assert status(path, KEY, method) == (200 if method == "GET" else 202)  # the host key opens all
        event_grid = "/runtime/webhooks/eventgrid?functionName=on_resource_event"
        headers = {"x-functions-key": ALERTS_KEY, "aeg-event-type": "Notification"}
        assert call(f"{base}{event_grid}", method="POST", body=b"[]", headers=headers)[0] == 401
    finally:
        host.stop()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"no_such_function": "k"}, "not an HTTP function"),
        ({"tick": "k"}, "not an HTTP function"),
        ({"post_alert": ""}, "empty"),
    ],
)
def test_function_keys_must_name_http_functions_and_not_be_empty(keys: dict[str, str], message: str) -> None:
    app, _ = build_app(fast_timers=False)
    with pytest.raises(ValueError, match=message):
        FunctionHost(app, function_key=KEY, function_keys=keys, port=0, run_timers=False)


def test_anonymous_route_needs_no_key(base: str) -> None:
    status, _, body = call(f"{base}/api/health")
    assert (status, body) == (200, b"ok")


# ---- responses ---------------------------------------------------------------------------------


def test_status_headers_and_content_type_are_mapped_back(base: str) -> None:
    status, headers, body = call(
        f"{base}/api/alerts",
        method="POST",
        body=b'{"severity": 2}',
        headers={"x-functions-key": KEY, "Content-Type": "application/json"},
    )
    assert status == 202
    assert json.loads(body) == {"got": {"severity": 2}}
    assert headers["X-Extra"] == "1"
    assert headers["Set-Cookie"] == "a=1"
    # As the Python worker encodes HttpResponse: charset only for text/* mimetypes.
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(body))

    status, headers, body = call(f"{base}/api/incidents/i-1/timeline", headers={"x-functions-key": KEY})
    assert (status, body) == (200, b"<h1>i-1</h1>")
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-store"


def test_user_exception_is_500_without_details(base: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="local.runner")
    status, _, body = call(f"{base}/api/boom")
    assert status == 500
    assert b"sensitive" not in body and b"Traceback" not in body and b"RuntimeError" not in body
    failed = [r for r in caplog.records if r.getMessage() == "function boom failed"]
    assert failed and failed[0].exc_info is not None


def test_a_return_value_that_is_not_a_response_is_500(base: str) -> None:
    status, _, body = call(f"{base}/api/not-a-response")
    assert (status, body) == (500, b"")


def test_body_over_the_cap_is_413() -> None:
    app, _ = build_app(fast_timers=False)
    host = FunctionHost(app, function_key=KEY, port=0, run_timers=False, max_body_bytes=16)
    host.start()
    try:
        url = f"{host.base_url}/api/alerts"
        assert call(url, method="POST", body=b'{"a": "0123456"}', headers={"x-functions-key": KEY})[0] == 202
        assert call(url, method="POST", body=b'{"a": "01234567"}', headers={"x-functions-key": KEY})[0] == 413
        eg = f"{host.base_url}/runtime/webhooks/eventgrid?functionName=on_resource_event"
        status, _, _ = call(
            eg,
            method="POST",
            body=b"[" + b" " * 32 + b"]",
            headers={"x-functions-key": KEY, "aeg-event-type": "Notification"},
        )
        assert status == 413
    finally:
        host.stop()


def test_the_key_never_reaches_the_logs(base: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    call(f"{base}/api/incidents/1?code={KEY}&x=1")
    call(f"{base}/api/alerts?code=wrong-{KEY}", method="POST", body=b"{}")
    call(f"{base}/api/incidents/1", headers={"x-functions-key": KEY})
    assert any("/api/incidents/1" in r.getMessage() for r in caplog.records)
    assert KEY not in caplog.text
    assert "code=" not in caplog.text


# ---- Event Grid --------------------------------------------------------------------------------


def eg_url(base: str, name: str = "on_resource_event", path: str = "/runtime/webhooks/eventgrid") -> str:
    return f"{base}{path}?functionName={name}"


def eg_event(event_id: str, **data: object) -> dict[str, object]:
    return {
        "id": event_id,
        "topic": "/subscriptions/s/resourceGroups/rg",
        "subject": "/x/servers/pg1",
        "eventType": "Microsoft.Resources.ResourceActionSuccess",
        "eventTime": "2024-05-01T12:00:00.1234567Z",
        "data": data,
        "dataVersion": "2",
    }


def post_events(
    url: str, payload: object, kind: str = "Notification", key: str | None = KEY
) -> tuple[int, bytes]:
    headers = {"aeg-event-type": kind, "Content-Type": "application/json"}
    if key is not None:
        headers["x-functions-key"] = key
    status, _, body = call(url, method="POST", body=json.dumps(payload).encode(), headers=headers)
    return status, body


def test_subscription_validation_handshake(base: str, rec: Recorder) -> None:
    validation = {
        "id": "v1",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "subject": "",
        "eventTime": "2024-05-01T12:00:00Z",
        "dataVersion": "2",
        "data": {
            "validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
            "validationUrl": "https://example.invalid/validate",
        },
    }
    for path in ("/runtime/webhooks/eventgrid", "/runtime/webhooks/EventGrid"):
        status, body = post_events(eg_url(base, path=path), [validation], kind="SubscriptionValidation")
        assert status == 200
        assert json.loads(body) == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    assert rec.events == []  # the handshake never reaches the function
    assert post_events(eg_url(base), [eg_event("e1")], kind="SubscriptionValidation")[0] == 400


def test_notification_invokes_once_per_event(base: str, rec: Recorder) -> None:
    status, _ = post_events(eg_url(base), [eg_event("e1", n=1), eg_event("e2", n=2), eg_event("e3", n=3)])
    assert status == 202
    assert [e.id for e in rec.events] == ["e1", "e2", "e3"]
    first = rec.events[0]
    assert isinstance(first, func.EventGridEvent)
    assert first.get_json() == {"n": 1}
    assert first.event_type == "Microsoft.Resources.ResourceActionSuccess"
    assert first.subject == "/x/servers/pg1"
    assert first.topic == "/subscriptions/s/resourceGroups/rg"
    assert first.data_version == "2"
    assert first.event_time == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def test_notification_single_object_and_missing_fields(base: str, rec: Recorder) -> None:
    assert post_events(eg_url(base), eg_event("solo"))[0] == 202
    assert post_events(eg_url(base), [{"id": "bare"}])[0] == 202  # the function judges malformed events
    assert [e.id for e in rec.events] == ["solo", "bare"]
    assert rec.events[1].event_time is None and rec.events[1].event_type is None


def test_notification_with_a_failing_event_is_500_and_delivers_all(base: str, rec: Recorder) -> None:
    status, _ = post_events(eg_url(base), [eg_event("ok1"), eg_event("bad", fail=True), eg_event("ok2")])
    assert status == 500
    assert [e.id for e in rec.events] == ["ok1", "bad", "ok2"]


def test_function_name_is_matched_case_insensitively(base: str, rec: Recorder) -> None:
    assert post_events(eg_url(base, "ON_RESOURCE_EVENT"), [eg_event("e")])[0] == 202


@pytest.mark.parametrize("key", [None, "wrong", ""])
def test_event_grid_webhook_needs_the_key(base: str, rec: Recorder, key: str | None) -> None:
    status, body = post_events(eg_url(base), [eg_event("e")], key=key)
    assert (status, body) == (401, b"")
    assert rec.events == []


def test_event_grid_webhook_accepts_the_code_param(base: str, rec: Recorder) -> None:
    status, _ = post_events(eg_url(base) + f"&code={KEY}", [eg_event("e")], key=None)
    assert status == 202


def test_event_grid_webhook_errors(base: str, rec: Recorder) -> None:
    headers = {"x-functions-key": KEY, "aeg-event-type": "Notification"}
    assert post_events(eg_url(base, "nope"), [eg_event("e")])[0] == 404
    assert post_events(f"{base}/runtime/webhooks/eventgrid", [eg_event("e")])[0] == 404
    assert call(eg_url(base), method="POST", body=b"[{not json", headers=headers)[0] == 400
    assert post_events(eg_url(base), [1, 2])[0] == 400
    assert post_events(eg_url(base), [eg_event("e")], kind="")[0] == 400
    assert post_events(eg_url(base), [eg_event("e")], kind="Whatever")[0] == 400
    assert post_events(eg_url(base), [eg_event("e")], kind="Unsubscribe")[0] == 202
    assert call(eg_url(base), headers=headers)[0] == 405
    deep = b"[" * 50_000 + b"]" * 50_000  # deeper than Python's decoder reads: 400, not 500
    assert call(eg_url(base), method="POST", body=deep, headers=headers)[0] == 400
    assert rec.events == []


# ---- timers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def timers() -> Iterator[tuple[FunctionHost, Recorder]]:
    app, rec = build_app(fast_timers=True)
    host = FunctionHost(app, function_key=KEY, port=0, run_timers=True)
    host.start()
    try:
        yield host, rec
    finally:
        rec.slow_release.set()
        host.stop()


def test_timer_fires_on_its_schedule(timers: tuple[FunctionHost, Recorder]) -> None:
    _, rec = timers
    assert wait_for(rec.tick_fired), "*/1 timer did not fire within 5 s"
    assert rec.tick_past_due[0] is False


def test_run_on_startup(timers: tuple[FunctionHost, Recorder]) -> None:
    assert wait_for(timers[1].startup_fired), "run_on_startup timer (yearly schedule) did not run"


def test_a_failing_timer_does_not_stop_the_scheduler(timers: tuple[FunctionHost, Recorder]) -> None:
    assert wait_for(timers[1].flaky_recovered), "the timer did not run again after raising"


def test_a_timer_never_overlaps_itself(
    timers: tuple[FunctionHost, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    host, rec = timers
    caplog.set_level(logging.INFO, logger="local.runner")
    assert wait_for(rec.slow_entered)
    manual = threading.Thread(target=host.run_timer_now, args=("slow",))
    manual.start()
    time.sleep(1.3)  # at least one tick falls inside the blocked run
    assert rec.slow_running == 1
    rec.slow_release.set()
    manual.join(5)
    assert not manual.is_alive()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and "timer slow: skipping" not in caplog.text:
        time.sleep(0.05)
    assert "timer slow: skipping" in caplog.text
    assert rec.slow_max_running == 1


def test_run_timer_now_without_the_scheduler() -> None:
    app, rec = build_app(fast_timers=True)
    host = FunctionHost(app, function_key=KEY, port=0, run_timers=False)
    host.run_timer_now("startup_job")
    assert rec.startup_fired.is_set()
    host.run_timer_now("tick")
    assert rec.tick_past_due == [False]
    with pytest.raises(RuntimeError, match="first run fails"):
        host.run_timer_now("flaky")
    for name in ("nope", "post_alert"):
        with pytest.raises(KeyError):
            host.run_timer_now(name)
    host.stop()


class FakeClock:
    """A settable clock that also tells when the tick timer's thread has read it."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.read_by_tick = threading.Event()

    def __call__(self) -> datetime:
        if threading.current_thread().name == "functions-timer-tick":
            self.read_by_tick.set()
        return self.now


def test_a_late_tick_is_past_due() -> None:
    app, rec = build_app(fast_timers=True)
    rec.slow_release.set()
    clock = FakeClock(datetime(2030, 1, 1, 0, 0, 0, 200000, tzinfo=timezone.utc))
    host = FunctionHost(app, function_key=KEY, port=0, run_timers=True, clock=clock)
    host.start()
    try:
        assert wait_for(clock.read_by_tick)  # the next tick is now due at 00:00:01 (fake time)
        time.sleep(0.1)
        assert not rec.tick_fired.is_set()
        clock.now += timedelta(seconds=30)
        assert wait_for(rec.tick_fired, 3)
        assert rec.tick_past_due[0] is True
    finally:
        host.stop()


# ---- construction ------------------------------------------------------------------------------


def _one_route_app(*routes: str) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for index, route in enumerate(routes):

        def handler(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("")

        handler.__name__ = f"f{index}"
        app.route(route=route, methods=["GET"])(handler)
    return app


@pytest.mark.parametrize(
    "routes",
    [
        ("a/{x?}",),
        ("files/{*rest}",),
        ("pages/{page=1}",),
        ("items/{item_id:int}",),
        ("a/{{x}}",),
        ("a//b",),
    ],
)
def test_route_grammar_beyond_named_parameters_is_refused(routes: tuple[str, ...]) -> None:
    """The app declares named parameters only; anything else fails at construction, not silently."""
    with pytest.raises(ValueError, match="named parameters"):
        FunctionHost(_one_route_app(*routes), function_key=KEY)


def test_async_functions_are_refused() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="a", methods=["GET"])
    async def handler(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    with pytest.raises(ValueError, match="synchronous"):
        FunctionHost(app, function_key=KEY)


def test_bad_timer_schedule_and_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    def timer_app(schedule: str) -> func.FunctionApp:
        app = func.FunctionApp()

        @app.timer_trigger(arg_name="t", schedule=schedule)
        def job(t: func.TimerRequest) -> None:
            pass

        return app

    with pytest.raises(ValueError, match="job"):
        FunctionHost(timer_app("0 */5 * * *"), function_key=KEY)
    FunctionHost(timer_app("0 */5 * * *"), function_key=KEY, run_timers=False)  # schedules unread
    monkeypatch.delenv("RUNNER_TEST_SCHEDULE", raising=False)
    with pytest.raises(ValueError, match="RUNNER_TEST_SCHEDULE"):
        FunctionHost(timer_app("%RUNNER_TEST_SCHEDULE%"), function_key=KEY)
    monkeypatch.setenv("RUNNER_TEST_SCHEDULE", "0 */5 * * * *")
    FunctionHost(timer_app("%RUNNER_TEST_SCHEDULE%"), function_key=KEY)


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError):
        FunctionHost(build_app()[0], function_key="")


def test_base_url_before_start_with_port_zero() -> None:
    host = FunctionHost(build_app()[0], function_key=KEY, port=0, run_timers=False)
    with pytest.raises(RuntimeError):
        _ = host.base_url
    assert FunctionHost(build_app()[0], function_key=KEY, port=7999).base_url == "http://127.0.0.1:7999"


def test_busy_port_is_an_oserror(served: tuple[FunctionHost, Recorder]) -> None:
    host = FunctionHost(build_app()[0], function_key=KEY, port=served[0].port, run_timers=False)
    with pytest.raises(OSError):
        host.start()
    host.stop()


# ---- NCRONTAB (croniter, seconds first) ------------------------------------------------------

UTC = timezone.utc


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


@pytest.mark.parametrize(
    "schedule, after, expected",
    [
        ("0 */5 * * * *", utc(2024, 5, 1, 12, 3, 7), utc(2024, 5, 1, 12, 5, 0)),
        ("0 */5 * * * *", utc(2024, 5, 1, 12, 5, 0), utc(2024, 5, 1, 12, 10, 0)),
        ("0 0 9 * * 1-5", utc(2024, 5, 3, 10, 0, 0), utc(2024, 5, 6, 9, 0, 0)),
        ("0 0 9 * * 1-5", utc(2024, 5, 6, 8, 59, 59), utc(2024, 5, 6, 9, 0, 0)),
        ("30 15 10 * * *", utc(2024, 5, 1, 10, 15, 30), utc(2024, 5, 2, 10, 15, 30)),
        ("30 15 10 * * *", utc(2024, 5, 1, 10, 15, 29, 999999), utc(2024, 5, 1, 10, 15, 30)),
        ("*/1 * * * * *", utc(2024, 5, 1, 10, 0, 0, 500000), utc(2024, 5, 1, 10, 0, 1)),
        ("*/15 * * * * *", utc(2024, 12, 31, 23, 59, 50), utc(2025, 1, 1, 0, 0, 0)),
        ("0 0 8,20 * * *", utc(2024, 5, 1, 9, 0, 0), utc(2024, 5, 1, 20, 0, 0)),
        ("0 0 0 1-10/3 * *", utc(2024, 5, 4, 0, 0, 0), utc(2024, 5, 7, 0, 0, 0)),
        ("0 0 0 */10 * *", utc(2024, 5, 21, 0, 0, 0), utc(2024, 5, 31, 0, 0, 0)),
        ("0 0 0 5/10 * *", utc(2024, 5, 6, 0, 0, 0), utc(2024, 5, 15, 0, 0, 0)),
        ("0 0 0 29 2 *", utc(2025, 3, 1), utc(2028, 2, 29)),
        ("0 30 9 * Jan Mon", utc(2024, 5, 1), utc(2025, 1, 6, 9, 30)),
        ("0 0 12 * * 0", utc(2024, 5, 1), utc(2024, 5, 5, 12, 0)),  # Sunday
        ("0 0 0 13 * 5", utc(2024, 1, 1), utc(2024, 9, 13)),  # Friday 13th
        # An aware time in another zone is evaluated in UTC.
        (
            "0 0 9 * * *",
            datetime(2024, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=2))),
            utc(2024, 5, 1, 9, 0),
        ),
    ],
)
def test_next_fire(schedule: str, after: datetime, expected: datetime) -> None:
    got = next_fire(schedule, after)
    assert got == expected
    assert got.tzinfo == expected.tzinfo


@pytest.mark.parametrize(
    "schedule",
    [
        "",
        "* * * * *",  # 5 fields
        "* * * * * * *",  # 7 fields
        "60 * * * * *",
        "* 60 * * * *",
        "* * 24 * * *",
        "* * * 0 * *",
        "* * * 32 * *",
        "* * * * 0 *",
        "* * * * 13 *",
        "*/0 * * * * *",
        "*/x * * * * *",
        "1-2-3 * * * * *",
        "a * * * * *",
        "1,,2 * * * * *",
        "? * * * * *",
        "-1 * * * * *",
        "0 0 0 30 2 *",  # never fires
    ],
)
def test_bad_schedules_raise_value_error(schedule: str) -> None:
    with pytest.raises(ValueError):
        next_fire(schedule, datetime(2024, 5, 1, tzinfo=UTC))
