"""`POST /api/alerts`: Azure Monitor action group webhooks in the common alert schema.

Layer: edge. Reads the body (refusing oversized ones before parsing), hands it to the parser and
the responder, and maps the outcome to the contract in design section 5: 202 recorded/duplicate,
200 ignored, 400 malformed, 413 oversized, 503 when storage is down (the action group retries
408/429/503/504: https://learn.microsoft.com/azure/azure-monitor/alerts/action-groups).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import azure.functions as func

from handlers._http import declared_length, error, guarded, json_response
from handlers._runtime import get_runtime

log = logging.getLogger(__name__)
bp = func.Blueprint()


@bp.route(route="alerts", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def post_alert(req: func.HttpRequest) -> func.HttpResponse:
    return guarded("post_alert", lambda: _handle(req))


def _handle(req: func.HttpRequest) -> func.HttpResponse:
    # Imported on first use, not when the worker indexes the app (cold start).
    from failover.errors import InvalidPayloadError
    from failover.sources.monitor import MAX_ALERT_BYTES, parse_alert
    from failover.sources.parsing import decode_json

    length = declared_length(req)
    if length is not None and length > MAX_ALERT_BYTES:
        return error(413, f"alert payloads are at most {MAX_ALERT_BYTES} bytes")
    body = req.get_body()
    if len(body) > MAX_ALERT_BYTES:
        return error(413, f"alert payloads are at most {MAX_ALERT_BYTES} bytes")
    try:
        parsed = parse_alert(decode_json(body), received_at=datetime.now(timezone.utc))
    except InvalidPayloadError as exc:
        log.warning("alert refused: %s", exc)
        return error(400, str(exc))
    if parsed.ignored:
        log.info("alert ignored: %s", parsed.ignored_reason)
        return json_response(200, {"status": "ignored", "reason": parsed.ignored_reason})
    runtime = get_runtime()
    clock = runtime.clock
    outcomes = runtime.responder.record_all(s.with_received_at(clock()) for s in parsed.signals)
    if outcomes and all(o.status == "ignored" for o in outcomes):
        return json_response(200, {"status": "ignored", "reason": outcomes[0].reason})
    status = "recorded" if any(o.status == "recorded" for o in outcomes) else "duplicate"
    incident_id = next((o.incident_id for o in outcomes if o.incident_id), None)
    return json_response(
        202,
        {"status": status, "incident_id": incident_id, "signals": [o.to_public() for o in outcomes]},
    )
