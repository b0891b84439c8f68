"""Sample FunctionApp for the local runner's tests: the trigger shapes the app registers.

``build_app()`` makes a fresh app each time (``get_functions()`` works once per app) together with
a ``Recorder`` the functions report to.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import azure.functions as func


@dataclass
class Recorder:
    events: list[func.EventGridEvent] = field(default_factory=list)
    tick_past_due: list[bool] = field(default_factory=list)
    tick_fired: threading.Event = field(default_factory=threading.Event)
    startup_fired: threading.Event = field(default_factory=threading.Event)
    flaky_calls: int = 0
    flaky_recovered: threading.Event = field(default_factory=threading.Event)
    slow_entered: threading.Event = field(default_factory=threading.Event)
    slow_release: threading.Event = field(default_factory=threading.Event)
    slow_running: int = 0
    slow_max_running: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _json(payload: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(payload), status_code=status, mimetype="application/json")


def build_app(*, fast_timers: bool = True) -> tuple[func.FunctionApp, Recorder]:
    """The sample app. ``fast_timers=False`` gives the every-second timers a yearly schedule."""
    rec = Recorder()
    every_second = "*/1 * * * * *" if fast_timers else "0 0 0 1 1 *"
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="alerts", methods=["POST"])
    def post_alert(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(
            json.dumps({"got": req.get_json()}),
            status_code=202,
            headers={"X-Extra": "1", "Set-Cookie": "a=1"},
            mimetype="application/json",
        )

    @app.route(route="incidents/{incident_id}", methods=[func.HttpMethod.GET])
    def get_incident(req: func.HttpRequest) -> func.HttpResponse:
        return _json(
            {
                "route_params": dict(req.route_params),
                "params": dict(req.params),
                "method": req.method,
                "url": req.url,
                "key_header": req.headers.get("x-functions-key"),
            }
        )

    @app.route(route="incidents/{incident_id}/timeline", methods=["GET"])
    def get_timeline(req: func.HttpRequest) -> func.HttpResponse:
        page = f"<h1>{req.route_params['incident_id']}</h1>"
        return func.HttpResponse(page, mimetype="text/html", headers={"Cache-Control": "no-store"})

    @app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    @app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("sensitive detail that must not reach the client")

    @app.route(route="not-a-response", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def not_a_response(req: func.HttpRequest) -> func.HttpResponse:
        return {"oops": True}  # type: ignore[return-value]

    @app.event_grid_trigger(arg_name="event")
    def on_resource_event(event: func.EventGridEvent) -> None:
        with rec.lock:
            rec.events.append(event)
        data = event.get_json()
        if isinstance(data, dict) and data.get("fail"):
            raise RuntimeError("storage unavailable")

    @app.timer_trigger(arg_name="mytimer", schedule=every_second, run_on_startup=False)
    def tick(mytimer: func.TimerRequest) -> None:
        rec.tick_past_due.append(mytimer.past_due)
        rec.tick_fired.set()

    @app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
    def startup_job(timer: func.TimerRequest) -> None:
        rec.startup_fired.set()

    @app.timer_trigger(arg_name="timer", schedule=every_second)
    def flaky(timer: func.TimerRequest) -> None:
        rec.flaky_calls += 1
        if rec.flaky_calls == 1:
            raise RuntimeError("first run fails")
        rec.flaky_recovered.set()

    @app.timer_trigger(arg_name="timer", schedule=every_second)
    def slow(timer: func.TimerRequest) -> None:
        with rec.lock:
            rec.slow_running += 1
            rec.slow_max_running = max(rec.slow_max_running, rec.slow_running)
        rec.slow_entered.set()
        rec.slow_release.wait(5)
        with rec.lock:
            rec.slow_running -= 1

    return app, rec
