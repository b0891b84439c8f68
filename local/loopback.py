"""One HTTP server base for local/: the runner, the management API emulator and the Teams sink.

Layer: local tooling, never deployed. A threaded Werkzeug server (Werkzeug ships with
azure-functions) serving a ``Request -> Response`` function in a background thread. It must not
listen anywhere but the host it is given (loopback by default) or log a request line: a function key
(``code=``), a webhook signature (``sig=``) or a workflow path travels there; a server logs what
it may itself.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Response]


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler, silent: a path or query may be a secret (a webhook's workflow, a key)."""

    timeout = 10  # an idle keep-alive connection ends on its own

    def log(self, type: str, message: str, *args: Any) -> None:
        logger.debug("server %s (details withheld: the request line may hold a secret)", type)


class LoopbackServer:
    """Serves ``handler`` on ``host:port`` (0: a free port) from ``start()`` until ``stop()``."""

    def __init__(self, handler: Handler, *, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self._handler = handler
        self._name = name
        self._host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # Bind here so a busy port is an OSError, not Werkzeug's sys.exit(1).
        with socket.create_server((self._host, self._port), family=family, backlog=128) as listener:
            self._server = make_server(
                self._host,
                self._port,
                self._wsgi,
                threaded=True,
                request_handler=_QuietHandler,
                fd=listener.fileno(),
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and join the serving thread (bounded); safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is not None:
            return int(self._server.server_address[1])
        if self._port == 0:
            raise RuntimeError("the port is chosen when the server starts; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._handler(request)
        except Exception:
            logger.exception("%s: error on %s %s", self._name, request.method, request.path)
            response = Response(b"", status=500)
        return response(environ, start_response)
