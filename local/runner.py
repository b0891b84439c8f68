"""Local Azure Functions runner: serve a ``FunctionApp``'s own functions the way the host does.

Layer: local-only developer tooling (``local/``). It is never deployed and the app never imports
it; in Azure the Functions host does this job. It exists because the Core Tools host (``func``)
cannot be installed on these machines (design, section 7). It serves what the app registers and
nothing else, reading ``app.get_functions()`` once (no second route table): HTTP triggers under
``/api`` (named route parameters, declared methods, FUNCTION or ANONYMOUS auth, a body cap), the
Event Grid webhook, timers on six-field NCRONTAB schedules and Storage queue triggers (Azurite
locally) as host.json ``extensions.queues`` says; synchronous functions only. The host key
(``LOCAL_FUNCTION_KEY``) opens every route; a function key (``LOCAL_FUNCTION_KEY_<NAME>``) opens
only that HTTP function, as ``az functionapp function keys set`` does in Azure.

What it must not do: listen anywhere but the host it is given (loopback by default); log the
function key, a ``code`` query parameter or a query string; leak exception details or the key in
a response; change the app or the functions it serves.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
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
from concurrent import futures
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.decorators.function_app import Function
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from croniter import croniter
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException, NotFound, Unauthorized
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from failover.timeutil import parse_iso
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
_LEASE = 60  # seconds a running queue message stays hidden, pushed out again at half of it
_MIN_POLL_SECONDS = 0.1
_ROUTE_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WEBHOOK = ""  # the Event Grid webhook's endpoint in the URL map (a function name is never empty)


def next_fire(schedule: str, after: datetime) -> datetime:
    """First fire time (UTC) of a six-field NCRONTAB ``schedule`` strictly after the aware ``after``;
    ValueError for a bad schedule or one that never fires. Day and day of week must both match, as in
    https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions
    """
    if len(schedule.split()) != 6:
        raise ValueError(f"NCRONTAB schedule {schedule!r} must have 6 fields (second first)")
    start = after.astimezone(timezone.utc).replace(microsecond=0)
    try:
        fire: datetime = croniter(schedule, start, second_at_beginning=True, day_or=False).get_next(datetime)
    except (KeyError, TypeError) as exc:  # croniter's own errors are ValueErrors already
        raise ValueError(f"NCRONTAB schedule {schedule!r}: {exc}") from None
    return fire


_FUNCTIONS: weakref.WeakKeyDictionary[Any, list[Function]] = weakref.WeakKeyDictionary()


def registered_functions(app: func.FunctionApp) -> list[Function]:
    """``app.get_functions()``, read once per app and shared: a second call on the same app raises."""
    if app not in _FUNCTIONS:
        _FUNCTIONS[app] = list(app.get_functions())
    return _FUNCTIONS[app]


def function_keys_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """Per-function keys from ``LOCAL_FUNCTION_KEY_<FUNCTION_NAME>`` settings: {function name: key}."""
    p = FUNCTION_KEY_ENV_PREFIX
    return {k[len(p) :].lower(): v for k, v in env.items() if k.upper().startswith(p) and len(k) > len(p)}


def _text(setting: object) -> str:
    """A binding setting in lower case: an enum member's value (``AuthLevel.ANONYMOUS``: ``anonymous``)."""
    return str(getattr(setting, "value", setting)).lower()


@dataclasses.dataclass(frozen=True)
class _Bound:
    """One function of the app and the name of the argument its trigger fills."""

    name: str
    arg_name: str
    function: Callable[..., Any]
    trigger: Any
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)  # timers: runs never overlap

    def __call__(self, value: object) -> Any:
        return self.function(**{self.arg_name: value})


@dataclasses.dataclass(frozen=True)
class QueueOptions:
    """host.json ``extensions.queues``, with the host's defaults where a key is missing
    (https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue#host-json).
    """

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
        """Read ``extensions.queues`` of a host.json (a field from its name without ``_``, any case;
        time spans ``hh:mm:ss``); a missing file or section gives the defaults.
        """
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        given = {k.lower(): v for k, v in raw.get("extensions", {}).get("queues", {}).items()}
        read: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = str(given.get(f.name.replace("_", ""), "")).strip()
            if value and isinstance(f.default, timedelta):
                hours, minutes, seconds = value.split(":")
                read[f.name] = timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))
            elif value:
                read[f.name] = value.lower() if isinstance(f.default, str) else int(value)
        return cls(**read)


class _QueueListener:
    """Polls one queue for one function and settles its messages the way the Functions host does
    (https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger).

    Batches of ``batchSize``, a new poll once no more than ``newBatchThreshold`` messages run,
    slower polling up to ``maxPollingInterval`` while the queue is empty. Each message taken is on
    a lease: its function runs in another thread while the lease keeps it hidden, then the lease
    deletes it (success), makes it visible again after ``visibilityTimeout`` (failure) or moves it
    to ``<queue>-poison`` (taken ``maxDequeueCount`` times, or not base64 when it should be).
    """

    def __init__(self, bound: _Bound, options: QueueOptions, stopping: threading.Event) -> None:
        from azure.storage.queue import QueueClient

        connection = os.environ.get(str(bound.trigger.connection))
        if not connection:
            raise ValueError(f"queue function {bound.name}: setting {bound.trigger.connection!r} is not set")
        self._bound, self._options, self._stopping = bound, options, stopping
        self._queue = str(bound.trigger.queue_name)
        self._client = QueueClient.from_connection_string(connection, self._queue)
        self._poison = QueueClient.from_connection_string(connection, f"{self._queue}-poison")

    def run(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self._client.create_queue()
        options, wait, leases = self._options, 0.0, set[futures.Future[None]]()
        take = partial(
            self._client.receive_messages, max_messages=options.batch_size, visibility_timeout=_LEASE
        )
        workers = 2 * (options.batch_size + options.threshold)  # a lease and its call per message in flight
        with futures.ThreadPoolExecutor(workers, f"functions-queue-{self._bound.name}") as pool:
            while not self._stopping.wait(wait):
                polled, taken = len(leases) <= options.threshold, []
                try:
                    taken = list(take()) if polled else []
                except AzureError as exc:
                    logger.warning("queue %s: polling failed: %s", self._queue, type(exc).__name__)
                for message in taken:
                    lease = pool.submit(self._lease, message, pool)
                    leases.add(lease)
                    lease.add_done_callback(leases.discard)
                # A batch was taken: poll again at once. An empty queue: less and less often, as the host.
                slower = min(max(wait * 2, _MIN_POLL_SECONDS), options.max_polling_interval.total_seconds())
                wait = 0.0 if taken else slower if polled else _MIN_POLL_SECONDS

    def _lease(self, message: Any, pool: futures.Executor) -> None:
        """One message from taking to settling; the listener survives anything it does."""
        options, count, receipt = self._options, message.dequeue_count, message.pop_receipt
        try:
            text = message.content if isinstance(message.content, str) else ""
            try:
                encoded = options.message_encoding == "base64"
                body = base64.b64decode(text, validate=True) if encoded else text.encode("utf-8")
            except ValueError:
                body = None
            if body is None or count > options.max_dequeue_count:
                self._to_poison(message, receipt, "not base64" if body is None else "taken too often")
                return
            binding = QueueMessage(  # type: ignore[no-untyped-call]
                id=message.id,
                body=body,
                dequeue_count=count,
                expiration_time=message.expires_on,
                insertion_time=message.inserted_on,
                time_next_visible=message.next_visible_on,
                pop_receipt=receipt,
            )
            call = pool.submit(self._bound, binding)
            while futures.wait([call], _LEASE / 2).not_done:  # still running: keep it hidden
                try:
                    hidden = self._client.update_message(message.id, receipt, visibility_timeout=_LEASE)
                    receipt = hidden.pop_receipt
                except AzureError as exc:
                    logger.warning("queue message %s: lease not renewed: %s", message.id, type(exc).__name__)
            if (failure := call.exception()) is None:
                self._client.delete_message(message.id, receipt)
                logger.info("function %s: queue message %s done", self._bound.name, message.id)
                return
            what = (self._bound.name, message.id, count)
            logger.error("function %s failed on message %s (dequeue count %d)", *what, exc_info=failure)
            if count >= options.max_dequeue_count:
                self._to_poison(message, receipt, f"failed {count} times")
            else:
                retry = int(options.visibility_timeout.total_seconds())
                self._client.update_message(message.id, receipt, visibility_timeout=retry)
        except Exception:
            logger.exception("queue %s: message %s could not be settled", self._queue, message.id)

    def _to_poison(self, message: Any, receipt: str, why: str) -> None:
        with contextlib.suppress(ResourceExistsError):
            self._poison.create_queue()
        self._poison.send_message(message.content)
        self._client.delete_message(message.id, receipt)
        logger.warning("queue %s: message %s moved to its poison queue (%s)", self._queue, message.id, why)


class FunctionHost:
    """Serves one FunctionApp's HTTP, Event Grid, timer and queue functions on loopback. ``clock``
    (default: now, UTC) is what timers read to decide when to fire and whether a tick is past due;
    ``max_body_bytes`` caps request bodies (413 above it).
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
        self._clock: Callable[[], datetime] = clock or (lambda: datetime.now(timezone.utc))
        self._max_body_bytes = max_body_bytes
        self._by_kind: dict[str, dict[str, _Bound]] = {}
        for f in registered_functions(app):
            trigger: Any = f.get_trigger()
            name, user_function = str(f.get_function_name()), f.get_user_function()
            if inspect.iscoroutinefunction(user_function):
                raise ValueError(f"function {name} is async: the runner serves synchronous functions only")
            bound = _Bound(name, trigger.name, user_function, trigger)
            self._by_kind.setdefault(str(trigger.type), {})[name] = bound
        self._http = self._by_kind.get("httpTrigger", {})
        self._event_grid = {n.lower(): b for n, b in self._by_kind.get("eventGridTrigger", {}).items()}
        self._timers = self._by_kind.get("timerTrigger", {})
        self._anonymous = {n for n, b in self._http.items() if _text(b.trigger.auth_level) == "anonymous"}
        self._function_keys = {n.lower(): k.encode("utf-8") for n, k in (function_keys or {}).items()}
        for name, key in self._function_keys.items():
            if name not in {n.lower() for n in self._http}:
                raise ValueError(f"a function key is set for {name!r}, not an HTTP function of this app")
            if not key:
                raise ValueError(f"the function key of {name} must not be empty")
        self._routes: list[tuple[str, frozenset[str], str]] = []
        rules = [_rule(EVENTGRID_WEBHOOK_PATH, {"POST"}, _WEBHOOK)]
        for name, bound in self._http.items():
            declared = bound.trigger.methods
            methods = ALL_HTTP_METHODS if declared is None else frozenset(_text(m).upper() for m in declared)
            self._routes.append((f"api/{(bound.trigger.route or name).strip('/')}", methods, name))
            rules.append(_rule(*self._routes[-1]))
        self._url_map = Map(rules, strict_slashes=False, merge_slashes=False)  # never a redirect
        self._stopping = threading.Event()
        # Trigger type -> what runs one function of it in the background (its own thread, from
        # start()). Built here, so that a bad schedule or a missing queue connection fails now.
        starters: dict[str, Callable[[_Bound], Callable[[], None]]] = {
            "timerTrigger": lambda b: partial(self._timer_loop, b, _schedule(b, self._now())),
            "queueTrigger": lambda b: _QueueListener(b, queue_options or QueueOptions(), self._stopping).run,
        }
        wanted = {"timerTrigger": run_timers, "queueTrigger": run_queues}
        self._background = [
            (f"functions-{kind.removesuffix('Trigger')}-{name}", start(bound))
            for kind, start in starters.items()
            if wanted[kind]
            for name, bound in self._by_kind.get(kind, {}).items()
        ]
        self._server = LoopbackServer(self._dispatch, name=f"functions-http-{port}", host=host, port=port)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Bind, serve HTTP in a background thread and start one thread per timer and queue."""
        if self._server.running:
            raise RuntimeError("FunctionHost.start(): already serving")
        self._server.start()
        for name, target in self._background:
            self._threads.append(threading.Thread(target=target, name=name, daemon=True))
            self._threads[-1].start()
        logger.info("serving %s at %s", {k: len(v) for k, v in self._by_kind.items()}, self.base_url)

    def stop(self) -> None:
        """Stop serving and scheduling; wait (bounded) for the threads. Safe to call twice."""
        self._stopping.set()
        self._server.stop()
        deadline = time.monotonic() + 5.0  # all threads together get that long
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("thread %s still running after stop (a function is still going)", thread.name)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def routes(self) -> list[tuple[str, frozenset[str], str]]:
        """HTTP routes as served: (``api/<route>``, methods, function name), in declaration order."""
        return list(self._routes)

    def run_timer_now(self, function_name: str) -> None:
        """Invoke a timer function once, now, in this thread (``past_due=False``), once a scheduled run
        of it has ended; exceptions propagate.
        """
        bound = self._timers.get(function_name)
        if bound is None:
            raise KeyError(f"no timer function named {function_name!r}; timers: {sorted(self._timers)}")
        with bound.lock:
            bound(TimerRequest(past_due=False))

    def _dispatch(self, request: Request) -> Response:
        """Every request: one URL map (HTTP functions and the webhook), one key check, one log line."""
        request.max_content_length = self._max_body_bytes
        started = time.monotonic()
        webhook = request.path.rstrip("/").lower() == EVENTGRID_WEBHOOK_PATH  # in any case, as the host
        try:
            adapter = self._url_map.bind("localhost")
            name, values = adapter.match(EVENTGRID_WEBHOOK_PATH if webhook else request.path, request.method)
            if name not in self._anonymous and not self._authorized(request, name):
                raise Unauthorized()
            response = self._webhook(request) if webhook else self._http_function(request, name, values)
        except HTTPException as exc:  # 401, 404, 405 (saying what is allowed), 413: no body
            allow = sorted(getattr(exc, "valid_methods", None) or ())
            response = _reply(exc.code or 500, headers=[("Allow", ", ".join(allow))] if allow else [])
        elapsed = (time.monotonic() - started) * 1000
        logger.info("%s %s -> %d in %.0f ms", request.method, request.path, response.status_code, elapsed)
        return response

    def _authorized(self, request: Request, endpoint: str) -> bool:
        """The host key opens every endpoint; a function key opens only its own HTTP function."""
        supplied = request.headers.get(KEY_HEADER, request.args.get("code"))  # the header wins, as the host
        keys = (self._key, self._function_keys.get(endpoint.lower(), self._key))
        return supplied is not None and any(hmac.compare_digest(supplied.encode("utf-8"), k) for k in keys)

    def _http_function(self, request: Request, name: str, values: Mapping[str, Any]) -> Response:
        http_request = func.HttpRequest(
            request.method,
            request.url,
            headers=dict(request.headers.items()),  # repeated headers arrive joined, as in WSGI
            params=request.args.to_dict(),  # first value per key
            route_params={k: str(v) for k, v in values.items()},
            body=request.get_data(),
        )
        try:
            result = self._http[name](http_request)
        except Exception:
            logger.exception("function %s failed", name)
            return _reply(500)
        if not isinstance(result, func.HttpResponse):
            logger.error("function %s returned %s, not func.HttpResponse", name, type(result).__name__)
            return _reply(500)
        # Mapped back as the Python worker encodes it (azure.functions.http.HttpResponseConverter):
        # hop-by-hop and framing headers are the server's; a charset is added to text/* types only.
        headers = Headers(list(result.headers.items()))
        for framing in ("content-length", "transfer-encoding", "connection", "keep-alive"):
            headers.remove(framing)
        charset = f"; charset={result.charset}" if result.mimetype.startswith("text/") else ""
        headers.setdefault("Content-Type", result.mimetype + charset)
        return Response(result.get_body(), status=int(result.status_code), headers=headers)

    def _webhook(self, request: Request) -> Response:
        """Event Grid's webhook delivery, answered as the host's Event Grid extension does
        (https://learn.microsoft.com/azure/event-grid/webhook-event-delivery).
        """
        bound = self._event_grid.get(request.args.get("functionName", "").lower())
        if bound is None:
            raise NotFound()
        kind = request.headers.get("aeg-event-type", "").strip().lower()
        if kind == "unsubscribe":
            return _reply(202)
        if kind not in {"subscriptionvalidation", "notification"}:
            return _reply(400, {"error": "missing or unknown aeg-event-type header"})
        try:
            payload = json.loads(request.get_data())
            events = payload if isinstance(payload, list) else [payload]
            if not all(isinstance(event, dict) for event in events):
                raise ValueError("not an event")
        except (ValueError, RecursionError):  # nested deeper than the decoder reads is not JSON to us
            return _reply(400, {"error": "body is not an Event Grid event or a JSON array of them"})
        if kind == "subscriptionvalidation":  # the handshake: echo the code, the function is not called
            handshake: dict[str, Any] = next(
                (e for e in events if _text(e.get("eventType")) == SUBSCRIPTION_VALIDATION_EVENT), {}
            )
            data = handshake.get("data")
            if not isinstance(data, dict) or "validationCode" not in data:
                return _reply(400, {"error": "no subscription validation event with a validationCode"})
            logger.info("Event Grid subscription validated for %s", bound.name)
            return _reply(200, {"validationResponse": data["validationCode"]})
        # Every event is delivered even when one fails; any failure makes Event Grid redeliver the batch.
        failures = 0
        for event in events:
            try:
                bound(_event_grid_event(event))
            except Exception:
                failures += 1
                logger.exception("function %s failed on Event Grid event %s", bound.name, event.get("id"))
        logger.info("function %s: %d Event Grid event(s), %d failed", bound.name, len(events), failures)
        return _reply(500 if failures else 202)

    def _timer_loop(self, bound: _Bound, schedule: str) -> None:
        if bound.trigger.run_on_startup:
            self._fire(bound, past_due=False)
        due = next_fire(schedule, self._now())
        while not self._stopping.is_set():
            remaining = (due - self._now()).total_seconds()
            if remaining > 0:
                self._stopping.wait(min(remaining, _MAX_TIMER_WAIT_SECONDS))
                continue
            self._fire(bound, past_due=self._now() - due > PAST_DUE_SLACK)
            following, due = next_fire(schedule, due), next_fire(schedule, self._now())
            if following < due:
                logger.warning("timer %s: skipping tick(s) missed while the last run was going", bound.name)

    def _fire(self, bound: _Bound, *, past_due: bool) -> None:
        if not bound.lock.acquire(blocking=False):
            logger.warning("timer %s: skipping tick, the previous run is still going", bound.name)
            return
        try:
            logger.info("timer function %s starting (past_due=%s)", bound.name, past_due)
            bound(TimerRequest(past_due=past_due))
        except Exception:
            logger.exception("timer function %s failed", bound.name)
        finally:
            bound.lock.release()

    def _now(self) -> datetime:
        return self._clock().astimezone(timezone.utc)


def _schedule(bound: _Bound, now: datetime) -> str:
    """A timer's schedule, checked; ``%SETTING%`` is read from the environment, as the host does."""
    schedule = str(bound.trigger.schedule)
    setting = re.fullmatch(r"%([^%]+)%", schedule.strip())
    if setting and not (schedule := os.environ.get(setting.group(1), "")):
        raise ValueError(f"timer function {bound.name}: schedule setting {setting.group(1)!r} is not set")
    try:
        next_fire(schedule, now)
    except ValueError as exc:
        raise ValueError(f"timer function {bound.name}: {exc}") from None
    return schedule


def _rule(route: str, methods: Iterable[str], endpoint: str) -> Rule:
    """``/<route>`` with its ``{name}`` parameters as Werkzeug variables; anything else refused."""
    path = _ROUTE_PARAM_RE.sub(r"<\1>", route.strip("/"))
    if "{" in path or "}" in path or "//" in path:
        raise ValueError(f"route {route!r}: the runner serves named parameters ({{name}}) only")
    rule = Rule(f"/{path}", endpoint=endpoint, methods=sorted(methods))
    rule.methods = set(methods)  # Werkzeug adds HEAD to GET; the host serves what is declared
    return rule


def _reply(status: int, payload: object = None, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """An empty text response, or ``payload`` as JSON."""
    if payload is None:
        return Response(b"", status=status, headers=list(headers), content_type="text/plain; charset=utf-8")
    return Response(json.dumps(payload), status=status, content_type="application/json; charset=utf-8")


def _event_grid_event(raw: Mapping[str, Any]) -> func.EventGridEvent:
    """The binding the worker builds; a missing or unreadable field is None (the function judges it)."""
    event_time = None
    with contextlib.suppress(ValueError):  # Event Grid sends 7 fractional digits, more than Python reads
        event_time = parse_iso(raw.get("eventTime"))
    fields: dict[str, Any] = {k: raw.get(k) for k in ("id", "data", "topic", "subject")}
    fields.update(event_type=raw.get("eventType"), data_version=raw.get("dataVersion"))
    return func.EventGridEvent(event_time=event_time, **fields)
