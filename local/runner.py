"""Local Azure Functions runner: serve a ``FunctionApp``'s own functions the way the host does.

Layer: local-only developer tooling (``local/``). It is never deployed and the app never imports
it; in Azure the Functions host does this job. It exists because the Core Tools host (``func``)
cannot be installed on these machines (design, section 7).

What it does, built on Werkzeug (which ``azure-functions`` already installs):

- reads the functions from ``app.get_functions()`` exactly once; there is no route table here;
- HTTP triggers at ``/api/<route>`` (ASP.NET route templates: ``{name}``, ``{name?}``,
  ``{name=default}``, ``{*rest}``, constraints such as ``{id:int}``), with the declared methods
  (405 otherwise), the auth level (FUNCTION and ADMIN need the key in ``x-functions-key`` or the
  ``code`` query parameter; 401 otherwise), a request body cap (413) and the response mapped back
  the way the Python worker encodes ``func.HttpResponse``;
- Event Grid triggers at ``POST /runtime/webhooks/eventgrid?functionName=<name>``
  (``aeg-event-type`` SubscriptionValidation / Notification / Unsubscribe), key required;
- timer triggers on their 6-field NCRONTAB schedules (UTC), ``run_on_startup`` honoured, a run
  never overlapping with itself;
- queue triggers from Azure Storage queues (Azurite's queue service locally), through the real
  ``azure-storage-queue`` client and the ``azure.functions`` QueueMessage binding, as host.json
  ``extensions.queues`` says (``QueueOptions``): batches of ``batchSize``, a new poll once no more
  than ``newBatchThreshold`` run, polling slower up to ``maxPollingInterval`` while the queue is
  empty, a running message kept hidden (its visibility renewed), deleted on success, visible
  again after ``visibilityTimeout`` on failure, and moved to ``<queue>-poison`` once it was taken
  ``maxDequeueCount`` times; base64 message bodies unless ``messageEncoding`` is ``none``.

What it must not do: listen anywhere but the host it is given (loopback by default); log the
function key, a ``code`` query parameter or any full query string or URL; leak exception details
or the key in a response body; hold a second route table beside the app's own decorators; change
the app or the functions it serves.

Keys: the host key (``LOCAL_FUNCTION_KEY``) opens every route; a function key
(``LOCAL_FUNCTION_KEY_<FUNCTION_NAME>``, e.g. ``LOCAL_FUNCTION_KEY_POST_ALERT``) opens only that
HTTP function, as ``az functionapp function keys set`` does in Azure.

Differences from the real host, on purpose or for lack of need: the host key serves every auth
level and the Event Grid webhook (no master/system keys); literal route segments match
case-sensitively; the ``/api`` prefix is fixed (``host.json`` ``routePrefix`` is not read); Event
Grid events of one delivery run one after another, not in parallel; only HTTP, Event Grid, timer
and queue triggers are served; a queue listener's pool is sized ``batchSize + newBatchThreshold``
(the host's own limit) and every listener shares the process.

Run: ``LOCAL_FUNCTION_KEY=... python -m local.runner --app function_app --port 7071``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hmac
import importlib
import inspect
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import azure.functions as func
from azure.functions.decorators.function_app import Function
from azure.functions.timer import TimerRequest
from werkzeug.datastructures import Headers
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from failover.log_setup import configure_logging

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger("local.runner")  # not __name__: that is "__main__" under python -m

KEY_ENV_VAR = "LOCAL_FUNCTION_KEY"
FUNCTION_KEY_ENV_PREFIX = "LOCAL_FUNCTION_KEY_"  # + the function's name: LOCAL_FUNCTION_KEY_POST_ALERT
KEY_HEADER = "x-functions-key"
KEY_QUERY_PARAM = "code"
ROUTE_PREFIX = "api"
EVENTGRID_WEBHOOK_PATH = "/runtime/webhooks/eventgrid"
SUBSCRIPTION_VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024  # the host's default request body limit
ALL_HTTP_METHODS: frozenset[str] = frozenset(m.value for m in func.HttpMethod)
PAST_DUE_SLACK = timedelta(seconds=1)  # a tick later than this is reported as past due

_HTTP_TRIGGER = "httpTrigger"
_EVENTGRID_TRIGGER = "eventGridTrigger"
_TIMER_TRIGGER = "timerTrigger"
_QUEUE_TRIGGER = "queueTrigger"
_MAX_TIMER_WAIT_SECONDS = 0.5  # how often a sleeping timer re-reads the clock (and the stop flag)
_JOIN_TIMEOUT_SECONDS = 5.0
_READ_CHUNK_BYTES = 64 * 1024
# Hop-by-hop and framing headers are the server's business, not the function's.
_RESPONSE_HEADERS_NOT_COPIED = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


# --------------------------------------------------------------------------------------------
# NCRONTAB
# --------------------------------------------------------------------------------------------

_MONTH_NAMES = {
    n: i
    for i, n in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1
    )
}
_DAY_NAMES = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (field name, lowest, highest, names accepted in place of numbers)
_CRON_FIELDS: tuple[tuple[str, int, int, Mapping[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MONTH_NAMES),
    ("day of week", 0, 6, _DAY_NAMES),
)
_CRON_SEARCH_YEARS = 30  # covers Feb 29 on a given weekday (a 28-year cycle)
_NUMBER_RE = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class CronSchedule:
    """A parsed 6-field NCRONTAB schedule: ``second minute hour day month day-of-week``.

    Day and day of week must both match (NCrontab semantics); day of week is 0-6, Sunday = 0.
    """

    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        """Parse ``text``; raise ValueError naming the bad field."""
        fields = text.split()
        if len(fields) != len(_CRON_FIELDS):
            raise ValueError(
                f"NCRONTAB schedule {text!r} must have 6 fields "
                f"(second minute hour day month day-of-week), got {len(fields)}"
            )
        sets = [_parse_cron_field(value, *spec) for value, spec in zip(fields, _CRON_FIELDS, strict=True)]
        return cls(text, *sets)

    def next_after(self, after: datetime) -> datetime:
        """First fire time strictly after ``after``, to the second.

        An aware ``after`` is evaluated in UTC (the Functions default) and the result is UTC; a
        naive one is taken as wall-clock time and the result is naive.
        """
        t = after.astimezone(timezone.utc) if after.tzinfo is not None else after
        t = t.replace(microsecond=0) + timedelta(seconds=1)
        last_year = t.year + _CRON_SEARCH_YEARS
        while t.year <= last_year:
            if t.month not in self.months:
                year, month = t.year + t.month // 12, t.month % 12 + 1
                t = t.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)
            elif t.day not in self.days or (t.weekday() + 1) % 7 not in self.days_of_week:
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        raise ValueError(f"NCRONTAB schedule {self.text!r} never fires within {_CRON_SEARCH_YEARS} years")


def _parse_cron_field(text: str, name: str, low: int, high: int, names: Mapping[str, int]) -> frozenset[int]:
    def value(token: str) -> int:
        if _NUMBER_RE.fullmatch(token):
            number = int(token)
        elif token.lower() in names:
            number = names[token.lower()]
        else:
            raise ValueError(f"NCRONTAB {name} field: {token!r} is not a number")
        if not low <= number <= high:
            raise ValueError(f"NCRONTAB {name} field: {number} is outside {low}-{high}")
        return number

    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not _NUMBER_RE.fullmatch(step_text) or int(step_text) == 0:
                raise ValueError(f"NCRONTAB {name} field: bad step in {part!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = value(first), value(last)
            if start > end:
                raise ValueError(f"NCRONTAB {name} field: range {part!r} runs backwards")
        else:
            start = value(base)
            end = high if slash else start  # "a/n" means from a to the highest value, every n
        values.update(range(start, end + 1, step))
    return frozenset(values)


def next_fire(schedule: str, after: datetime) -> datetime:
    """First fire time of the NCRONTAB ``schedule`` strictly after ``after`` (see CronSchedule)."""
    return CronSchedule.parse(schedule).next_after(after)


# --------------------------------------------------------------------------------------------
# Route templates
# --------------------------------------------------------------------------------------------


def _text_converter(pattern: str) -> type[BaseConverter]:
    """A converter that constrains the segment but hands the text on unchanged, as the host does."""
    return type(f"TextConverter[{pattern}]", (BaseConverter,), {"regex": pattern})


_GUID = r"(?:\{)?[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}(?:\})?"
_CONSTRAINT_CONVERTERS: dict[str, type[BaseConverter]] = {
    "int": _text_converter(r"-?[0-9]+"),
    "long": _text_converter(r"-?[0-9]+"),
    "bool": _text_converter(r"(?i:true|false)"),
    "alpha": _text_converter(r"[A-Za-z]+"),
    "guid": _text_converter(_GUID),
}
_TEMPLATE_PARAM_RE = re.compile(r"\{([^{}]*)\}")
_PARAM_NAME_RE = re.compile(r"[^{}/?*=:]+")


@dataclass(frozen=True)
class _Endpoint:
    """What a Werkzeug rule resolves to: the function and how to name its route parameters."""

    function_name: str
    names: tuple[tuple[str, str], ...]  # (werkzeug variable, route parameter name)
    defaults: tuple[tuple[str, str], ...] = ()  # route parameters filled by a default value


@dataclass
class _Segment:
    pattern: str
    names: list[tuple[str, str]]
    omittable: bool = False
    default: tuple[str, str] | None = None


def _parse_template(template: str) -> list[_Segment]:
    segments: list[_Segment] = []
    counter = 0
    parts = template.strip("/").split("/") if template.strip("/") else []
    for index, text in enumerate(parts):
        if not text:
            raise ValueError(f"route {template!r} has an empty segment")
        pieces = _TEMPLATE_PARAM_RE.split(text)  # literal, param, literal, param, ...
        segment = _Segment(pattern="", names=[])
        for position, piece in enumerate(pieces):
            if position % 2 == 0:
                if any(c in piece for c in "{}<>"):
                    raise ValueError(f"route {template!r}: unsupported characters in {text!r}")
                segment.pattern += piece
                continue
            token = piece
            catch_all = token.startswith("*")
            token = token.lstrip("*")
            optional = token.endswith("?")
            token = token.rstrip("?")
            default: str | None = None
            if "=" in token:
                token, default = token.split("=", 1)
            name, _, constraint = token.partition(":")
            if not _PARAM_NAME_RE.fullmatch(name):
                raise ValueError(f"route {template!r}: bad parameter {piece!r}")
            if catch_all and index != len(parts) - 1:
                raise ValueError(f"route {template!r}: a catch-all parameter must be the last segment")
            variable = f"p{counter}"
            counter += 1
            converter = "path" if catch_all else _converter_name(constraint)
            segment.pattern += f"<{converter}:{variable}>" if converter else f"<{variable}>"
            segment.names.append((variable, name))
            if catch_all or optional or default is not None:
                if len(pieces) != 3 or pieces[0] or pieces[2]:
                    raise ValueError(f"route {template!r}: optional {piece!r} must be a whole segment")
                segment.omittable = True
                if default is not None:
                    segment.default = (name, default)
        segments.append(segment)
    first_omittable = len(segments)
    while first_omittable > 0 and segments[first_omittable - 1].omittable:
        first_omittable -= 1
    if any(s.omittable for s in segments[:first_omittable]):
        raise ValueError(f"route {template!r}: only optional parameters may follow an optional one")
    return segments


def _converter_name(constraints: str) -> str:
    """``int`` of ``int``, ``int:min(1)``: the first constraint, if it is one we enforce; else ''."""
    first = re.split(r"[:(]", constraints, maxsplit=1)[0].lower()
    if first in _CONSTRAINT_CONVERTERS:
        return f"c_{first}"
    return ""  # other constraints (min, length, regex, ...) are not enforced locally


def _rules_for(template: str, methods: frozenset[str], function_name: str) -> list[Rule]:
    """Werkzeug rules for one ASP.NET route template: one per way of leaving out optional tails."""
    segments = _parse_template(template)
    rules = []
    cut = len(segments)
    while True:
        kept, left_out = segments[:cut], segments[cut:]
        path = "/".join([ROUTE_PREFIX, *(s.pattern for s in kept)])
        endpoint = _Endpoint(
            function_name,
            names=tuple(n for s in kept for n in s.names),
            defaults=tuple(s.default for s in left_out if s.default is not None),
        )
        rule = Rule("/" + path, endpoint=endpoint, methods=sorted(methods))
        rule.methods = set(methods)  # Werkzeug adds HEAD to GET routes; the host serves what is declared
        rules.append(rule)
        if cut == 0 or not segments[cut - 1].omittable:
            return rules
        cut -= 1


# --------------------------------------------------------------------------------------------
_FUNCTIONS: weakref.WeakKeyDictionary[Any, list[Function]] = weakref.WeakKeyDictionary()


def registered_functions(app: func.FunctionApp) -> list[Function]:
    """``app.get_functions()``, read once per app and shared: a second call on the same app raises."""
    if app not in _FUNCTIONS:
        _FUNCTIONS[app] = list(app.get_functions())
    return _FUNCTIONS[app]


# Function metadata read from app.get_functions()
# --------------------------------------------------------------------------------------------

UserFunction = Callable[..., Any]


@dataclass(frozen=True)
class _HttpFunction:
    name: str
    arg_name: str
    function: UserFunction
    template: str
    methods: frozenset[str]
    requires_key: bool


@dataclass(frozen=True)
class _EventGridFunction:
    name: str
    arg_name: str
    function: UserFunction


@dataclass
class _TimerFunction:
    name: str
    arg_name: str
    function: UserFunction
    schedule_text: str
    run_on_startup: bool
    lock: threading.Lock = field(default_factory=threading.Lock)  # a timer never overlaps itself


def _enum_value(value: object) -> str:
    return str(value.value) if isinstance(value, Enum) else str(value)


def _requires_key(auth_level: object) -> bool:
    # FUNCTION and ADMIN need a key; anything unrecognised is treated as FUNCTION (the host's default).
    return auth_level is None or _enum_value(auth_level).lower() != "anonymous"


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
# Calling user functions
# --------------------------------------------------------------------------------------------


class _EventLoopThread:
    """One event loop for every ``async def`` function, as in the worker: loop-bound clients keep working."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="functions-event-loop", daemon=True
                )
                self._thread.start()
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_JOIN_TIMEOUT_SECONDS)
        if thread.is_alive():
            logger.warning("event loop thread did not stop within %.0f s", _JOIN_TIMEOUT_SECONDS)
        else:
            loop.close()


# --------------------------------------------------------------------------------------------
# Queue triggers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueOptions:
    """host.json ``extensions.queues``, with the host's defaults where a key is missing.

    The host takes up to ``batch_size`` messages per poll and polls again once no more than
    ``new_batch_threshold`` run; an empty queue is polled less and less often, up to
    ``max_polling_interval``. A message that failed becomes visible again after
    ``visibility_timeout``; one taken ``max_dequeue_count`` times goes to ``<queue>-poison``.
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
        """Read ``extensions.queues`` of a host.json; a missing file or section gives the defaults."""
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        section = raw.get("extensions", {}).get("queues", {}) if isinstance(raw, dict) else {}
        if not isinstance(section, dict):
            raise ValueError(f"{path}: extensions.queues must be an object")
        known = {k.lower(): v for k, v in section.items()}
        defaults = cls()
        return cls(
            batch_size=int(known.get("batchsize", defaults.batch_size)),
            new_batch_threshold=(int(known["newbatchthreshold"]) if "newbatchthreshold" in known else None),
            visibility_timeout=_timespan(known.get("visibilitytimeout"), defaults.visibility_timeout),
            max_dequeue_count=int(known.get("maxdequeuecount", defaults.max_dequeue_count)),
            max_polling_interval=_timespan(known.get("maxpollinginterval"), defaults.max_polling_interval),
            message_encoding=str(known.get("messageencoding", defaults.message_encoding)).lower(),
        )


def _timespan(value: object, default: timedelta) -> timedelta:
    """A host.json time span: ``hh:mm:ss`` (``d.hh:mm:ss``, fractions allowed) or milliseconds."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return timedelta(milliseconds=value)
    match = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", str(value).strip())
    if match is None:
        raise ValueError(f"host.json: {value!r} is not a time span (hh:mm:ss)")
    days, hours, minutes, seconds = match.groups()
    return timedelta(days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=float(seconds))


@dataclass
class _QueueFunction:
    name: str
    arg_name: str
    function: UserFunction
    queue_name: str
    connection: str  # the app setting holding the storage connection string


_QUEUE_LEASE = timedelta(minutes=1)  # a running message stays hidden this long, renewed at half of it
_MIN_POLL_SECONDS = 0.1


class _QueueListener:
    """Polls one queue for one function and runs its messages the way the Functions host does."""

    def __init__(
        self, host: FunctionHost, function: _QueueFunction, options: QueueOptions, stopping: threading.Event
    ) -> None:
        from azure.storage.queue import QueueClient

        connection = os.environ.get(function.connection)
        if not connection:
            raise ValueError(
                f"queue function {function.name}: setting {function.connection!r} (its connection) is not set"
            )
        self._host = host
        self._function = function
        self._options = options
        self._stopping = stopping
        self._client = QueueClient.from_connection_string(connection, function.queue_name)
        self._poison = QueueClient.from_connection_string(connection, f"{function.queue_name}-poison")
        self._running = threading.Semaphore(0)
        self._in_flight = 0
        self._lock = threading.Lock()
        self._pool: Any = None

    def run(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from azure.core.exceptions import AzureError, ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self._client.create_queue()
        options = self._options
        wait = _MIN_POLL_SECONDS
        queue = self._function.queue_name
        workers = options.batch_size + options.threshold
        with ThreadPoolExecutor(workers, thread_name_prefix=f"functions-queue-{self._function.name}") as pool:
            self._pool = pool
            while not self._stopping.is_set():
                with self._lock:
                    room = self._in_flight <= options.threshold
                taken = 0
                if room:
                    try:
                        taken = self._poll()
                    except AzureError as exc:
                        logger.warning("queue %s: polling failed: %s", queue, type(exc).__name__)
                if taken:
                    wait = _MIN_POLL_SECONDS
                    continue
                self._stopping.wait(wait)
                if room:  # an empty queue is polled less and less often, as in the host
                    wait = min(wait * 2, options.max_polling_interval.total_seconds())

    def _poll(self) -> int:
        lease = int(_QUEUE_LEASE.total_seconds())
        messages = list(
            self._client.receive_messages(max_messages=self._options.batch_size, visibility_timeout=lease)
        )
        for message in messages:
            with self._lock:
                self._in_flight += 1
            self._pool.submit(self._process, message)
        return len(messages)

    def _process(self, message: Any) -> None:
        try:
            self._handle(message)
        except Exception:  # the listener must survive anything one message does
            logger.exception(
                "queue %s: message %s could not be settled", self._function.queue_name, message.id
            )
        finally:
            with self._lock:
                self._in_flight -= 1

    def _handle(self, message: Any) -> None:
        function, options = self._function, self._options
        if message.dequeue_count > options.max_dequeue_count:
            self._to_poison(message, "taken more than maxDequeueCount times")
            return
        body = self._body(message.content)
        if body is None:
            self._to_poison(message, f"not {options.message_encoding} encoded")
            return
        renewal = _Renewal(self._client, message, _QUEUE_LEASE)
        try:
            self._host._call(function.function, {function.arg_name: _queue_message(message, body)})
        except Exception:
            renewal.stop()
            logger.exception(
                "function %s failed on message %s (dequeue count %d)",
                function.name,
                message.id,
                message.dequeue_count,
            )
            if message.dequeue_count >= options.max_dequeue_count:
                self._to_poison(message, f"failed {message.dequeue_count} times")
            else:
                retry = int(options.visibility_timeout.total_seconds())
                self._client.update_message(message.id, renewal.pop_receipt, visibility_timeout=retry)
            return
        renewal.stop()
        self._client.delete_message(message.id, renewal.pop_receipt)
        logger.info("function %s: queue message %s done", function.name, message.id)

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
            "queue %s: message %s moved to %s-poison (%s)",
            self._function.queue_name,
            message.id,
            self._function.queue_name,
            why,
        )


class _Renewal:
    """Keeps a running message hidden: its visibility is pushed out at half the lease, until stopped."""

    def __init__(self, client: Any, message: Any, lease: timedelta) -> None:
        self._client = client
        self._id = message.id
        self.pop_receipt: str = message.pop_receipt
        self._lease = lease
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name=f"functions-queue-renew-{self._id}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        from azure.core.exceptions import AzureError

        seconds = self._lease.total_seconds()
        while not self._stop.wait(seconds / 2):
            try:
                with self._lock:
                    updated = self._client.update_message(
                        self._id, self.pop_receipt, visibility_timeout=int(seconds)
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
# HTTP plumbing
# --------------------------------------------------------------------------------------------

_SECRET_QUERY_RE = re.compile(r"([?&]code=)[^&\s'\"]*", re.IGNORECASE)


class _RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler with logging that never shows a query string (``code`` is a secret)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # command and path are unset when the request line itself was bad
        path = (getattr(self, "path", None) or "-").split("?", 1)[0]
        logger.info("%s %s -> %s", getattr(self, "command", None) or "-", path, code)

    def log_error(self, format: str, *args: Any) -> None:
        logger.warning("server: %s", _SECRET_QUERY_RE.sub(r"\1***", format % args))

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("server: %s", _SECRET_QUERY_RE.sub(r"\1***", format % args))


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
    headers = Headers()
    for name, value in result.headers.items():
        if name.lower() not in _RESPONSE_HEADERS_NOT_COPIED:
            headers.add(name, value)
    if "content-type" not in headers:
        # azure.functions.http.HttpResponseConverter: charset is added to text/* types only.
        mimetype, charset = result.mimetype, result.charset
        text = mimetype.startswith("text/")
        headers["Content-Type"] = f"{mimetype}; charset={charset}" if text else mimetype
    return Response(result.get_body(), status=int(result.status_code), headers=headers)


def _parse_event_time(value: object) -> datetime | None:
    """``eventTime`` as an aware datetime; Event Grid sends 7 fractional digits and ``Z``."""
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"[Zz]$", "+00:00", value.strip())
    # Python 3.10's fromisoformat takes exactly 3 or 6 fractional digits.
    text = re.sub(r"\.([0-9]+)", lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        logger.warning("Event Grid event has an unparseable eventTime; passing event_time=None")
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


_EVENT_FIELDS = (
    ("id", "id"),
    ("data", "data"),
    ("topic", "topic"),
    ("subject", "subject"),
    ("event_type", "eventType"),
    ("data_version", "dataVersion"),
)


def _event_grid_event(raw: Mapping[str, Any]) -> func.EventGridEvent:
    # A missing field arrives as None, as with the worker's own decoder: the function judges the event.
    fields: dict[str, Any] = {argument: raw.get(key) for argument, key in _EVENT_FIELDS}
    return func.EventGridEvent(event_time=_parse_event_time(raw.get("eventTime")), **fields)


# --------------------------------------------------------------------------------------------
# The host
# --------------------------------------------------------------------------------------------


class FunctionHost:
    """Serves one FunctionApp's HTTP, Event Grid and timer functions on loopback.

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
        self._host = host
        self._port = port
        self._run_timers = run_timers
        self._clock: Callable[[], datetime] = clock or (lambda: datetime.now(timezone.utc))
        self._max_body_bytes = max_body_bytes
        self._http: dict[str, _HttpFunction] = {}
        self._event_grid: dict[str, _EventGridFunction] = {}  # keyed by lower-cased name
        self._timers: dict[str, _TimerFunction] = {}
        self._queues: dict[str, _QueueFunction] = {}
        self._run_queues = run_queues
        self._queue_options = queue_options or QueueOptions()
        self._read_functions(registered_functions(app))
        self._function_keys = self._check_function_keys(function_keys or {})
        self._url_map = self._build_url_map()
        self._schedules = (
            {name: self._schedule_of(timer) for name, timer in self._timers.items()} if run_timers else {}
        )
        self._event_loop = _EventLoopThread()
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._threads: list[threading.Thread] = []
        self._started = False

    # ---- public API ------------------------------------------------------------------------

    def start(self) -> None:
        """Bind, serve HTTP in a background thread and start one scheduler thread per timer."""
        if self._started:
            raise RuntimeError("FunctionHost.start() may be called once")
        self._started = True
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # Bind ourselves so a busy port is an OSError here, not Werkzeug's sys.exit(1).
        with socket.create_server((self._host, self._port), family=family, backlog=128) as listener:
            server = make_server(
                self._host,
                self._port,
                self._wsgi,
                threaded=True,
                request_handler=_RequestHandler,
                fd=listener.fileno(),
            )
        self._server = server
        self._spawn(f"functions-http-{self.port}", server.serve_forever)
        for timer in self._timers.values() if self._run_timers else ():
            self._spawn(f"functions-timer-{timer.name}", self._timer_loop, timer)
        for queued in self._queues.values() if self._run_queues else ():
            queue_listener = _QueueListener(self, queued, self._queue_options, self._stopping)
            self._spawn(f"functions-queue-{queued.name}", queue_listener.run)
        logger.info(
            "serving %d HTTP route(s), %d Event Grid, %d timer and %d queue function(s) at %s",
            len(self._http),
            len(self._event_grid),
            len(self._timers),
            len(self._queues),
            self.base_url,
        )

    def stop(self) -> None:
        """Stop serving and scheduling; wait (bounded) for the threads. Safe to call twice."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        deadline = time.monotonic() + _JOIN_TIMEOUT_SECONDS
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("thread %s still running after stop (a function is still going)", thread.name)
        self._threads = []
        self._event_loop.close()

    @property
    def port(self) -> int:
        if self._server is not None:
            return int(self._server.server_address[1])
        if self._port == 0:
            raise RuntimeError("the port is chosen when the host starts; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def routes(self) -> list[tuple[str, frozenset[str], str]]:
        """HTTP routes as served: (``api/<template>``, methods, function name), in declaration order."""
        return [
            ("/".join(filter(None, [ROUTE_PREFIX, f.template.strip("/")])), f.methods, f.name)
            for f in self._http.values()
        ]

    def run_timer_now(self, function_name: str) -> None:
        """Invoke a timer function once, now, in this thread (``past_due=False``).

        Waits if a scheduled run of the same function is in progress. Exceptions from the function
        propagate to the caller.
        """
        timer = self._timers.get(function_name)
        if timer is None:
            raise KeyError(f"no timer function named {function_name!r}; timers: {sorted(self._timers)}")
        with timer.lock:
            self._invoke_timer(timer, past_due=False)

    # ---- reading the app -------------------------------------------------------------------

    def _read_functions(self, functions: Iterable[Function]) -> None:
        for f in functions:
            trigger: Any = f.get_trigger()  # HttpTrigger, EventGridTrigger, TimerTrigger, ...
            name = str(f.get_function_name())  # always set once get_functions() has run
            kind = getattr(trigger, "type", None)
            user_function: UserFunction = f.get_user_function()
            if kind == _HTTP_TRIGGER:
                declared = trigger.methods
                methods = (
                    ALL_HTTP_METHODS
                    if declared is None
                    else frozenset(_enum_value(m).upper() for m in declared)
                )
                self._http[name] = _HttpFunction(
                    name,
                    trigger.name,
                    user_function,
                    str(trigger.route if trigger.route is not None else name),
                    methods,
                    _requires_key(trigger.auth_level),
                )
            elif kind == _EVENTGRID_TRIGGER:
                self._event_grid[name.lower()] = _EventGridFunction(name, trigger.name, user_function)
            elif kind == _QUEUE_TRIGGER:
                self._queues[name] = _QueueFunction(
                    name, trigger.name, user_function, str(trigger.queue_name), str(trigger.connection)
                )
            elif kind == _TIMER_TRIGGER:
                self._timers[name] = _TimerFunction(
                    name, trigger.name, user_function, trigger.schedule, bool(trigger.run_on_startup)
                )
            else:
                logger.warning("function %s has a %s trigger, which this runner does not serve", name, kind)

    def _build_url_map(self) -> Map:
        rules: list[Rule] = []
        for f in self._http.values():
            rules.extend(_rules_for(f.template, f.methods, f.name))
        seen: dict[str, list[tuple[frozenset[str], str]]] = {}
        for rule in rules:
            assert isinstance(rule.endpoint, _Endpoint) and rule.methods is not None
            methods, name = frozenset(rule.methods), rule.endpoint.function_name
            for other_methods, other in seen.get(rule.rule, []):
                if other != name and methods & other_methods:
                    raise ValueError(
                        f"functions {other} and {name} both serve "
                        f"{sorted(methods & other_methods)} {rule.rule}"
                    )
            seen.setdefault(rule.rule, []).append((methods, name))
        converters = {f"c_{name}": converter for name, converter in _CONSTRAINT_CONVERTERS.items()}
        return Map(
            rules, converters=converters, strict_slashes=False, merge_slashes=False, redirect_defaults=False
        )

    @staticmethod
    def _schedule_of(timer: _TimerFunction) -> CronSchedule:
        try:
            schedule = CronSchedule.parse(_resolve_setting(timer.schedule_text))
            schedule.next_after(datetime.now(timezone.utc))  # one that never fires fails here, not later
        except ValueError as exc:
            raise ValueError(f"timer function {timer.name}: {exc}") from None
        return schedule

    # ---- invoking --------------------------------------------------------------------------

    def _call(self, function: UserFunction, arguments: Mapping[str, Any]) -> Any:
        if inspect.iscoroutinefunction(function):
            return self._event_loop.run(function(**arguments))
        return function(**arguments)

    # ---- WSGI ------------------------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except Exception:
            logger.exception("runner error on %s %s", request.method, request.path)
            response = _empty(500)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        if request.path.rstrip("/").lower() == EVENTGRID_WEBHOOK_PATH:
            return self._event_grid_webhook(request)
        try:
            endpoint, values = self._url_map.bind("localhost").match(request.path, method=request.method)
        except MethodNotAllowed as exc:
            return _empty(405, [("Allow", ", ".join(sorted(exc.valid_methods or ())))])
        except NotFound:
            return _empty(404)
        assert isinstance(endpoint, _Endpoint)
        function = self._http[endpoint.function_name]
        if function.requires_key and not self._authorized(request, function.name):
            return _empty(401)
        body = self._read_body(request)
        if body is None:
            return _empty(413)
        route_params = dict(endpoint.defaults)
        route_params.update({name: str(values[variable]) for variable, name in endpoint.names})
        http_request = func.HttpRequest(
            request.method,
            request.url,
            headers=dict(request.headers.items()),  # repeated headers arrive joined, as in WSGI
            params=request.args.to_dict(),  # first value per key
            route_params=route_params,
            body=body,
        )
        started = time.monotonic()
        try:
            result = self._call(function.function, {function.arg_name: http_request})
        except Exception:
            logger.exception("function %s failed", function.name)
            return _empty(500)
        response = _response_from(result, function.name)
        logger.info(
            "function %s -> %d in %.0f ms",
            function.name,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    def _authorized(self, request: Request, function_name: str | None = None) -> bool:
        """The host key opens everything; a function key opens only its own HTTP function."""
        # The header wins over the query parameter, as in the host.
        supplied = request.headers.get(KEY_HEADER)
        if supplied is None:
            supplied = request.args.get(KEY_QUERY_PARAM)
        if supplied is None:
            return False
        given = supplied.encode("utf-8")
        own = self._function_keys.get(function_name.lower()) if function_name else None
        host_ok = hmac.compare_digest(given, self._key)
        return host_ok or (own is not None and hmac.compare_digest(given, own))

    def _check_function_keys(self, keys: Mapping[str, str]) -> dict[str, bytes]:
        known = {name.lower() for name in self._http}
        checked: dict[str, bytes] = {}
        for name, key in keys.items():
            if name.lower() not in known:
                raise ValueError(f"a function key is set for {name!r}, not an HTTP function of this app")
            if not key:
                raise ValueError(f"the function key of {name} must not be empty")
            checked[name.lower()] = key.encode("utf-8")
        return checked

    def _read_body(self, request: Request) -> bytes | None:
        """The whole body, or None if it is over the cap (checked before and while reading)."""
        if request.content_length is not None and request.content_length > self._max_body_bytes:
            return None
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = request.stream.read(min(_READ_CHUNK_BYTES, self._max_body_bytes + 1 - total))
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > self._max_body_bytes:
                return None
            chunks.append(chunk)

    def _event_grid_webhook(self, request: Request) -> Response:
        if request.method != "POST":
            return _empty(405, [("Allow", "POST")])
        if not self._authorized(request):
            return _empty(401)
        function = self._event_grid.get(request.args.get("functionName", "").lower())
        if function is None:
            return _empty(404)
        kind = request.headers.get("aeg-event-type", "").strip().lower()
        if kind not in {"subscriptionvalidation", "notification", "unsubscribe"}:
            return _json(400, {"error": "missing or unknown aeg-event-type header"})
        if kind == "unsubscribe":
            return _empty(202)
        body = self._read_body(request)
        if body is None:
            return _empty(413)
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # nested deeper than the decoder reads is not JSON to us
            return _json(400, {"error": "body is not valid JSON"})
        events = payload if isinstance(payload, list) else [payload]
        if not all(isinstance(event, dict) for event in events):
            return _json(400, {"error": "body must be an Event Grid event or an array of them"})
        if kind == "subscriptionvalidation":
            for event in events:
                data = event.get("data")
                if (
                    str(event.get("eventType", "")).lower() == SUBSCRIPTION_VALIDATION_EVENT.lower()
                    and isinstance(data, dict)
                    and "validationCode" in data
                ):
                    logger.info("Event Grid subscription validated for %s", function.name)
                    return _json(200, {"validationResponse": data["validationCode"]})
            return _json(400, {"error": "no subscription validation event with a validationCode"})
        # Every event is delivered even when one fails; any failure makes Event Grid redeliver the batch.
        failures = 0
        for event in events:
            try:
                self._call(function.function, {function.arg_name: _event_grid_event(event)})
            except Exception:
                failures += 1
                logger.exception("function %s failed on Event Grid event %s", function.name, event.get("id"))
        logger.info("function %s: %d Event Grid event(s), %d failed", function.name, len(events), failures)
        return _empty(500 if failures else 202)

    # ---- timers ----------------------------------------------------------------------------

    def _timer_loop(self, timer: _TimerFunction) -> None:
        schedule = self._schedules[timer.name]
        if timer.run_on_startup:
            self._fire(timer, past_due=False)
        due = schedule.next_after(self._now())
        while not self._stopping.is_set():
            remaining = (due - self._now()).total_seconds()
            if remaining > 0:
                self._stopping.wait(min(remaining, _MAX_TIMER_WAIT_SECONDS))
                continue
            self._fire(timer, past_due=self._now() - due > PAST_DUE_SLACK)
            following = schedule.next_after(due)
            now = self._now()
            if following <= now:
                logger.warning("timer %s: skipping tick(s) missed while the last run was going", timer.name)
                following = schedule.next_after(now)
            due = following

    def _fire(self, timer: _TimerFunction, *, past_due: bool) -> None:
        if not timer.lock.acquire(blocking=False):
            logger.warning("timer %s: skipping tick, the previous run is still going", timer.name)
            return
        try:
            self._invoke_timer(timer, past_due=past_due)
        except Exception:
            logger.exception("timer function %s failed", timer.name)
        finally:
            timer.lock.release()

    def _invoke_timer(self, timer: _TimerFunction, *, past_due: bool) -> None:
        logger.info("timer function %s starting (past_due=%s)", timer.name, past_due)
        self._call(timer.function, {timer.arg_name: TimerRequest(past_due=past_due)})

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)


# --------------------------------------------------------------------------------------------
# Blocking entry point and CLI
# --------------------------------------------------------------------------------------------


def function_keys_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """Per-function keys from ``LOCAL_FUNCTION_KEY_<FUNCTION_NAME>`` settings: {function name: key}."""
    return {
        name[len(FUNCTION_KEY_ENV_PREFIX) :].lower(): value
        for name, value in env.items()
        if name.upper().startswith(FUNCTION_KEY_ENV_PREFIX) and len(name) > len(FUNCTION_KEY_ENV_PREFIX)
    }


def serve_forever(
    app: func.FunctionApp,
    *,
    function_key: str,
    function_keys: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int = 7071,
    queue_options: QueueOptions | None = None,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then stop cleanly."""
    runner = FunctionHost(
        app,
        function_key=function_key,
        function_keys=function_keys,
        host=host,
        port=port,
        queue_options=queue_options,
    )
    stop = threading.Event()

    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)  # no logging inside a signal handler
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        runner.start()
        while not stop.wait(1.0):
            pass
        logger.info("received %s, stopping", signal.Signals(received[0]).name if received else "stop")
    finally:
        runner.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _load_app(spec: str) -> func.FunctionApp:
    module_name, _, attribute = spec.partition(":")
    module = importlib.import_module(module_name)
    app = getattr(module, attribute or "app", None)
    if not isinstance(app, func.FunctionApp):
        raise SystemExit(f"error: {module_name}.{attribute or 'app'} is not an azure.functions.FunctionApp")
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.runner",
        description="Serve a FunctionApp locally the way the Functions host does. The host key is read "
        f"from the environment variable {KEY_ENV_VAR}, function keys from "
        f"{FUNCTION_KEY_ENV_PREFIX}<FUNCTION_NAME>.",
    )
    parser.add_argument(
        "--app",
        default="function_app",
        help="module holding the FunctionApp, or module:attribute (default: function_app)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071, help="port (default: 7071)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    args = parser.parse_args(argv)
    key = os.environ.get(KEY_ENV_VAR)
    if not key:
        print(
            f"error: {KEY_ENV_VAR} is not set; set it to the function key the local runner must accept",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    configure_logging()
    serve_forever(
        _load_app(args.app),
        function_key=key,
        function_keys=function_keys_from_env(os.environ),
        host=args.host,
        port=args.port,
        queue_options=QueueOptions.from_host_json(Path.cwd() / "host.json"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
