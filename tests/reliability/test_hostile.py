"""The hostile-input run (issue 13): spoofed scopes, oversized collections, dates from 2099.

Through the real functions and Azurite. Each case was measured on the earlier main:
- ten alerts naming the real server under another subscription made five incidents;
- one Service Health notice listing 500 servers, window 2026-2099, made 1,000 Table operations and
  labelled every later failover of them `maintenance`;
- 13 Degraded alerts dated backwards from 2099 filled a Table string property, so the next real
  failover could not be committed (503, and Azure retried it for a day).
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone

import pytest

from failover.incidents import derive
from failover.model import Cause
from tests.builders import T0
from tests.integration import app_harness as app
from tests.payloads import load

OURS = "/subscriptions/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e"
THEIRS = "/subscriptions/99999999-9999-9999-9999-999999999999"
SERVER_ID = f"{OURS}/resourcegroups/rg-data/providers/microsoft.dbforpostgresql/flexibleservers/pg-prod-01"


@pytest.fixture
def scoped(azurite, table_name, clock):
    yield from app.scoped_runtime(azurite, table_name, clock, alert_scopes=OURS)


def _degraded(n: int, when: datetime, subscription: str = OURS) -> dict:
    payload = json.loads(
        json.dumps(load("monitor/resource_health_degraded_unplanned.json")).replace(
            "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e", subscription.rsplit("/", 1)[1]
        )
    )
    context = payload["data"]["alertContext"]
    context["eventDataId"] = f"hostile-{n}"
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
    context["eventTimestamp"] = stamp
    payload["data"]["essentials"]["firedDateTime"] = stamp
    return dict(payload)


def test_a_notice_listing_500_servers_touches_only_accepted_ones_for_at_most_seven_days(scoped):
    notice = load("monitor/service_health_maintenance.json")
    props = notice["data"]["alertContext"]["properties"]
    foreign = [
        f"{THEIRS}/resourcegroups/evil/providers/microsoft.dbforpostgresql/flexibleservers/pg-x{n:03d}"
        for n in range(499)
    ]
    props["impactedResources"] = [{"resourceId": rid} for rid in [SERVER_ID, *foreign]]
    props["impactStartTime"], props["impactMitigationTime"] = "2026-11-25T00:00:00Z", "2099-01-01T00:00:00Z"
    before = scoped.store.round_trips
    status, body = app.post_alert(notice)
    assert status == 202
    assert [s["status"] for s in body["signals"]].count("recorded") == 1
    assert scoped.store.round_trips - before < 20
    state, _ = scoped.store.read_state("pg-prod-01")
    (window,) = state.maintenance
    assert window.ends_at - window.starts_at == timedelta(days=7)
    assert scoped.store.read_state("pg-x000") == (None, None)


def test_alerts_dated_to_2099_cannot_wedge_the_server_and_the_next_failover_is_recorded(scoped, clock):
    for n in range(40):
        status, _ = app.post_alert(
            _degraded(n, datetime(2099, 12, 31, tzinfo=timezone.utc) - timedelta(days=n))
        )
        assert status == 202
    entity = scoped.store._client.get_entity("pg-prod-01", "state")
    assert max(len(v) for v in entity.values() if isinstance(v, str)) < 32 * 1024
    clock.now = T0 + timedelta(hours=5)
    status, body = app.post_alert(_degraded(99, clock.now - timedelta(seconds=30)))
    assert status == 202 and body["status"] == "recorded"
    state, _ = scoped.store.read_state("pg-prod-01")
    incidents = derive(state, now=clock.now, policy=scoped.settings.policy)
    assert len(incidents) == 2 and incidents[-1].cause is Cause.UNPLANNED
    assert all(i.opened_at <= clock.now for i in incidents)  # nothing dated in the future


def test_spoofed_subscriptions_make_nothing(scoped):
    for n in range(20):
        status, body = app.post_alert(_degraded(n, T0, THEIRS))
        assert (status, body["status"]) == (200, "ignored")
    assert scoped.store.read_state("pg-prod-01") == (None, None)
    assert copy.deepcopy(scoped.responder.ignored) == {"not a monitored server": 20}
