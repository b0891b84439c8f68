"""Table layout (pure): keys sort as designed and values survive a round trip."""

from __future__ import annotations

from datetime import timedelta

import pytest

from failover.adapters import table_codec as codec
from failover.incidents import Policy, ServerState, decide, derive
from failover.model import Cause, EffectName, SignalKind, Source
from tests.builders import T0, signal

FORBIDDEN = set("/\\#?") | {chr(c) for c in range(0x20)} | {chr(c) for c in range(0x7F, 0xA0)}


def _state():
    state = ServerState(server="pg-prod-01")
    for s in (
        signal(SignalKind.FAILOVER_STARTED, 0, cause=Cause.FORCED, confidence=3),
        signal(SignalKind.WRITE_RESTORED, 9, source=Source.DB_PROBE, details={"downtime_seconds": 8.25}),
        signal(SignalKind.REPLICATION_LAG_HIGH, -7200),
    ):
        state = decide(state, s, now=T0 + timedelta(minutes=1), policy=Policy()).state
    return state


def test_state_round_trip():
    state = _state()
    assert codec.state_from_entity(codec.state_to_entity(state)) == state


def test_evidence_is_split_over_properties_under_the_table_string_limit():
    state = _state()
    many = state.evidence * 600
    entity = codec.state_to_entity(ServerState(server=state.server, evidence=many))
    assert entity["evidence_chunks"] > 1
    assert all(len(v) <= 32 * 1024 for v in entity.values() if isinstance(v, str))
    assert codec.state_from_entity(entity).evidence == many


def test_incident_round_trip_and_keys_are_legal():
    incident = derive(_state(), now=T0 + timedelta(minutes=1), policy=Policy())[0]
    entity = codec.incident_to_entity(incident)
    restored = codec.incident_from_entity(entity)
    assert restored == incident
    for key in (
        entity["RowKey"],
        codec.day_partition(incident.incident_id),
        codec.day_key(incident.incident_id),
        codec.effect_key(incident.incident_id, incident.transitions[0], EffectName.TEAMS_CARD),
    ):
        assert not set(key) & FORBIDDEN


def test_incident_keys_sort_newest_first():
    older = codec.incident_key("pg-prod-01~20261125T071602Z")
    newer = codec.incident_key("pg-prod-01~20261126T000000Z")
    assert newer < older


def test_signal_keys_sort_by_observed_time():
    a = codec.signal_key(signal(SignalKind.DB_DOWN, 1))
    b = codec.signal_key(signal(SignalKind.DB_DOWN, 1.5))
    c = codec.signal_key(signal(SignalKind.DB_DOWN, 10))
    assert a < b < c
    low, high = codec.signal_range(T0, T0 + timedelta(seconds=10))
    assert low <= a < c < high


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "pg",
        "PG-PROD~20261125T071602Z",
        "pg-prod-01~2026",
        "../x~20261125T071602Z",
        "pg-prod-01~20261125T071602Z/../x",
    ],
)
def test_bad_incident_ids_are_refused(bad):
    with pytest.raises(codec.IncidentIdError):
        codec.split_incident_id(bad)
