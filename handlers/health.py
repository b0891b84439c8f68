"""`GET /api/health`: the status of every dependency and of the last probe run, without secrets.

Layer: edge. Answers 200 while Table storage works (the record is safe) and 503 when it does not.
Optional integrations that are not configured say so (`not_configured`); what the probes could not
check (403, 404, throttling, a database refusing connections) is listed per server.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from failover.errors import FailoverError, redact
from handlers._http import guarded, json_response
from handlers._runtime import get_runtime

log = logging.getLogger(__name__)
bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_health(req: func.HttpRequest) -> func.HttpResponse:
    return guarded("get_health", _health)


def _health() -> func.HttpResponse:
    runtime = get_runtime()
    dependencies: dict[str, dict[str, Any]] = {"storage": _check(runtime.store.ping)}
    cache = runtime.cache
    dependencies["redis"] = _check(cache.ping) if cache is not None else {"status": "not_configured"}
    notifier = runtime.responder.integrations.notifier
    dependencies["teams"] = {"status": "configured" if notifier is not None else "not_configured"}
    servers: list[dict[str, Any]] = []
    if runtime.settings.probes_configured and dependencies["storage"]["status"] == "ok":
        servers = [_server(row) for row in runtime.store.probe_health()]
        failing = [
            s["server"] for s in servers if s["arm"] != "ok" or s["db"] not in ("ok", "not_configured")
        ]
        dependencies["probes"] = {"status": "degraded" if failing else "ok", "failing": failing}
    else:
        dependencies["probes"] = {
            "status": "not_configured" if not runtime.settings.probes_configured else "unknown"
        }
    if dependencies["storage"]["status"] == "ok":
        dependencies["outbox"] = {"status": "ok", "pending": runtime.store.pending_outbox_count()}
    storage_ok = dependencies["storage"]["status"] == "ok"
    degraded = any(d["status"] in ("down", "degraded") for d in dependencies.values())
    overall = "down" if not storage_ok else "degraded" if degraded else "ok"
    return json_response(
        200 if storage_ok else 503, {"status": overall, "dependencies": dependencies, "servers": servers}
    )


def _check(ping: Any) -> dict[str, Any]:
    try:
        ping()
    except FailoverError as exc:
        return {"status": "down", "detail": redact(str(exc))}
    return {"status": "ok"}


def _server(row: Any) -> dict[str, Any]:
    return {
        "server": row.get("server"),
        "arm": row.get("arm"),
        "arm_error": row.get("arm_error") or None,
        "db": row.get("db"),
        "db_error": row.get("db_error") or None,
        "checked_at": row.get("checked_at") or None,
    }
