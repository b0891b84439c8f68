"""Local Azure Functions runner: serve a ``FunctionApp``'s own functions the way the host does.

Layer: local-only developer tooling (``local/``). It is never deployed and the app never imports
it; in Azure the Functions host does this job. It exists because the Core Tools host (``func``)
cannot be installed on these machines (design, section 7). It serves what the app registers and
nothing else, reading ``app.get_functions()`` once (no second route table):

- HTTP triggers at ``/api/<route>`` with named route parameters (``{incident_id}``), the declared
  methods (405 otherwise), FUNCTION or ANONYMOUS auth (the key in ``x-functions-key`` or the
  ``code`` query parameter; 401 otherwise), a request body cap (413) and the response mapped back
  the way the Python worker encodes ``func.HttpResponse``;
- Event Grid triggers at ``POST /runtime/webhooks/eventgrid?functionName=<name>``
  (``aeg-event-type`` SubscriptionValidation / Notification / Unsubscribe), key required;
- timer triggers on their seconds-first six-field NCRONTAB schedules (``croniter``, UTC),
  ``run_on_startup`` honoured, a run never overlapping with itself;
- queue triggers from Azure Storage queues (Azurite locally) as host.json ``extensions.queues``
  says: batches of ``batchSize``, a new poll once no more than ``newBatchThreshold`` run, slower
  polling up to ``maxPollingInterval`` while empty, a running message kept hidden, deleted on
  success, visible again after ``visibilityTimeout`` on failure, moved to ``<queue>-poison`` once
  taken ``maxDequeueCount`` times; base64 bodies unless ``messageEncoding`` is ``none``.

Only synchronous functions are served (the app has no ``async def``). Keys: the host key
(``LOCAL_FUNCTION_KEY``) opens every route; a function key (``LOCAL_FUNCTION_KEY_<NAME>``) opens
only that HTTP function, as ``az functionapp function keys set`` does in Azure.

What it must not do: listen anywhere but the host it is given (loopback by default); log the
function key, a ``code`` query parameter or a query string; leak exception details or the key in
a response; change the app or the functions it serves.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import inspect
import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.decorators.function_app import Function
from azure.functions.timer import TimerRequest
from croniter import croniter
from werkzeug.datastructures import Headers
from werkzeug.exceptions import MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local.loopback import LoopbackServer

logger = logging.getLogger("local.runner")  # not __name__: that is "__main__" under python -m

FUNCTION_KEY_ENV_PREFIX = "LOCAL_FUNCTION_KEY_"  # + the function's name: LOCAL_FUNCTION_KEY_POST_ALERT
KEY_HEADER = "x-functions-key"
EVENTGRID_WEBHOOK_PATH = "/runtime/webhooks/eventgrid"
SUBSCRIPTION_VALIDATION_EVENT = "microsoft.eventgrid.subscriptionvalidationevent"
DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024  # the host's default request body limit
ALL_HTTP_METHODS: frozenset[str] = frozenset(m.value for m in func.HttpMethod)
PAST_DUE_SLACK = timedelta(seconds=1)  # a tick later than this is reported as past due
_MAX_TIMER_WAIT_SECONDS = 0.5  # how often a sleeping timer re-reads the clock (and the stop flag)
_JOIN_TIMEOUT_SECONDS = 5.0
# Hop-by-hop and framing headers are the server's business, not the function's.
_RESPONSE_HEADERS_NOT_COPIED = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_ROUTE_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def next_fire(schedule: str, after: datetime) -> datetime:
    """First fire time (UTC) of a six-field NCRONTAB ``schedule`` strictly after the aware ``after``.

    Day and day of week must both match (NCrontab semantics). Raises ValueError for a bad schedule
    or one that never fires.
    """
    if len(schedule.split()) != 6:
        raise ValueError(f"NCRONTAB schedule {schedule!r} must have 6 fields (second first)")
    start = after.astimezone(timezone.utc).replace(microsecond=0)
    try:
        fire: datetime = croniter(schedule, start, second_at_beginning=True, day_or=False).get_next(datetime)
    except (KeyError, TypeError) as exc:  # croniter's own errors are ValueErrors already
        raise ValueError(f"NCRONTAB schedule {schedule!r}: {exc}") from None
    return fire


def _route_rule(template: str) -> str:
    """``/api/<template>`` with ``{name}`` parameters as Werkzeug variables; anything else refused."""
    path = _ROUTE_PARAM_RE.sub(r"<\1>", template.strip("/"))
    if "{" in path or "}" in path or "//" in path:
        raise ValueError(f"route {template!r}: the runner serves named parameters ({{name}}) only")
    return f"/api/{path}"


_FUNCTIONS: weakref.WeakKeyDictionary[Any, list[Function]] = weakref.WeakKeyDictionary()


def registered_functions(app: func.FunctionApp) -> list[Function]:
    """``app.get_functions()``, read once per app and shared: a second call on the same app raises."""
    if app not in _FUNCTIONS:
        _FUNCTIONS[app] = list(app.get_functions())
    return _FUNCTIONS[app]


UserFunction = Callable[..., Any]


@dataclass(frozen=True)
class _Bound:
    """One function of the app and the name of the argument its trigger fills."""

    name: str
    arg_name: str
    function: UserFunction
    trigger: Any

    def __call__(self, value: object) -> Any:
        return self.function(**{self.arg_name: value})


@dataclass
class _TimerFunction:
    bound: _Bound
    lock: threading.Lock = field(default_factory=threading.Lock)  # a timer never overlaps itself


def _enum_value(value: object) -> str:
    return str(value.value) if isinstance(value, Enum) else str(value)


def _resolve_setting(value: str) -> str:
    """Resolve a ``%SETTING%`` binding expression from the environment, as the host does."""
    match = re.fullmatch(r"%([^%]+)%", value.strip())
    if match is None:
        return value
    resolved = os.environ.get(match.group(1))
    if resolved is None:
        raise ValueError(f"timer schedule refers to setting {match.group(1)!r}, which is not set")
    return resolved


# --------------------------------------------------------------------------------------------
# Queue triggers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueOptions:
    """host.json ``extensions.queues``, with the host's defaults where a key is missing."""

    batch_size: int = 16
    new_batch_threshold: int | None = None  # None: batch_size // 2, as the host
    visibility_timeout: timedelta = timedelta(0)
    max_dequeue_count: int = 5
    max_polling_interval: timedelta = timedelta(minutes=1)
    message_encoding: str = "base64"  # or "none"

    @property
    def threshold(self) -> int:
        return self.batch_size // 2 if self.new_batch_threshold is None else self.new_batch_threshold

    @classmethod
    def from_host_json(cls, path: Path) -> QueueOptions:
        """Read ``extensions.queues`` of a host.json; a missing file or section gives the defaults."""
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        known = {k.lower(): v for k, v in raw.get("extensions", {}).get("queues", {}).items()}
        defaults = cls()
        return cls(
            batch_size=int(known.get("batchsize", defaults.batch_size)),
            new_batch_threshold=int(known["newbatchthreshold"]) if "newbatchthreshold" in known else None,
            visibility_timeout=_timespan(known.get("visibilitytimeout"), defaults.visibility_timeout),
            max_dequeue_count=int(known.get("maxdequeuecount", defaults.max_dequeue_count)),
            max_polling_interval=_timespan(known.get("maxpollinginterval"), defaults.max_polling_interval),
            message_encoding=str(known.get("messageencoding", defaults.message_encoding)).lower(),
        )


def _timespan(value: object, default: timedelta) -> timedelta:
    """A host.json time span, ``hh:mm:ss`` (fractions allowed)."""
    if value is None:
        return default
    hours, minutes, seconds = str(value).strip().split(":")
    return timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))


_QUEUE_LEASE = timedelta(minutes=1)  # a running message stays hidden this long, renewed at half of it
_MIN_POLL_SECONDS = 0.1


class _QueueListener:
    """Polls one queue for one function and runs its messages the way the Functions host does."""

    def __init__(self, bound: _Bound, options: QueueOptions, stopping: threading.Event) -> None:
        from azure.storage.queue import QueueClient

        trigger = bound.trigger
        connection = os.environ.get(str(trigger.connection))
        if not connection:
            raise ValueError(f"queue function {bound.name}: setting {trigger.connection!r} is not set")
        self._bound = bound
        self._queue = str(trigger.queue_name)
        self._options = options
        self._stopping = stopping
        self._client = QueueClient.from_connection_string(connection, self._queue)
        self._poison = QueueClient.from_connection_string(connection, f"{self._queue}-poison")
        self._in_flight = 0
        self._lock = threading.Lock()

    def run(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from azure.core.exceptions import AzureError, ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self._client.create_queue()
        options, wait = self._options, _MIN_POLL_SECONDS
        workers = options.batch_size + options.threshold
        with ThreadPoolExecutor(workers, thread_name_prefix=f"functions-queue-{self._bound.name}") as pool:
            while not self._stopping.is_set():
                with self._lock:
                    room = self._in_flight <= options.threshold
                taken = 0
                try:
                    taken = self._poll(pool) if room else 0
                except AzureError as exc:
                    logger.warning("queue %s: polling failed: %s", self._queue, type(exc).__name__)
                if taken:
                    wait = _MIN_POLL_SECONDS
                    continue
                self._stopping.wait(wait)
                if room:  # an empty queue is polled less and less often, as in the host
                    wait = min(wait * 2, options.max_polling_interval.total_seconds())

    def _poll(self, pool: Any) -> int:
        lease = int(_QUEUE_LEASE.total_seconds())
        messages = list(
            self._client.receive_messages(max_messages=self._options.batch_size, visibility_timeout=lease)
        )
        for message in messages:
            with self._lock:
                self._in_flight += 1
            pool.submit(self._process, message)
        return len(messages)

    def _process(self, message: Any) -> None:
        try:
            self._handle(message)
        except Exception:  # the listener must survive anything one message does
            logger.exception("queue %s: message %s could not be settled", self._queue, message.id)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _handle(self, message: Any) -> None:
        options = self._options
        if message.dequeue_count > options.max_dequeue_count:
            self._to_poison(message, "taken more than maxDequeueCount times")
            return
        body = self._body(message.content)
        if body is None:
            self._to_poison(message, f"not {options.message_encoding} encoded")
            return
        renewal = _Renewal(self._client, message, _QUEUE_LEASE)
        try:
            self._bound(_queue_message(message, body))
        except Exception:
            renewal.stop()
            name, count = self._bound.name, message.dequeue_count
            logger.exception("function %s failed on message %s (dequeue count %d)", name, message.id, count)
            if count >= options.max_dequeue_count:
                self._to_poison(message, f"failed {count} times")
            else:
                retry = int(options.visibility_timeout.total_seconds())
                self._client.update_message(message.id, renewal.pop_receipt, visibility_timeout=retry)
            return
        renewal.stop()
        self._client.delete_message(message.id, renewal.pop_receipt)
        logger.info("function %s: queue message %s done", self._bound.name, message.id)

    def _body(self, content: object) -> bytes | None:
        text = content if isinstance(content, str) else ""
        if self._options.message_encoding != "base64":
            return text.encode("utf-8")
        try:
            return base64.b64decode(text, validate=True)
        except ValueError:
            return None

    def _to_poison(self, message: Any, why: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self._poison.create_queue()
        self._poison.send_message(message.content)
        self._client.delete_message(message.id, message.pop_receipt)
        logger.warning(
            "queue %s: message %s moved to %s-poison (%s)", self._queue, message.id, self._queue, why
        )


class _Renewal:
    """Keeps a running message hidden: its visibility is pushed out at half the lease, until stopped."""

    def __init__(self, client: Any, message: Any, lease: timedelta) -> None:
        self._client = client
        self._id = message.id
        self.pop_receipt: str = message.pop_receipt
        self._seconds = lease.total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"functions-queue-renew-{self._id}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        from azure.core.exceptions import AzureError

        while not self._stop.wait(self._seconds / 2):
            try:
                updated = self._client.update_message(
                    self._id, self.pop_receipt, visibility_timeout=int(self._seconds)
                )
                self.pop_receipt = updated.pop_receipt
            except AzureError as exc:
                logger.warning("queue message %s: visibility not renewed: %s", self._id, type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(_JOIN_TIMEOUT_SECONDS)


def _queue_message(message: Any, body: bytes) -> func.QueueMessage:
    from azure.functions.queue import QueueMessage

    return QueueMessage(  # type: ignore[no-untyped-call]
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )


# --------------------------------------------------------------------------------------------
# HTTP and Event Grid plumbing
# --------------------------------------------------------------------------------------------


def _empty(status: int, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(b"", status=status, headers=list(headers), content_type="text/plain; charset=utf-8")


def _json(status: int, payload: object) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json; charset=utf-8")


def _response_from(result: object, function_name: str) -> Response:
    """Map what an HTTP function returned to a response, the way the Python worker encodes it."""
    if isinstance(result, str):
        return Response(result.encode("utf-8"), status=200, content_type="text/plain; charset=utf-8")
    if not isinstance(result, func.HttpResponse):
        logger.error("function %s returned %s, not func.HttpResponse", function_name, type(result).__name__)
        return _empty(500)
    headers = Headers(
        [(k, v) for k, v in result.headers.items() if k.lower() not in _RESPONSE_HEADERS_NOT_COPIED]
    )
    if "content-type" not in headers:
        # azure.functions.http.HttpResponseConverter: charset is added to text/* types only.
        mimetype, charset = result.mimetype, result.charset
        headers["Content-Type"] = (
            f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype
        )
    return Response(result.get_body(), status=int(result.status_code), headers=headers)


def _event_grid_event(raw: Mapping[str, Any]) -> func.EventGridEvent:
    """The binding the worker builds; a missing field arrives as None (the function judges the event)."""
    when = raw.get("eventTime")
    event_time = None
    if isinstance(when, str) and when:
        # Event Grid sends 7 fractional digits and "Z"; fromisoformat wants at most 6.
        text = re.sub(r"(\.\d{6})\d+", r"\1", when.strip()).replace("Z", "+00:00")
        with contextlib.suppress(ValueError):
            event_time = datetime.fromisoformat(text)
    fields: dict[str, Any] = {k: raw.get(k) for k in ("id", "data", "topic", "subject")}
    fields.update(event_type=raw.get("eventType"), data_version=raw.get("dataVersion"))
    return func.EventGridEvent(event_time=event_time, **fields)


def function_keys_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """Per-function keys from ``LOCAL_FUNCTION_KEY_<FUNCTION_NAME>`` settings: {function name: key}."""
    prefix = FUNCTION_KEY_ENV_PREFIX
    return {
        k[len(prefix) :].lower(): v
        for k, v in env.items()
        if k.upper().startswith(prefix) and len(k) > len(prefix)
    }


# --------------------------------------------------------------------------------------------
# The host
# --------------------------------------------------------------------------------------------


class FunctionHost:
    """Serves one FunctionApp's HTTP, Event Grid, timer and queue functions on loopback.

    ``clock`` (default: now, UTC) is what timers read to decide when to fire and whether a tick is
    past due. ``max_body_bytes`` caps request bodies (413 above it).
    """

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        function_key: str,
        function_keys: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 7071,
        run_timers: bool = True,
        clock: Callable[[], datetime] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        run_queues: bool = True,
        queue_options: QueueOptions | None = None,
    ) -> None:
        if not function_key:
            raise ValueError("function_key must not be empty")
        self._key = function_key.encode("utf-8")
        self._run_timers, self._run_queues = run_timers, run_queues
        self._clock: Callable[[], datetime] = clock or (lambda: datetime.now(timezone.utc))
        self._max_body_bytes = max_body_bytes
        self._queue_options = queue_options or QueueOptions()
        self._by_kind: dict[str, dict[str, _Bound]] = {}
        for f in registered_functions(app):
            self._read_function(f)
        self._http = self._by_kind.get("httpTrigger", {})
        self._event_grid = {n.lower(): b for n, b in self._by_kind.get("eventGridTrigger", {}).items()}
        self._timers = {n: _TimerFunction(b) for n, b in self._by_kind.get("timerTrigger", {}).items()}
        self._function_keys = self._check_function_keys(function_keys or {})
        rules = [self._rule(name, bound) for name, bound in self._http.items()]
        self._url_map = Map(rules, strict_slashes=False, merge_slashes=False)  # never a redirect
        if run_timers:
            for timer in self._timers.values():
                self._schedule_of(timer)  # a bad schedule fails here, not in the timer's thread
        self._stopping = threading.Event()
        self._server = LoopbackServer(self._dispatch, name=f"functions-http-{port}", host=host, port=port)
        self._threads: list[threading.Thread] = []
        self._started = False

    # ---- public API ------------------------------------------------------------------------

    def start(self) -> None:
        """Bind, serve HTTP in a background thread and start one thread per timer and queue."""
        if self._started:
            raise RuntimeError("FunctionHost.start() may be called once")
        self._started = True
        self._server.start()
        for timer in self._timers.values() if self._run_timers else ():
            self._spawn(f"functions-timer-{timer.bound.name}", self._timer_loop, timer)
        for bound in self._by_kind.get("queueTrigger", {}).values() if self._run_queues else ():
            self._spawn(
                f"functions-queue-{bound.name}",
                _QueueListener(bound, self._queue_options, self._stopping).run,
            )
        logger.info("serving %s at %s", {k: len(v) for k, v in self._by_kind.items()}, self.base_url)

    def stop(self) -> None:
        """Stop serving and scheduling; wait (bounded) for the threads. Safe to call twice."""
        self._stopping.set()
        self._server.stop()
        deadline = time.monotonic() + _JOIN_TIMEOUT_SECONDS
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("thread %s still running after stop (a function is still going)", thread.name)
        self._threads = []

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def routes(self) -> list[tuple[str, frozenset[str], str]]:
        """HTTP routes as served: (``api/<route>``, methods, function name), in declaration order."""
        return [
            (f"api/{(b.trigger.route or n).strip('/')}", self._methods(b), n) for n, b in self._http.items()
        ]

    def run_timer_now(self, function_name: str) -> None:
        """Invoke a timer function once, now, in this thread (``past_due=False``); exceptions propagate.

        Waits if a scheduled run of the same function is in progress.
        """
        timer = self._timers.get(function_name)
        if timer is None:
            raise KeyError(f"no timer function named {function_name!r}; timers: {sorted(self._timers)}")
        with timer.lock:
            timer.bound(TimerRequest(past_due=False))

    # ---- reading the app -------------------------------------------------------------------

    def _read_function(self, f: Function) -> None:
        trigger: Any = f.get_trigger()
        name = str(f.get_function_name())  # always set once get_functions() has run
        user_function = f.get_user_function()
        if inspect.iscoroutinefunction(user_function):
            raise ValueError(f"function {name} is async: the runner serves synchronous functions only")
        self._by_kind.setdefault(str(trigger.type), {})[name] = _Bound(
            name, trigger.name, user_function, trigger
        )

    def _rule(self, name: str, bound: _Bound) -> Rule:
        methods = self._methods(bound)
        rule = Rule(_route_rule(bound.trigger.route or name), endpoint=name, methods=sorted(methods))
        rule.methods = set(methods)  # Werkzeug adds HEAD to GET; the host serves what is declared
        return rule

    @staticmethod
    def _methods(bound: _Bound) -> frozenset[str]:
        declared = bound.trigger.methods
        return ALL_HTTP_METHODS if declared is None else frozenset(_enum_value(m).upper() for m in declared)

    def _check_function_keys(self, keys: Mapping[str, str]) -> dict[str, bytes]:
        known = {name.lower() for name in self._http}
        for name, key in keys.items():
            if name.lower() not in known:
                raise ValueError(f"a function key is set for {name!r}, not an HTTP function of this app")
            if not key:
                raise ValueError(f"the function key of {name} must not be empty")
        return {name.lower(): key.encode("utf-8") for name, key in keys.items()}

    def _schedule_of(self, timer: _TimerFunction) -> str:
        schedule = str(timer.bound.trigger.schedule)
        try:
            text = _resolve_setting(schedule)
            next_fire(text, self._now())
        except ValueError as exc:
            raise ValueError(f"timer function {timer.bound.name}: {exc}") from None
        return text

    # ---- HTTP ------------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        request.max_content_length = self._max_body_bytes
        started = time.monotonic()
        try:
            if request.path.rstrip("/").lower() == EVENTGRID_WEBHOOK_PATH:
                response = self._event_grid_webhook(request)
            else:
                response = self._http_function(request)
        except RequestEntityTooLarge:
            response = _empty(413)
        elapsed = (time.monotonic() - started) * 1000
        logger.info("%s %s -> %d in %.0f ms", request.method, request.path, response.status_code, elapsed)
        return response

    def _http_function(self, request: Request) -> Response:
        try:
            name, values = self._url_map.bind("localhost").match(request.path, method=request.method)
        except MethodNotAllowed as exc:
            return _empty(405, [("Allow", ", ".join(sorted(exc.valid_methods or ())))])
        except NotFound:
            return _empty(404)
        bound = self._http[name]
        if _enum_value(bound.trigger.auth_level).lower() != "anonymous" and not self._authorized(
            request, name
        ):
            return _empty(401)
        http_request = func.HttpRequest(
            request.method,
            request.url,
            headers=dict(request.headers.items()),  # repeated headers arrive joined, as in WSGI
            params=request.args.to_dict(),  # first value per key
            route_params={k: str(v) for k, v in values.items()},
            body=request.get_data(),
        )
        try:
            result = bound(http_request)
        except Exception:
            logger.exception("function %s failed", name)
            return _empty(500)
        return _response_from(result, name)

    def _authorized(self, request: Request, function_name: str | None = None) -> bool:
        """The host key opens everything; a function key opens only its own HTTP function."""
        supplied = request.headers.get(KEY_HEADER)  # the header wins over the query, as in the host
        if supplied is None:
            supplied = request.args.get("code")
        if supplied is None:
            return False
        given = supplied.encode("utf-8")
        own = self._function_keys.get(function_name.lower()) if function_name else None
        return hmac.compare_digest(given, self._key) or (own is not None and hmac.compare_digest(given, own))

    def _event_grid_webhook(self, request: Request) -> Response:
        if request.method != "POST":
            return _empty(405, [("Allow", "POST")])
        if not self._authorized(request):
            return _empty(401)
        bound = self._event_grid.get(request.args.get("functionName", "").lower())
        if bound is None:
            return _empty(404)
        kind = request.headers.get("aeg-event-type", "").strip().lower()
        if kind not in {"subscriptionvalidation", "notification", "unsubscribe"}:
            return _json(400, {"error": "missing or unknown aeg-event-type header"})
        if kind == "unsubscribe":
            return _empty(202)
        try:
            payload = json.loads(request.get_data())
        except (ValueError, RecursionError):  # nested deeper than the decoder reads is not JSON to us
            return _json(400, {"error": "body is not valid JSON"})
        events = payload if isinstance(payload, list) else [payload]
        if not all(isinstance(event, dict) for event in events):
            return _json(400, {"error": "body must be an Event Grid event or an array of them"})
        if kind == "subscriptionvalidation":
            return _validation(bound.name, events)
        # Every event is delivered even when one fails; any failure makes Event Grid redeliver the batch.
        failures = 0
        for event in events:
            try:
                bound(_event_grid_event(event))
            except Exception:
                failures += 1
                logger.exception("function %s failed on Event Grid event %s", bound.name, event.get("id"))
        logger.info("function %s: %d Event Grid event(s), %d failed", bound.name, len(events), failures)
        return _empty(500 if failures else 202)

    # ---- timers ----------------------------------------------------------------------------

    def _timer_loop(self, timer: _TimerFunction) -> None:
        schedule = self._schedule_of(timer)
        if timer.bound.trigger.run_on_startup:
            self._fire(timer, past_due=False)
        due = next_fire(schedule, self._now())
        while not self._stopping.is_set():
            remaining = (due - self._now()).total_seconds()
            if remaining > 0:
                self._stopping.wait(min(remaining, _MAX_TIMER_WAIT_SECONDS))
                continue
            self._fire(timer, past_due=self._now() - due > PAST_DUE_SLACK)
            following, now = next_fire(schedule, due), self._now()
            if following <= now:
                logger.warning(
                    "timer %s: skipping tick(s) missed while the last run was going", timer.bound.name
                )
                following = next_fire(schedule, now)
            due = following

    def _fire(self, timer: _TimerFunction, *, past_due: bool) -> None:
        if not timer.lock.acquire(blocking=False):
            logger.warning("timer %s: skipping tick, the previous run is still going", timer.bound.name)
            return
        try:
            logger.info("timer function %s starting (past_due=%s)", timer.bound.name, past_due)
            timer.bound(TimerRequest(past_due=past_due))
        except Exception:
            logger.exception("timer function %s failed", timer.bound.name)
        finally:
            timer.lock.release()

    def _now(self) -> datetime:
        return self._clock().astimezone(timezone.utc)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)


def _validation(function_name: str, events: list[dict[str, Any]]) -> Response:
    """The Event Grid subscription handshake: echo the validation code (the function is not called)."""
    for event in events:
        data = event.get("data")
        validation = str(event.get("eventType", "")).lower() == SUBSCRIPTION_VALIDATION_EVENT
        if validation and isinstance(data, dict) and "validationCode" in data:
            logger.info("Event Grid subscription validated for %s", function_name)
            return _json(200, {"validationResponse": data["validationCode"]})
    return _json(400, {"error": "no subscription validation event with a validationCode"})
