"""A loopback stand-in for a Teams Workflows webhook: records every POST, answers as scripted.

Layer: local tooling (never deployed). Listens on 127.0.0.1 only, on the shared Werkzeug base
(local.loopback). Its URL has the shape of a Power Automate webhook, including a random `sig=`
value, so leak tests have a secret to look for. It answers 202 (like Power Automate) unless
scripted otherwise; a wrong `sig` gets 401 and an unknown path 404, like the real service.

    sink = TeamsSink().start()
    sink.script([SinkResponse(429, {"Retry-After": "1"}), 200])   # then 202 for everything else
    ...  post to sink.url ...
    sink.received   # every POST: path, headers, body, parsed JSON, the status answered
    sink.stop()
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from local.loopback import LoopbackServer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SinkResponse:
    """One scripted answer: a status, headers, a body, and an optional delay before answering."""

    status: int = 202
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str = b""
    delay: float = 0.0  # seconds to hang before answering (released early by stop())


@dataclass(frozen=True)
class Received:
    """One request as the sink saw it."""

    method: str
    path: str  # path and query, as sent
    headers: Headers  # case-insensitive
    body: bytes
    json: Any
    status: int  # what the sink answered (or was about to, for a hung request)
    at: float  # time.time() on arrival

    @property
    def card(self) -> dict[str, Any] | None:
        """The first attachment's Adaptive Card content, when the body is a webhook envelope."""
        try:
            content = self.json["attachments"][0]["content"]
        except (TypeError, KeyError, IndexError):
            return None
        return content if isinstance(content, dict) else None


def _error(status: int, code: str) -> SinkResponse:
    return SinkResponse(status, body=json.dumps({"error": {"code": code}}))


class TeamsSink:
    """The sink server; start() it, post to .url, read .received, stop() it."""

    def __init__(self, port: int = 0) -> None:
        self.secret = secrets.token_urlsafe(24)  # `url`'s `sig`: what leak tests look for
        self.path = f"/workflows/{secrets.token_hex(16)}/triggers/manual/paths/invoke"
        self._script: deque[SinkResponse] = deque()
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = LoopbackServer(self._handle, name="teams-sink", port=port)

    def start(self) -> TeamsSink:
        self._server.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hung requests
        self._server.stop()

    def __enter__(self) -> TeamsSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        query = f"api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.secret}"
        return f"{self._server.base_url}{self.path}?{query}"

    def script(self, responses: Iterable[SinkResponse | int]) -> None:
        """Answer the next requests with these (a status alone: an empty answer), in order; then 202."""
        with self._lock:
            self._script.extend(r if isinstance(r, SinkResponse) else SinkResponse(r) for r in responses)

    def hang(self, seconds: float, *, then: int = 202) -> None:
        """Make the next request wait `seconds` before it is answered with `then`."""
        self.script([SinkResponse(then, delay=seconds)])

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def accepted(self) -> list[Received]:
        """The requests answered with a 2xx."""
        return [r for r in self.received if 200 <= r.status < 300]

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
            self._script.clear()

    def _decide(self, request: Request, parsed: Any) -> SinkResponse:
        if request.method != "POST":
            return _error(405, "MethodNotAllowed")
        if request.path != self.path:
            return _error(404, "NotFound")
        if request.args.getlist("sig") != [self.secret]:
            return _error(401, "DirectApiAuthorizationRequired")
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is None and parsed is None:
            return _error(400, "InvalidRequestContent")
        return scripted or SinkResponse(202)

    def _handle(self, request: Request) -> Response:
        arrived, body = time.time(), request.get_data()
        parsed = request.get_json(force=True, silent=True)  # None: not JSON
        answer = self._decide(request, parsed)
        if request.method == "POST":
            path = request.full_path if request.query_string else request.path
            seen = Received("POST", path, Headers(request.headers), body, parsed, answer.status, arrived)
            with self._lock:
                self._received.append(seen)
            logger.info("teams sink: %s answered %d", "card" if seen.card else "request", answer.status)
        if answer.delay > 0:
            self._stopping.wait(answer.delay)
        json_body = "application/json; charset=utf-8" if answer.body else None
        return Response(answer.body, answer.status, dict(answer.headers), content_type=json_body)
