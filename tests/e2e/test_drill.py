"""The drill's game day path against the management API emulator (the same code path as Azure).

A local stack plays the deployed app; a small "Azure" thread sends the activity log alert when the
restart request reaches the management API, as an action group would; the drill fails the server
over through the real SDK and follows the app only through its lookup API.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest

from local import azure_payloads as azure
from local.drill import REPORT_HEADLINE, AppClient, Progress, game_day
from local.runner import registered_functions
from local.stack import start_stack

pytestmark = pytest.mark.integration

SETTINGS = {
    "PROBE_WINDOW_SECONDS": "30",
    "PROBE_ARM_INTERVAL_SECONDS": "0.5",
    "INCIDENT_QUIET_SECONDS": "4",
    "EFFECT_BACKOFF_BASE_SECONDS": "1",
}


@pytest.fixture(scope="module")
def stack():
    running = start_stack({}, port=0, settings=SETTINGS)
    yield running
    running.stop()


def _play_azure(stack, stop: threading.Event) -> None:
    """Send the activity log alert once the restart POST reaches the management API."""
    app = AppClient(stack.base_url, stack.function_key)
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        if any(r.method == "POST" and r.path.endswith("/restart") for r in stack.emulator.requests):
            app.post(
                azure.activity_log(
                    "Started",
                    resource_id=stack.resource_id,
                    at=datetime.now(timezone.utc),
                    mode="PlannedFailover",
                    operation_id=str(uuid.uuid4()),
                )
            )
            return
        time.sleep(0.05)


def _keep_sweeping(stack, stop: threading.Event) -> None:
    deadline = time.monotonic() + 150
    while not stop.is_set() and time.monotonic() < deadline:
        stack.host.run_timer_now("sweep_outbox")
        time.sleep(0.5)


def test_the_runner_serves_exactly_the_apps_routes(stack):
    import function_app

    declared = {
        ("api/" + getattr(f.get_trigger(), "route", ""), f.get_function_name())
        for f in registered_functions(function_app.app)
        if f.is_http_function()
    }
    served = {(route, name) for route, _, name in stack.host.routes()}
    assert served == declared


def test_game_day_follows_the_app_through_its_api(stack, monkeypatch, tmp_path):
    monkeypatch.setenv("ARM_ENDPOINT", stack.emulator.base_url)
    # This machine's record of game days (the back-to-back guard) starts empty for this test.
    monkeypatch.setattr("local.drill.LAST_FAILOVERS", tmp_path / "last-failovers.json")
    stop = threading.Event()
    helpers = [
        threading.Thread(target=stack.host.run_timer_now, args=("probe_servers",), daemon=True),
        threading.Thread(target=_play_azure, args=(stack, stop), daemon=True),
        threading.Thread(target=_keep_sweeping, args=(stack, stop), daemon=True),
    ]
    for helper in helpers:
        helper.start()
    time.sleep(2)
    try:
        report = game_day(
            resource_id=stack.resource_id,
            app=AppClient(stack.base_url, stack.function_key),
            mode="PlannedFailover",
            timeout=90,
            progress=Progress(),
        )
    finally:
        stop.set()
        for helper in helpers:
            helper.join(timeout=60)
    failed = [c for c in report.checks if not c.ok]
    assert not failed, failed
    assert report.incident is not None
    assert report.incident["cause"] == "planned"
    assert report.incident["status"] == "resolved"
    # The scored report went to the channel (the stack's Teams sink) as one card.
    told = [
        r.card for r in stack.sink.accepted if r.card and r.card["fallbackText"].startswith(REPORT_HEADLINE)
    ]
    assert len(told) == 1
    assert told[0]["fallbackText"] == f"Failover drill passed: {report.incident['server']}"
    assert "60 to 120 s Microsoft states" in json.dumps(told[0])
