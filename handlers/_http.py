"""Small helpers shared by the HTTP handlers: JSON answers, body limits, error mapping.

Layer: edge. Maps project outcomes and errors to status codes; never lets an exception escape as
a 500 and never puts a secret or a stack trace in a response.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import azure.functions as func

log = logging.getLogger(__name__)

JSON = "application/json"


def json_response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status_code=status,
        mimetype=JSON,
        charset="utf-8",
        headers=dict(headers or {}),
    )


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return json_response(status, {"error": message}, headers)


def declared_length(req: func.HttpRequest) -> int | None:
    raw = req.headers.get("content-length")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def guarded(name: str, action: Callable[[], func.HttpResponse]) -> func.HttpResponse:
    """Run a handler body; storage trouble answers 503 (so callers retry), bugs never answer 500."""
    # Imported on first use, not when the worker indexes the app (cold start).
    from failover.errors import ConfigError, RetryableError
    from failover.secrets import redact

    try:
        return action()
    except ConfigError as exc:
        log.error("%s: %s", name, exc)
        return error(503, "the app is not configured: " + redact(str(exc), limit=500))
    except RetryableError as exc:
        log.warning("%s: dependency unavailable: %s", name, redact(str(exc)))
        retry_after = str(int(exc.retry_after)) if exc.retry_after else "10"
        return error(503, "storage is unavailable, retry later", {"Retry-After": retry_after})
    except Exception:
        log.exception("%s: unexpected failure", name)
        return error(503, "internal error, retry later", {"Retry-After": "10"})
