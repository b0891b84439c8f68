"""`GET /api/health`: the status of every dependency and of the last probe run, without secrets.

Layer: edge. Answers 200 while Table storage works (the record is safe) and 503 when it does not.
Optional integrations that are not configured say so (`not_configured`); what the probes could not
check (403, 404, throttling, a database refusing connections) is listed per server, and a probe
fault (the probe cannot check: login refused, missing grant...) with its reason and since when.
What probe runs left for their next run (servers unchecked, signals unrecorded) is counted.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from handlers._http import guarded, json_response
from handlers._runtime import get_runtime

log = logging.getLogger(__name__)
bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_health(req: func.HttpRequest) -> func.HttpResponse:
    return guarded("get_health", _health)


def _health() -> func.HttpResponse:
    from failover.notify.registry import CHANNELS  # on first use, not at indexing (cold start)

    runtime = get_runtime()
    dependencies: dict[str, dict[str, Any]] = {"storage": _check(runtime.store.ping)}
    cache = runtime.cache
    dependencies["redis"] = _check(cache.ping) if cache is not None else {"status": "not_configured"}
    configured = runtime.responder.integrations.notify.channels
    for channel in CHANNELS:
        dependencies[channel] = {"status": "configured" if channel in configured else "not_configured"}
    servers: list[dict[str, Any]] = []
    if runtime.settings.probes_configured and dependencies["storage"]["status"] == "ok":
        rows = runtime.store.probe_health()
        servers = [_server(row) for row in rows]
        failing = [
            s["server"] for s in servers if s["arm"] != "ok" or s["db"] not in ("ok", "not_configured")
        ]
        dependencies["probes"] = {
            "status": "degraded" if failing else "ok",
            "failing": failing,
            # What the last runs could not do within their period, left for the next run.
            "left_for_next_run": {
                "servers_unchecked": sum(1 for r in rows if str(r.get("unchecked")).lower() == "true"),
                "signals_unrecorded": sum(int(r.get("unrecorded") or 0) for r in rows),
            },
        }
    else:
        dependencies["probes"] = {
            "status": "not_configured" if not runtime.settings.probes_configured else "unknown"
        }
    if dependencies["storage"]["status"] == "ok":
        dead = runtime.store.dead_effects(20)
        dependencies["outbox"] = {
            "status": "degraded" if dead else "ok",
            "pending": runtime.store.pending_work_count(),
            "dead": [
                {
                    "incident_id": e.incident_id,
                    "effect": e.name.value,
                    "transition": e.transition.value,
                    "attempts": e.attempts,
                    "last_error": e.last_error,
                }
                for e in dead
            ],
        }
    dependencies["scope"] = _scope(runtime.responder)
    storage_ok = dependencies["storage"]["status"] == "ok"
    degraded = any(d["status"] in ("down", "degraded") for d in dependencies.values())
    overall = "down" if not storage_ok else "degraded" if degraded else "ok"
    return json_response(
        200 if storage_ok else 503, {"status": overall, "dependencies": dependencies, "servers": servers}
    )


def _scope(responder: Any) -> dict[str, Any]:
    """The trust boundary: what was ignored since this worker started, and a warning when it is open."""
    ignored = dict(responder.ignored)
    if responder.scope.open:
        detail = "neither MONITORED_SERVERS nor ALERT_SCOPES is set: alerts about any server are recorded"
        return {"status": "warning", "detail": detail, "ignored": ignored}
    return {"status": "ok", "ignored": ignored}


def _check(ping: Any) -> dict[str, Any]:
    from failover.errors import FailoverError
    from failover.secrets import redact

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
        # A probe fault (login refused, missing grant...) is the probe's, never the server's: since
        # when it cannot check, and when people were told (one card per outage).
        "db_fault": row.get("db_fault") or None,
        "db_fault_since": row.get("db_fault_since") or None,
        "db_fault_notified_at": row.get("db_fault_notified_at") or None,
        "checked_at": row.get("checked_at") or None,
    }
