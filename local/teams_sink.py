"""A loopback stand-in for a Teams Workflows webhook: records every POST, answers as scripted.

Layer: local tooling (never deployed). Listens on 127.0.0.1 only. Its URL has the shape of a
Power Automate webhook, including a random `sig=` value, so leak tests have a secret to look for.
It answers 202 (like Power Automate) unless scripted otherwise; a wrong `sig` gets 401 and an
unknown path 404, like the real service.

    sink = TeamsSink().start()
    sink.script([SinkResponse(429, {"Retry-After": "1"}), 200])   # then 202 for everything else
    ...  post to sink.url ...
    sink.received   # every POST: path, headers, body, parsed JSON, the status answered
    sink.stop()

CLI: `python -m local.teams_sink --port 7072` prints the URL and every card it receives.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class SinkResponse:
    """One scripted answer: a status, headers, a body, and an optional delay before answering."""

    status: int = 202
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str = b""
    delay: float = 0.0  # seconds to hang before answering (released early by stop())


class Headers(Mapping[str, str]):
    """Request headers with case-insensitive lookup (`headers["content-type"]`), original names kept."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            self._items[name.lower()] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


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


ScriptItem = SinkResponse | int | tuple[int, Mapping[str, str]]


def _as_response(item: ScriptItem) -> SinkResponse:
    if isinstance(item, SinkResponse):
        return item
    if isinstance(item, int):
        return SinkResponse(item)
    status, headers = item
    return SinkResponse(status, dict(headers))


class TeamsSink:
    """The sink server; start() it, post to .url, read .received, stop() it."""

    def __init__(
        self,
        port: int = 0,
        *,
        default: SinkResponse | None = None,
        on_receive: Callable[[Received], None] | None = None,
    ) -> None:
        self._port = port
        self._default = default or SinkResponse(202)
        self._on_receive = on_receive
        self._secret = secrets.token_urlsafe(24)
        self._workflow = secrets.token_hex(16)
        self._script: deque[SinkResponse] = deque()
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> TeamsSink:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_for(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="teams-sink", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        self._stopping.set()  # releases hung requests
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> TeamsSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests use ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def path(self) -> str:
        return f"/workflows/{self._workflow}/triggers/manual/paths/invoke"

    @property
    def secret(self) -> str:
        """The `sig` value of `url` (what a leak test searches for)."""
        return self._secret

    @property
    def url(self) -> str:
        query = f"api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self._secret}"
        return f"http://127.0.0.1:{self._port}{self.path}?{query}"

    def script(self, responses: Iterable[ScriptItem]) -> None:
        """Answer the next requests with these, in order; afterwards answer the default (202)."""
        with self._lock:
            self._script.extend(_as_response(item) for item in responses)

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

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least `count` requests arrived (bounded)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._arrived.wait(left)
        return True

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
            self._script.clear()

    # -- request handling (called from handler threads) ------------------------------------
    def _decide(self, path: str, body: bytes) -> tuple[SinkResponse, Any]:
        parsed: Any = None
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            parsed = json.loads(body.decode("utf-8"))
        parts = urlsplit(path)
        if parts.path != self.path:
            return SinkResponse(404, body='{"error":{"code":"NotFound"}}'), parsed
        if parse_qs(parts.query).get("sig") != [self._secret]:
            return SinkResponse(401, body='{"error":{"code":"DirectApiAuthorizationRequired"}}'), parsed
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            return scripted, parsed
        if parsed is None:
            return SinkResponse(400, body='{"error":{"code":"InvalidRequestContent"}}'), parsed
        return self._default, parsed

    def _record(self, received: Received) -> None:
        with self._arrived:
            self._received.append(received)
            self._arrived.notify_all()
        if self._on_receive is not None:
            self._on_receive(received)


def _handler_for(sink: TeamsSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "teams-sink"

        def do_POST(self) -> None:
            arrived = time.time()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""
            answer, parsed = sink._decide(self.path, body)
            sink._record(
                Received(
                    method="POST",
                    path=self.path,
                    headers=Headers(self.headers.items()),
                    body=body,
                    json=parsed,
                    status=answer.status,
                    at=arrived,
                )
            )
            if answer.delay > 0 and sink._stopping.wait(answer.delay):
                self.close_connection = True
                return
            self._answer(answer)

        def do_GET(self) -> None:
            self._answer(SinkResponse(405, body='{"error":{"code":"MethodNotAllowed"}}'))

        def _answer(self, answer: SinkResponse) -> None:
            payload = answer.body.encode("utf-8") if isinstance(answer.body, str) else answer.body
            with contextlib.suppress(OSError):
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if payload:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the request line holds the sig

    return Handler


def _summary(received: Received) -> str:
    card = received.card
    lines = [f"[{time.strftime('%H:%M:%S', time.localtime(received.at))}] answered {received.status}"]
    if card is None:
        lines.append("  (not a webhook envelope with an Adaptive Card)")
        return "\n".join(lines)

    def walk(items: list[Any]) -> None:
        for item in items:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "TextBlock":
                lines.append(f"  {item.get('text', '')}")
            elif item.get("type") == "FactSet":
                for fact in item.get("facts", []):
                    lines.append(f"    {fact.get('title', '')}: {fact.get('value', '')}")
            walk(item.get("items", []) if isinstance(item.get("items"), list) else [])

    walk(card.get("body", []))
    for action in card.get("actions", []):
        lines.append(f"  [{action.get('title', '')}] {action.get('url', '')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local Teams webhook sink (loopback only).")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--json", action="store_true", help="print each received body as JSON")
    args = parser.parse_args(argv)

    def show(received: Received) -> None:
        if args.json:
            print(json.dumps(received.json, indent=2, ensure_ascii=False), flush=True)
        else:
            print(_summary(received), flush=True)

    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    sink = TeamsSink(args.port, on_receive=show).start()
    print(f"teams sink listening; webhook URL:\n{sink.url}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
