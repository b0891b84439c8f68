"""Bad input, generated: every parser and every endpoint, over 10,000 payloads in all.

Properties (design invariant 9): a parser returns a `ParseResult` or raises `InvalidPayloadError`,
nothing else, and what it returns is safe to store; an endpoint never answers 500 (nor 503 while
storage is up: that would be an exception caught by the edge), and a payload that is refused (400,
413) or ignored (200 `ignored`) never reaches storage (the adapter counts no round trip) and never
leaves a record (the last test checks that every row in the table came from an accepted payload).

Payloads are derived from the documented fixtures and from a varied storm by mutation (fields
removed, replaced by random JSON or awkward values, re-typed, re-cased, strings mangled with
control characters, lone surrogates, huge or nested values) and generated as random JSON and
random bytes. Example counts are in `EXAMPLES`; their sum is at least 10,000.
"""

from __future__ import annotations

import copy
import http.client
import json
import math
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import failover.sources.event_grid
from failover.errors import InvalidPayloadError
from failover.model import Signal, signal_hash
from failover.scope import OTHER_RESOURCE
from failover.sources.event_grid import parse_event
from failover.sources.monitor import MAX_ALERT_BYTES, parse_alert
from failover.sources.parsing import ParseResult
from failover.wiring import Runtime
from handlers._runtime import set_runtime
from tests.conftest import FakeClock
from tests.payloads import FIXTURES
from tests.reliability.stack import EVENT_GRID_PATH, KEY_HEADER, Served, install_runtime
from tests.reliability.workload import ALERT, T0, zone_outage

pytestmark = pytest.mark.integration

EXAMPLES = {
    "parse_alert_mutated": 2000,
    "parse_alert_random": 1000,
    "parse_event_mutated": 2000,
    "parse_event_random": 1000,
    "post_alert_mutated": 1200,
    "post_alert_random": 500,
    "event_grid_mutated": 1000,
    "event_grid_random": 400,
    "lookup_query": 600,
    "lookup_path": 600,
}
RUN: Counter[str] = Counter()


def fuzz(name: str) -> Any:
    return settings(
        max_examples=EXAMPLES[name],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


RECEIVED = datetime(2026, 11, 25, 7, 30, tzinfo=timezone.utc)
_STORM = zone_outage(4, prefix="pg-fuzz", seed=99, duplicates=0)
ALERT_BASES: list[Any] = [
    json.loads(p.read_text()) for p in sorted((FIXTURES / "monitor").glob("*.json"))
] + [d.body for d in _STORM.deliveries if d.kind == ALERT]
EVENT_BASES: list[Any] = [
    json.loads(p.read_text())[0] for p in sorted((FIXTURES / "event_grid").glob("*.json"))
] + [d.body[0] for d in _STORM.deliveries if d.kind != ALERT]
PG = "/subscriptions/s/resourceGroups/r/providers/Microsoft.DBforPostgreSQL/flexibleServers/"
AWKWARD: st.SearchStrategy[Any] = st.sampled_from(
    [
        None, "", " ", "\t", 0, -1, 1, 2**63, -(2**63) - 1, 10**30, 1.5, -0.0, 1e308,
        math.inf, -math.inf, math.nan,
        True, False, [], {}, [None], [[]], {"": None}, {"value": None}, {"value": "Fired"},
        "null", "true", "[]", "{}", "NaN",
        "\x00", "\x1f", "\x7f", "\u0085", "\u2028", "\ud800", "\udfff", "\ufeff", "e\u0301", "\U0001f600",
        "a/b", "a\\b", "a#b", "a?b", "a~b", "~", "~~", "%2F", "%00", "../..", "<script>alert(1)</script>",
        "' or 1 eq 1 or '", "PartitionKey ne ''", "@pk", "x" * 70_000,
        "2026-11-25T07:16:02Z", "2026-11-25T07:16:02.1234567Z", "2026-11-25T07:16:02", "2026-02-30T00:00:00Z",
        "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59-23:59", "20261125T071602Z",
        PG + "pg-prod-01", PG + "PG-PROD-01", PG + "-bad-", PG + "a", PG + "x" * 70, PG + "pg%2F01", PG,
        "Fired", "Resolved", "Degraded", "Available", "Unavailable", "Unknown", "Started", "Succeeded",
        "PlannedFailover", "ForcedFailover", "is_db_alive", "Platform", "Resource Health",
        "Activity Log - Administrative", "ServiceHealth", "azureMonitorCommonAlertSchema",
        "Microsoft.Resources.ResourceActionSuccess", "Microsoft.EventGrid.SubscriptionValidationEvent",
        "Microsoft.DBforPostgreSQL/flexibleServers/restart/action", '{"failoverMode":"ForcedFailover"}',
    ]
)  # fmt: skip
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40) | AWKWARD
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.text(max_size=15) | AWKWARD.filter(lambda v: isinstance(v, str)), inner, max_size=6
        )
    ),
    max_leaves=30,
)


def _paths(node: object, prefix: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


_MANGLES = [
    lambda s: s.upper(),
    lambda s: s.lower(),
    lambda s: " " + s + " ",
    lambda s: s + "\x00",
    lambda s: s[: len(s) // 2],
    lambda s: s * 40,
    lambda s: s.replace("-", "\ud800"),
    lambda s: s.replace("/", "//"),
    lambda s: s.replace("Z", "+14:00"),
    lambda s: s[::-1],
]


@st.composite
def mutated(draw: st.DrawFn, bases: list[Any]) -> Any:
    """A real payload with one to five of its nodes removed, replaced, re-typed, re-cased or mangled."""
    body = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        path = draw(st.sampled_from(list(_paths(body))))
        action = draw(st.sampled_from(["json", "awkward", "delete", "mangle", "rekey", "wrap", "retype"]))
        if not path:
            if action in ("json", "awkward"):
                body = copy.deepcopy(draw(JSON if action == "json" else AWKWARD))
            elif action == "wrap":
                body = [body, copy.deepcopy(body)]
            continue
        parent: Any = body
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        current = parent[last]
        if action == "delete":
            del parent[last]
        elif action == "json":
            parent[last] = copy.deepcopy(draw(JSON))
        elif action == "awkward":
            parent[last] = copy.deepcopy(draw(AWKWARD))
        elif action == "mangle" and isinstance(current, str):
            parent[last] = draw(st.sampled_from(_MANGLES))(current)
        elif action == "rekey" and isinstance(parent, dict) and isinstance(last, str):
            parent[draw(st.sampled_from([last.upper(), last.lower(), last + " ", last.capitalize()]))] = (
                parent.pop(last)
            )
        elif action == "wrap":
            parent[last] = draw(st.sampled_from([[current], {"value": current}, json.dumps(current)]))
        elif action == "retype":
            parent[last] = (
                str(current) if not isinstance(current, str) else draw(st.sampled_from([1, [current], {}]))
            )
    return body


# --- parsers (pure) ------------------------------------------------------------------------------


_KEY_UNSAFE = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


def _check_signal(signal: Signal) -> None:
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", signal.server), signal.server
    assert not _KEY_UNSAFE.search(signal.server)
    assert signal.observed_at.utcoffset() == timedelta(0)
    assert signal.signal_id and len(signal.signal_id) < 2000
    assert len(signal.summary) < 2000
    json.dumps(signal.to_dict(), allow_nan=False).encode("utf-8")  # storable as is


def _run(parse: Any, payload: Any) -> ParseResult | None:
    try:
        result = parse(payload, received_at=RECEIVED)
    except InvalidPayloadError as error:
        assert str(error)
        return None
    assert isinstance(result, ParseResult)
    if result.ignored:
        assert not result.signals and result.ignored_reason
    for signal in result.signals:
        _check_signal(signal)
    return result


@fuzz("parse_alert_mutated")
@given(mutated(ALERT_BASES))
def test_parse_alert_on_mutated_payloads(payload: Any) -> None:
    RUN["parse_alert_mutated"] += 1
    _run(parse_alert, payload)


@fuzz("parse_alert_random")
@given(JSON | st.fixed_dictionaries({"schemaId": st.just("azureMonitorCommonAlertSchema"), "data": JSON}))
def test_parse_alert_on_random_json(payload: Any) -> None:
    RUN["parse_alert_random"] += 1
    _run(parse_alert, payload)


@fuzz("parse_event_mutated")
@given(mutated(EVENT_BASES))
def test_parse_event_on_mutated_events(event: Any) -> None:
    RUN["parse_event_mutated"] += 1
    _run(parse_event, event)


@fuzz("parse_event_random")
@given(JSON | st.fixed_dictionaries({"id": JSON, "eventType": JSON, "eventTime": JSON, "data": JSON}))
def test_parse_event_on_random_json(event: Any) -> None:
    RUN["parse_event_random"] += 1
    _run(parse_event, event)


# --- endpoints, over HTTP ------------------------------------------------------------------------


@dataclass
class Fuzzed:
    runtime: Runtime
    served: Served
    accepted: set[str] = field(default_factory=set)  # signal ids of payloads the app took
    verdicts: list[tuple[bool, tuple[str, ...]]] = field(default_factory=list)  # Event Grid parses
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __repr__(self) -> str:
        return f"Fuzzed(app at {self.served.url}, {len(self.accepted)} accepted signals)"


@pytest.fixture(scope="module")
def fuzzed(azurite: str) -> Iterator[Fuzzed]:
    table = f"fuzz{uuid.uuid4().hex[:12]}"
    runtime = install_runtime(
        {"AzureWebJobsStorage": azurite, "FAILOVER_TABLE": table}, FakeClock(T0 + timedelta(minutes=10))
    )
    real_parse = parse_event
    state = Fuzzed(runtime, Served())

    def recording_parse(event: Any, *, received_at: datetime) -> ParseResult:
        try:
            result = real_parse(event, received_at=received_at)
        except InvalidPayloadError:
            with state.lock:
                state.verdicts.append((False, ()))
            raise
        with state.lock:
            state.verdicts.append((not result.ignored, tuple(s.signal_id for s in result.signals)))
        return result

    with pytest.MonkeyPatch.context() as patch, state.served:
        patch.setattr(failover.sources.event_grid, "parse_event", recording_parse)
        yield state
    runtime.store._client.delete_table()
    set_runtime(None)


def _trips(app: Fuzzed) -> int:
    return app.runtime.store.round_trips


def _post_alert_raw(app: Fuzzed, body: bytes) -> None:
    before = _trips(app)
    response = app.served.request(
        "POST", "/api/alerts", body=body, headers={"Content-Type": "application/json"}
    )
    status = response.status_code
    assert status in (200, 202, 400, 413), f"{status}: {response.text[:300]}"
    answer = response.json()
    if status == 202:
        assert answer["status"] in ("recorded", "duplicate")
        with app.lock:
            app.accepted.update(s["signal_id"] for s in answer["signals"])
        return
    if status == 200:
        assert answer["status"] == "ignored" and answer["reason"]
    else:
        assert answer["error"]
    reads = 0
    if status == 200 and answer["reason"] == OTHER_RESOURCE:
        # Naming a known server under another resource id: only its stored state says so (design
        # invariant 11), so each signal costs the one read that found it foreign, and no write.
        received = datetime.now(timezone.utc)
        reads = len(parse_alert(json.loads(body), received_at=received).signals)
    assert _trips(app) - before == reads, f"a refused or ignored alert ({status}) reached storage"


@fuzz("post_alert_mutated")
@given(mutated(ALERT_BASES))
def test_post_alerts_with_mutated_payloads(fuzzed: Fuzzed, payload: Any) -> None:
    RUN["post_alert_mutated"] += 1
    _post_alert_raw(fuzzed, json.dumps(payload).encode())


@fuzz("post_alert_random")
@given(
    st.binary(max_size=300)
    | JSON.map(lambda v: json.dumps(v).encode())
    | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))
    | st.integers(MAX_ALERT_BYTES - 2, MAX_ALERT_BYTES + 2).map(lambda n: b'"' + b"x" * n + b'"')
)
def test_post_alerts_with_random_bodies(fuzzed: Fuzzed, body: bytes) -> None:
    RUN["post_alert_random"] += 1
    _post_alert_raw(fuzzed, body)


def _deliver_events(app: Fuzzed, body: bytes, event_type: str) -> None:
    before = _trips(app)
    with app.lock:
        app.verdicts.clear()
    response = app.served.request(
        "POST",
        EVENT_GRID_PATH,
        body=body,
        headers={"Content-Type": "application/json", "aeg-event-type": event_type},
    )
    status = response.status_code
    assert status in (200, 202, 400), f"{status}: {response.text[:300]}"
    with app.lock:
        verdicts = list(app.verdicts)
    if status == 202:
        taken = [ids for ok, ids in verdicts if ok]
        with app.lock:
            for ids in taken:
                app.accepted.update(ids)
        if taken:
            return
    assert _trips(app) == before, f"refused or ignored events ({status}) reached storage: {verdicts}"


@fuzz("event_grid_mutated")
@given(
    st.lists(mutated(EVENT_BASES), min_size=1, max_size=3) | mutated(EVENT_BASES),
    st.sampled_from(
        ["Notification"] * 8 + ["SubscriptionValidation", "Unsubscribe", "notification", "bogus", ""]
    ),
)
def test_event_grid_webhook_with_mutated_events(fuzzed: Fuzzed, events: Any, event_type: str) -> None:
    RUN["event_grid_mutated"] += 1
    _deliver_events(fuzzed, json.dumps(events).encode(), event_type)


@fuzz("event_grid_random")
@given(
    st.binary(max_size=200)
    | JSON.map(lambda v: json.dumps(v).encode())
    | st.lists(JSON).map(lambda v: json.dumps(v).encode())
)
def test_event_grid_webhook_with_random_bodies(fuzzed: Fuzzed, body: bytes) -> None:
    RUN["event_grid_random"] += 1
    _deliver_events(fuzzed, body, "Notification")


_QUERY_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#")
QUERY_VALUES = (
    st.text(max_size=40)
    | AWKWARD.filter(lambda v: isinstance(v, str) and len(v) < 100).map(str)
    | st.sampled_from(
        ["pg-prod-01", "open", "resolved", "50", "0", "201", "-1", "1e3", "2026-11-25T07:16:02Z", "x.y"]
    )
)


def _get(app: Fuzzed, target: str) -> tuple[int, bytes, str]:
    """A GET with the path and query sent exactly as given (no client-side normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", app.served.host.port, timeout=30)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        connection.putheader(KEY_HEADER, app.served.key)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Content-Type") or ""
    finally:
        connection.close()


def _check_lookup(status: int, body: bytes, content_type: str) -> None:
    assert status in (200, 400, 404), f"{status}: {body[:300]!r}"
    if content_type.startswith("application/json"):
        answer = json.loads(body)
        if status != 200:
            assert answer["error"]
    else:
        assert status in (200, 404) and (content_type.startswith("text/html") or not body)


@fuzz("lookup_query")
@given(
    st.dictionaries(
        st.sampled_from(["server", "since", "until", "status", "limit", "continuation", "code", "x"]),
        QUERY_VALUES,
        max_size=6,
    ),
    st.text(_QUERY_CHARS, max_size=60),
)
def test_incident_listing_with_random_query_strings(fuzzed: Fuzzed, params: dict[str, str], raw: str) -> None:
    RUN["lookup_query"] += 1
    encoded = "&".join(
        f"{quote(k, safe='')}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for k, v in params.items()
    )
    for query in (encoded, encoded + "&" + raw):
        _check_lookup(*_get(fuzzed, "/api/incidents?" + query.replace(" ", "%20")))


@fuzz("lookup_path")
@given(
    st.text(max_size=80)
    | AWKWARD.filter(lambda v: isinstance(v, str) and len(v) < 200).map(str)
    | st.sampled_from(["pg-fuzz-000~20261125T071602Z", "pg-prod-01", "a~20261125T071602Z", "pg-fuzz-000"]),
    st.sampled_from(["/api/incidents/{}", "/api/incidents/{}/timeline", "/api/servers/{}"]),
    st.booleans(),
)
def test_lookup_routes_with_random_path_params(fuzzed: Fuzzed, value: str, route: str, raw: bool) -> None:
    RUN["lookup_path"] += 1
    data = value.encode("utf-8", "surrogatepass")
    part = quote(data, safe="")
    if raw:  # printable ASCII as it is (dots, tildes, percent signs), the rest percent-encoded
        part = "".join(chr(b) if 0x21 <= b < 0x7F and chr(b) not in "#?" else f"%{b:02X}" for b in data)
    if not part:
        return
    _check_lookup(*_get(fuzzed, route.format(part)))


def test_zz_no_row_came_from_a_refused_payload(fuzzed: Fuzzed) -> None:
    """Runs last in this module: every row of a signal belongs to an accepted payload, and is whole.

    Each timeline entry has its dedupe marker in the same partition and each marker its entry (no
    partial record). Dedupe is per server: a mutated payload that keeps its id but names another
    server is another signal, so the same id may appear in two partitions.
    """
    rows = list(fuzzed.runtime.store._client.list_entities(select=["PartitionKey", "RowKey", "signal"]))
    entries = {
        (r["PartitionKey"], "seen~" + signal_hash(json.loads(r["signal"])["signal_id"])): json.loads(
            r["signal"]
        )
        for r in rows
        if r["RowKey"].startswith("signal~")
    }
    ids = {entry["signal_id"] for entry in entries.values()}
    assert ids <= fuzzed.accepted, sorted(ids - fuzzed.accepted)[:10]
    markers = {(r["PartitionKey"], r["RowKey"]) for r in rows if r["RowKey"].startswith("seen~")}
    assert markers == set(entries), (
        sorted(markers - set(entries)),
        [entries[k] for k in set(entries) - markers],
    )
    if set(RUN) == set(EXAMPLES):
        total = sum(RUN.values())
        print(f"\nbad-input examples run: {total} ({dict(RUN)})")
        assert total >= 10_000
