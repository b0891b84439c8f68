"""Incident lookups over HTTP: `GET /api/incidents[/{id}[/timeline]]`, `GET /api/servers/{name}` and
`GET /api/digests/{id}` (a zone-outage digest and its servers).

Layer: edge. Reads query and route parameters, calls `failover.lookups` (which validates them before
any storage call) and maps outcomes to status codes: 400 `{"error": reason}` for bad input, 404 for
unknown ids, 503 when storage is down (via `guarded`), never 500. It must not query storage itself
or put raw input into a response without escaping; every answer is `no-store` and `nosniff`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType

import azure.functions as func

from handlers._http import error, guarded, json_response
from handlers._runtime import get_runtime

log = logging.getLogger(__name__)
bp = func.Blueprint()


def _lookups() -> ModuleType:
    """`failover.lookups`, imported on first use, not when the worker indexes the app (cold start)."""
    from failover import lookups

    return lookups


_COMMON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _html_headers() -> dict[str, str]:
    from failover.timeline_html import CSP

    return {**_COMMON_HEADERS, "Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer"}


@bp.route(route="incidents", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_incidents(req: func.HttpRequest) -> func.HttpResponse:
    def answer() -> func.HttpResponse:
        runtime = get_runtime()
        params = req.params
        body = _lookups().list_incidents(
            runtime.store,
            runtime.settings,
            server=params.get("server"),
            since=params.get("since"),
            until=params.get("until"),
            status=params.get("status"),
            limit=params.get("limit"),
            continuation=params.get("continuation"),
            now=runtime.clock(),
        )
        return json_response(200, body, _COMMON_HEADERS)

    return _answer("list_incidents", answer)


@bp.route(route="incidents/{incident_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_incident(req: func.HttpRequest) -> func.HttpResponse:
    def answer() -> func.HttpResponse:
        runtime = get_runtime()
        incident_id = req.route_params.get("incident_id")
        body = _lookups().get_incident(
            runtime.store, runtime.settings, incident_id, start=req.params.get("start")
        )
        return json_response(200, body, _COMMON_HEADERS)

    return _answer("get_incident", answer)


@bp.route(route="incidents/{incident_id}/timeline", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_incident_timeline(req: func.HttpRequest) -> func.HttpResponse:
    def answer() -> func.HttpResponse:
        runtime = get_runtime()
        incident_id = req.route_params.get("incident_id")
        view = _lookups().incident_view(
            runtime.store, runtime.settings, incident_id, start=req.params.get("start")
        )
        upcoming = _lookups().upcoming_maintenance(runtime.store, view.incident.server)
        from failover.timeline_html import render_timeline_page

        page = render_timeline_page(view, now=runtime.clock(), upcoming=upcoming)
        return func.HttpResponse(
            page, status_code=200, mimetype="text/html", charset="utf-8", headers=_html_headers()
        )

    return _answer("get_incident_timeline", answer)


@bp.route(route="servers/{server}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_server(req: func.HttpRequest) -> func.HttpResponse:
    def answer() -> func.HttpResponse:
        runtime = get_runtime()
        body = _lookups().get_server(runtime.store, req.route_params.get("server"))
        return json_response(200, body, _COMMON_HEADERS)

    return _answer("get_server", answer)


@bp.route(route="digests/{digest_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_digest(req: func.HttpRequest) -> func.HttpResponse:
    def answer() -> func.HttpResponse:
        runtime = get_runtime()
        body = _lookups().get_digest(runtime.store, runtime.settings, req.route_params.get("digest_id"))
        return json_response(200, body, _COMMON_HEADERS)

    return _answer("get_digest", answer)


def _answer(name: str, action: Callable[[], func.HttpResponse]) -> func.HttpResponse:
    """Bad input answers 400 and unknown ids 404; `guarded` turns everything else into 503, never 500."""
    from failover.errors import NotFoundError

    def mapped() -> func.HttpResponse:
        try:
            return action()
        except _lookups().BadLookupError as exc:
            log.info("%s: refused: %s", name, exc.reason)
            return error(400, exc.reason, _COMMON_HEADERS)
        except NotFoundError as exc:
            return error(404, str(exc), _COMMON_HEADERS)

    return guarded(name, mapped)
