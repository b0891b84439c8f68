"""Call the app's registered functions the way the host does, against a real Azurite table.

`function_app.app.get_functions()` may be called only once per app, so the functions are read
once per test session and looked up by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from typing import Any

import azure.functions as func

from failover.config import Settings
from failover.timeutil import parse_iso
from failover.wiring import Runtime, build_runtime
from handlers._runtime import set_runtime
from local.runner import registered_functions


@cache
def functions() -> dict[str, Any]:
    import function_app

    return {str(f.get_function_name()): f for f in registered_functions(function_app.app)}


def call(name: str, **kwargs: Any) -> Any:
    function = functions()[name]
    return function.get_user_function()(**kwargs)


def install(env: dict[str, str], clock: Any = None) -> Runtime:
    settings = Settings.from_env(env)
    runtime = build_runtime(settings, clock=clock) if clock else build_runtime(settings)
    set_runtime(runtime)
    return runtime


def scoped_runtime(azurite: str, table_name: str, clock: Any, *, alert_scopes: str) -> Iterator[Runtime]:
    """The app on a fresh Azurite table with `ALERT_SCOPES` set, a minute after T0; cleaned up after."""
    from tests.builders import T0

    clock.now = T0 + timedelta(minutes=1)
    runtime = install(
        {"AzureWebJobsStorage": azurite, "FAILOVER_TABLE": table_name, "ALERT_SCOPES": alert_scopes},
        clock=clock,
    )
    yield runtime
    runtime.store._client.delete_table()
    set_runtime(None)


def post_alert(
    payload: Any, *, raw: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    body = raw if raw is not None else json.dumps(payload).encode()
    request = func.HttpRequest(
        "POST",
        "http://localhost:7071/api/alerts",
        headers={"content-type": "application/json", **(headers or {})},
        params={},
        route_params={},
        body=body,
    )
    response = call("post_alert", req=request)
    text = response.get_body().decode()
    return response.status_code, json.loads(text) if text else None


def event(raw: dict[str, Any]) -> func.EventGridEvent:
    time = raw.get("eventTime")
    parsed = parse_iso(time) if isinstance(time, str) else None
    # The host passes whatever the event held, None included: so do we (malformed events are tested).
    fields: dict[str, Any] = {
        "id": raw.get("id"),
        "data": raw.get("data"),
        "topic": raw.get("topic"),
        "subject": raw.get("subject"),
        "event_type": raw.get("eventType"),
        "event_time": parsed,
        "data_version": raw.get("dataVersion"),
    }
    return func.EventGridEvent(**fields)


def deliver(raw: dict[str, Any]) -> None:
    call("on_resource_event", event=event(raw))
