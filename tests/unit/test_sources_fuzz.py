"""Fuzzing the parsers: any JSON-like value gives a ParseResult or an InvalidPayloadError, nothing else."""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.errors import InvalidPayloadError
from failover.model import Signal
from failover.sources.event_grid import parse_event
from failover.sources.monitor import parse_alert
from failover.sources.parsing import ParseResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECEIVED = datetime(2026, 11, 25, 7, 30, tzinfo=timezone.utc)
SETTINGS = settings(
    max_examples=500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

MONITOR_FIXTURES = [
    json.loads(p.read_text(encoding="utf-8")) for p in sorted((FIXTURES / "monitor").glob("*.json"))
]
EVENT_FIXTURES = [
    json.loads(p.read_text(encoding="utf-8"))[0] for p in sorted((FIXTURES / "event_grid").glob("*.json"))
]

PG_ANY = "/subscriptions/s/resourceGroups/r/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg-1"

# Values that real or hostile payloads carry in places where another type is expected.
TRICKY = st.sampled_from(
    [
        None,
        "",
        " ",
        0,
        1,
        3,
        -1,
        2.5,
        math.inf,
        math.nan,
        True,
        False,
        [],
        {},
        [None],
        {"value": None},
        "Fired",
        "Resolved",
        "Started",
        "Succeeded",
        "Failed",
        "Degraded",
        "Available",
        "PlatformInitiated",
        "UserInitiated",
        "Maintenance",
        "is_db_alive",
        "IS_DB_ALIVE",
        "Metric",
        "Platform",
        "Resource Health",
        "ServiceHealth",
        "Activity Log - Administrative",
        "azureMonitorCommonAlertSchema",
        "2026-11-25T07:16:02.3456789Z",
        "2026-11-25T07:16:02",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2026-13-45T99:99:99Z",
        "\ud800",
        "\x00",
        "a\nb",
        "x" * 5000,
        10**300,  # json.loads refuses ints over 4300 digits; this one it accepts
        '{"restartWithFailover": false}',
        "[" * 30000 + "]" * 30000,
        '{"failoverMode": 3}',
        PG_ANY,
        "/SUBSCRIPTIONS/S/RESOURCEGROUPS/R/PROVIDERS/MICROSOFT.DBFORPOSTGRESQL/FLEXIBLESERVERS/PG-1/x",
        [PG_ANY],
        [{"resourceId": PG_ANY}],
        "Microsoft.DBforPostgreSQL/flexibleServers/restart/action",
        "Microsoft.Resources.ResourceActionSuccess",
    ]
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | TRICKY
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)


def paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found: list[tuple[object, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((*prefix, key))
            found.extend(paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.append((*prefix, index))
            found.extend(paths(value, (*prefix, index)))
    return found


@st.composite
def mutated(draw: st.DrawFn, originals: list[object]) -> object:
    """A fixture with a few of its fields replaced, removed or re-cased."""
    body = copy.deepcopy(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        candidates = paths(body)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent: Any = body
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        action = draw(st.sampled_from(["replace", "replace", "tricky", "delete", "case"]))
        current = parent[last]
        # Drawn values can be shared constants (TRICKY's lists): copy before they join the body.
        if action == "delete":
            del parent[last]
        elif action == "case" and isinstance(current, str):
            parent[last] = draw(st.sampled_from([current.upper(), current.lower()]))
        elif action == "tricky":
            parent[last] = copy.deepcopy(draw(TRICKY))
        else:
            parent[last] = copy.deepcopy(draw(JSON))
    return body


def check(result: object) -> None:
    assert isinstance(result, ParseResult)
    assert result.ignored == (result.ignored_reason is not None)
    if result.ignored:
        assert result.signals == ()
        assert isinstance(result.ignored_reason, str) and result.ignored_reason
    for signal in result.signals:
        check_signal(signal)


def check_signal(signal: Signal) -> None:
    assert signal.server == signal.server.lower() and signal.server
    assert signal.resource_id == signal.resource_id.lower()
    assert signal.observed_at.utcoffset() == timedelta(0)
    assert signal.received_at == RECEIVED
    assert signal.signal_id and signal.key_hash  # the key hash encodes the id as UTF-8
    assert 0 <= signal.cause_confidence <= 3
    for value in signal.details.values():
        assert isinstance(value, (str, int, float, bool))
    encoded = json.dumps(signal.to_dict(), allow_nan=False)
    encoded.encode("utf-8")


def run_alert(payload: object) -> None:
    try:
        result = parse_alert(payload, received_at=RECEIVED)
    except InvalidPayloadError as error:
        assert str(error)
        return
    check(result)


def run_event(event: object) -> None:
    try:
        result = parse_event(event, received_at=RECEIVED)  # type: ignore[arg-type]
    except InvalidPayloadError as error:
        assert str(error)
        return
    check(result)


@SETTINGS
@given(JSON)
def test_random_values_as_alerts(payload):
    run_alert(payload)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {
            "schemaId": st.just("azureMonitorCommonAlertSchema") | JSON,
            "data": JSON | st.fixed_dictionaries({"essentials": JSON, "alertContext": JSON}),
        }
    )
)
def test_random_envelopes_as_alerts(payload):
    run_alert(payload)


@SETTINGS
@given(mutated(MONITOR_FIXTURES))
def test_mutated_monitor_fixtures(payload):
    run_alert(payload)


@SETTINGS
@given(JSON)
def test_random_values_as_events(event):
    run_event(event)


@SETTINGS
@given(mutated(EVENT_FIXTURES))
def test_mutated_event_grid_fixtures(event):
    run_event(event)


def test_unmutated_fixtures_pass_the_same_checks():
    for payload in MONITOR_FIXTURES:
        run_alert(payload)
    for event in EVENT_FIXTURES:
        run_event(event)
