"""Every fixture parsed, with the exact signals (or the ignore/400 outcome) it must give."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from failover.errors import InvalidPayloadError
from failover.model import Cause, SignalKind, Source
from failover.sources.event_grid import parse_event
from failover.sources.monitor import parse_alert
from failover.sources.parsing import ParseResult
from failover.timeutil import iso

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECEIVED = datetime(2026, 11, 25, 7, 30, tzinfo=timezone.utc)
SUB = "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e"
PG_ID = (
    f"/subscriptions/{SUB}/resourcegroups/rg-data"
    "/providers/microsoft.dbforpostgresql/flexibleservers/pg-prod-01"
)
ALERTS = f"/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts"
DB_ALIVE_ALERT = f"{ALERTS}/0f9e8d7c-6b5a-4f3e-9d2c-1b0a9f8e7d6c"
LAG_ALERT = f"{ALERTS}/1a0f9e8d-7c6b-4a5f-8e3d-2c1b0a9f8e7d"

K, C = SignalKind, Cause
# fixture -> [(signal_id, kind, cause, confidence, observed_at, source)]
EXPECTED_SIGNALS = {
    "monitor/resource_health_degraded_unplanned.json": [
        (
            "monitor:rh:6c0e1a52-3b7d-4f0e-9d21-5a8f3c7b9e11",
            K.HEALTH_DEGRADED,
            C.UNPLANNED,
            2,
            "2026-11-25T07:16:02.345678Z",
        ),
    ],
    "monitor/resource_health_degraded_planned.json": [
        (
            "monitor:rh:7d1f2b63-4c8e-4a1f-8e32-6b9a4d8c0f22",
            K.HEALTH_DEGRADED,
            C.PLANNED,
            1,
            "2026-11-25T07:16:04.118000Z",
        ),
    ],
    "monitor/resource_health_available.json": [
        (
            "monitor:rh:8e2a3c74-5d9f-4b2a-9f43-7cab5e9d1a33",
            K.HEALTH_AVAILABLE,
            C.UNKNOWN,
            0,
            "2026-11-25T07:18:31.072000Z",
        ),
    ],
    "monitor/resource_health_updated_null_status.json": [
        (
            "monitor:rh:9f3b4d85-6eaa-4c3b-8a54-8dbc6fae2b44",
            K.HEALTH_UNKNOWN,
            C.UNPLANNED,
            1,
            "2026-11-25T07:16:30.500000Z",
        ),
    ],
    "monitor/activity_log_restart_started.json": [
        (
            "monitor:al:1a4c5e96-7fbb-4d4c-9b65-9ecd7abf3c55",
            K.FAILOVER_STARTED,
            C.PLANNED,
            3,
            "2026-11-25T07:15:58.123456Z",
        ),
    ],
    "monitor/activity_log_restart_succeeded.json": [
        (
            "monitor:al:2b5d6fa7-8acc-4e5d-8c76-afde8bca4d66",
            K.FAILOVER_COMPLETED,
            C.PLANNED,
            1,
            "2026-11-25T07:17:40.555021Z",
        ),
    ],
    "monitor/activity_log_restart_forced_started.json": [
        (
            "monitor:al:3c6e7ab8-9bdd-4f6e-9d87-baef9cdb5e77",
            K.FAILOVER_STARTED,
            C.FORCED,
            3,
            "2026-11-25T07:16:11.204331Z",
        ),
    ],
    "monitor/activity_log_restart_failed.json": [
        (
            "monitor:al:4d7f8bc9-acee-4a7f-8e98-cbfaadec6f88",
            K.FAILOVER_FAILED,
            C.PLANNED,
            3,
            "2026-11-25T07:16:13.779004Z",
        ),
    ],
    "monitor/metric_is_db_alive_fired.json": [
        (f"monitor:metric:{DB_ALIVE_ALERT}:fired", K.DB_DOWN, C.UNKNOWN, 0, "2026-11-25T07:16:45.661234Z"),
    ],
    "monitor/metric_is_db_alive_resolved.json": [
        (f"monitor:metric:{DB_ALIVE_ALERT}:fired", K.DB_DOWN, C.UNKNOWN, 0, "2026-11-25T07:16:45.661234Z"),
        (f"monitor:metric:{DB_ALIVE_ALERT}:resolved", K.DB_UP, C.UNKNOWN, 0, "2026-11-25T07:19:10.224631Z"),
    ],
    "monitor/metric_replication_lag_fired.json": [
        (
            f"monitor:metric:{LAG_ALERT}:fired",
            K.REPLICATION_LAG_HIGH,
            C.UNKNOWN,
            0,
            "2026-11-25T07:17:05.103000Z",
        ),
    ],
    "event_grid/resource_action_success_restart.json": [
        (
            "eventgrid:b0e1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d",
            K.FAILOVER_STARTED,
            C.PLANNED,
            1,
            "2026-11-25T07:15:58.987654Z",
        ),
    ],
    "event_grid/resource_action_failure_restart.json": [
        (
            "eventgrid:c1f2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e",
            K.FAILOVER_FAILED,
            C.PLANNED,
            1,
            "2026-11-25T07:16:14.013224Z",
        ),
    ],
    "event_grid/resource_write_success_flexible_server.json": [
        (
            "eventgrid:d2a3e4f5-a6b7-4c8d-9e0f-1a2b3c4d5e6f",
            K.HA_CONFIG_CHANGED,
            C.UNKNOWN,
            0,
            "2026-11-25T07:21:05.447123Z",
        ),
    ],
}
# fixture -> words the ignored reason must contain
EXPECTED_IGNORED = {
    "monitor/activity_log_other_operation.json": ["firewallRules/write", "pg-prod-01"],
    "monitor/metric_cpu_fired.json": ["cpu_percent", "not a metric we watch"],
    "monitor/service_health_maintenance.json": ["KT7Q-5ZW", "names no PostgreSQL flexible server"],
    "monitor/service_health_incident.json": ["Incident", "VL3R-1XB"],
    "monitor/foreign_vm_resource_health.json": ["microsoft.compute/virtualmachines"],
    "event_grid/resource_action_success_other_resource.json": ["microsoft.eventhub/namespaces"],
    "event_grid/subscription_validation.json": ["subscription validation"],
}
# fixture -> words the 400 reason must contain
EXPECTED_INVALID = {
    "monitor/legacy_schema_metric.json": ["AzureMonitorMetricAlert", "common alert schema"],
}
# Personal data present in the fixtures that must never reach a signal.
PERSONAL = ["ops@contoso.com", "203.0.113.7", "Olivia", "user_impersonation", "S-1-5-21", "22223333-cccc"]


def load(name: str) -> object:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def parse_fixture(name: str, received_at: datetime = RECEIVED) -> ParseResult:
    body = load(name)
    if name.startswith("event_grid/"):
        assert isinstance(body, list) and len(body) == 1  # documented samples are arrays of one
        return parse_event(body[0], received_at=received_at)
    return parse_alert(body, received_at=received_at)


def all_fixtures() -> list[str]:
    return sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.json"))


def test_every_fixture_has_an_expectation():
    covered = set(EXPECTED_SIGNALS) | set(EXPECTED_IGNORED) | set(EXPECTED_INVALID)
    assert set(all_fixtures()) == covered


@pytest.mark.parametrize("name", sorted(EXPECTED_SIGNALS))
def test_fixture_signals(name):
    result = parse_fixture(name)
    assert not result.ignored
    got = [(s.signal_id, s.kind, s.cause, s.cause_confidence, iso(s.observed_at)) for s in result.signals]
    assert got == EXPECTED_SIGNALS[name]
    source = Source.EVENT_GRID if name.startswith("event_grid/") else Source.MONITOR_ALERT
    for signal in result.signals:
        assert signal.server == "pg-prod-01"
        assert signal.resource_id == PG_ID
        assert signal.source is source
        assert signal.received_at == RECEIVED
        assert signal.summary and "\n" not in signal.summary


@pytest.mark.parametrize("name", sorted(EXPECTED_IGNORED))
def test_fixture_ignored(name):
    result = parse_fixture(name)
    assert result.ignored
    assert result.signals == ()
    for word in EXPECTED_IGNORED[name]:
        assert word in (result.ignored_reason or "")


@pytest.mark.parametrize("name", sorted(EXPECTED_INVALID))
def test_fixture_invalid(name):
    with pytest.raises(InvalidPayloadError) as caught:
        parse_fixture(name)
    for word in EXPECTED_INVALID[name]:
        assert word in str(caught.value)


@pytest.mark.parametrize("name", sorted(EXPECTED_SIGNALS))
def test_details_are_small_flat_json_scalars(name):
    for signal in parse_fixture(name).signals:
        assert len(signal.details) <= 14
        for key, value in signal.details.items():
            assert isinstance(key, str)
            assert value is None or isinstance(value, (str, int, float, bool)), (key, value)
        json.dumps(signal.to_dict(), allow_nan=False)


@pytest.mark.parametrize("name", sorted(EXPECTED_SIGNALS))
def test_no_personal_data_in_signals(name):
    dumped = json.dumps([s.to_dict() for s in parse_fixture(name).signals])
    for secret in PERSONAL:
        assert secret not in dumped


@pytest.mark.parametrize("name", sorted(EXPECTED_SIGNALS))
def test_deterministic_ids_and_times(name):
    first = parse_fixture(name)
    again = parse_fixture(name)
    later = parse_fixture(name, RECEIVED + timedelta(hours=3))
    assert first == again
    assert [s.signal_id for s in first.signals] == [s.signal_id for s in later.signals]
    assert [s.observed_at for s in first.signals] == [s.observed_at for s in later.signals]
    assert all(s.received_at == RECEIVED + timedelta(hours=3) for s in later.signals)


def test_resolved_metric_replays_the_fired_signal_identity():
    fired = parse_fixture("monitor/metric_is_db_alive_fired.json").signals[0]
    replayed = parse_fixture("monitor/metric_is_db_alive_resolved.json").signals[0]
    assert (replayed.signal_id, replayed.kind, replayed.observed_at) == (
        fired.signal_id,
        fired.kind,
        fired.observed_at,
    )
    assert replayed.key_hash == fired.key_hash


def test_summary_reads_like_a_sentence():
    signal = parse_fixture("monitor/resource_health_degraded_unplanned.json").signals[0]
    assert signal.summary == (
        "Resource Health: Degraded (was Available), Unplanned Failover Initiated, platform initiated"
    )
