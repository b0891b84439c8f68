"""Spine smoke test with hand-built signals: exactly once, one transaction, ordered timeline."""

from __future__ import annotations

from datetime import timedelta

import pytest

from failover.model import Cause, IncidentStatus, SignalKind
from failover.service import Responder
from tests.builders import T0, signal

pytestmark = pytest.mark.integration


def test_duplicate_and_incident(store, clock):
    clock.now = T0 + timedelta(seconds=45)
    responder = Responder(store=store, clock=clock)
    started = signal(SignalKind.FAILOVER_STARTED, 0, cause=Cause.FORCED, confidence=3)
    first = responder.record(started)
    assert first.status == "recorded"
    assert first.incident_id == "pg-prod-01~20261125T071602Z"
    assert responder.record(started).status == "duplicate"
    responder.record(signal(SignalKind.DB_DOWN, 5))
    responder.record(signal(SignalKind.DB_UP, 40))
    incident = store.get_incident(first.incident_id)
    assert incident is not None
    assert incident.signal_count == 3
    assert incident.cause is Cause.FORCED
    timeline = store.timeline(incident)
    assert [e.kind for e in timeline] == ["failover_started", "db_down", "db_up"]
    assert incident.status is IncidentStatus.OPEN
    clock.advance(3600)
    assert responder.settle_server("pg-prod-01") == 1
    resolved = store.get_incident(first.incident_id)
    assert resolved is not None and resolved.status is IncidentStatus.RESOLVED
