"""A loopback PagerDuty Events API v2 receiver: validates every event as PagerDuty does, answers as scripted.

Test tooling (Werkzeug on 127.0.0.1). The checks follow the Events API v2 "Send an Alert Event"
reference (PagerDuty developer docs, events-API-v2/02-Trigger-Events.md and 01-Overview.md):
`routing_key` and `event_action` (trigger, acknowledge, resolve) required; `dedup_key` at most 255
characters and required to acknowledge or resolve; a trigger needs `payload.summary` (at most 1024
characters), `payload.source` and `payload.severity` (critical, error, warning, info); `links` are
objects with an `href`. A valid event gets 202 `{"status": "success", "dedup_key"}`, an invalid one
400 `{"status": "invalid event", "errors"}`; `script([429, ...])` answers the next events otherwise.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse

_ACTIONS = frozenset({"trigger", "acknowledge", "resolve"})
_SEVERITIES = frozenset({"critical", "error", "warning", "info"})


@dataclass(frozen=True)
class Scripted:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)


def event_errors(event: Any) -> list[str]:
    """What PagerDuty would refuse in one event (empty: valid)."""
    if not isinstance(event, dict):
        return ["the body is not a JSON object"]
    errors = []
    if not isinstance(event.get("routing_key"), str) or not event["routing_key"]:
        errors.append("routing_key is required")
    action = event.get("event_action")
    if action not in _ACTIONS:
        errors.append("event_action must be trigger, acknowledge or resolve")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("dedup_key must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append("dedup_key is required to acknowledge or resolve")
    payload = event.get("payload")
    if action == "trigger" or payload is not None:
        errors += _payload_errors(payload)
    for link in event.get("links", []):
        if not isinstance(link, dict) or not isinstance(link.get("href"), str):
            errors.append("every link needs an href")
    return errors


def _payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["payload is required"]
    errors = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary or len(summary) > 1024:
        errors.append("payload.summary must be 1 to 1024 characters")
    if not isinstance(payload.get("source"), str) or not payload["source"]:
        errors.append("payload.source is required")
    if payload.get("severity") not in _SEVERITIES:
        errors.append("payload.severity must be critical, error, warning or info")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("payload.custom_details must be an object")
    return errors


class PagerDutyReceiver:
    """`with PagerDutyReceiver() as pd:` post to `pd.url`; `pd.events` holds every valid event."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.answered: list[int] = []
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v2/enqueue"

    def script(self, answers: Iterable[int | Scripted]) -> None:
        with self._lock:
            self._script.extend(a if isinstance(a, Scripted) else Scripted(a) for a in answers)

    def __enter__(self) -> PagerDutyReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(5)

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return self._answer(Request(environ))(environ, start_response)

    def _answer(self, request: Request) -> Response:
        try:
            event = json.loads(request.get_data())
        except ValueError:
            event = None
        errors = event_errors(event)
        with self._lock:
            scripted = self._script.popleft() if self._script else None
            status = scripted.status if scripted else (400 if errors else 202)
            self.answered.append(status)
            if status == 202:
                self.events.append(event)
        if status == 400:
            body: dict[str, Any] = {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": errors,
            }
        elif status == 202:
            body = {"status": "success", "message": "Event processed", "dedup_key": event.get("dedup_key")}
        else:
            body = {
                "status": "throttle event",
                "message": "Requests for this service are arriving too quickly.",
            }
        headers = dict(scripted.headers) if scripted else {}
        return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")
