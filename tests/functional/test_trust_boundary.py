"""Issue 13, finding 1: only the servers you run are recorded, each bound to its one resource id.

Measured on the earlier main: ten alerts for `.../subscriptions/<another>/resourceGroups/evil/.../pg-prod-01`
created five incidents for the real pg-prod-01, fifteen cards and five epoch bumps; an alert naming a
known server under another resource group joined the real server's incident. Real functions, Azurite.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest

from tests.builders import T0
from tests.integration import app_harness as app
from tests.payloads import load

OURS = "/subscriptions/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e"
THEIRS = "/subscriptions/99999999-9999-9999-9999-999999999999"
FIXTURE = "monitor/resource_health_degraded_unplanned.json"


def _moved(payload: dict, subscription: str, group: str = "rg-data", tag: str = "") -> dict:
    text = (
        json.dumps(payload)
        .replace(OURS, subscription)
        .replace("/resourceGroups/rg-data/", f"/resourceGroups/{group}/")
    )
    text = text.replace("/resourcegroups/rg-data/", f"/resourcegroups/{group}/")
    moved = json.loads(text)
    moved["data"]["alertContext"]["eventDataId"] = f"spoof-{tag}"
    return dict(moved)


@pytest.fixture
def scoped(azurite, table_name, clock):
    yield from app.scoped_runtime(azurite, table_name, clock, alert_scopes=OURS)


def test_alerts_about_a_server_outside_the_accepted_scopes_are_ignored_and_counted(scoped):
    payload = load(FIXTURE)
    for n in range(10):
        status, body = app.post_alert(_moved(copy.deepcopy(payload), THEIRS, "evil", str(n)))
        assert status == 200 and body == {"status": "ignored", "reason": "not a monitored server"}
    assert scoped.store.read_state("pg-prod-01") == (None, None)
    assert scoped.responder.ignored == {"not a monitored server": 10}


def test_a_known_server_named_under_another_resource_group_is_not_merged(scoped):
    status, body = app.post_alert(load(FIXTURE))
    assert status == 202 and body["status"] == "recorded"
    before, _ = scoped.store.read_state("pg-prod-01")
    status, body = app.post_alert(_moved(load(FIXTURE), OURS, "another-rg", "x"))
    assert status == 200
    assert body == {"status": "ignored", "reason": "resource id does not match the known server"}
    after, _ = scoped.store.read_state("pg-prod-01")
    assert after == before


def test_without_scopes_everything_is_accepted_and_health_warns(azurite, table_name, clock):
    clock.now = T0 + timedelta(minutes=1)
    rt = app.install({"AzureWebJobsStorage": azurite, "FAILOVER_TABLE": table_name}, clock=clock)
    try:
        status, _ = app.post_alert(_moved(load(FIXTURE), THEIRS, "evil", "open"))
        assert status == 202
        from handlers.health import _scope

        assert _scope(rt.responder)["status"] == "warning"
    finally:
        rt.store._client.delete_table()
        app.set_runtime(None)


def test_a_server_is_looked_up_by_its_name_or_its_full_resource_id(scoped):
    from failover import lookups
    from failover.errors import NotFoundError

    app.post_alert(load(FIXTURE))
    rid = f"{OURS}/resourceGroups/rg-data/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg-prod-01"
    by_name = lookups.get_server(scoped.store, "pg-prod-01")
    by_id = lookups.get_server(scoped.store, rid)
    assert by_name["server"] == by_id["server"] == "pg-prod-01"
    with pytest.raises(NotFoundError):
        lookups.get_server(scoped.store, rid.replace("rg-data", "evil"))
    with pytest.raises(lookups.BadLookupError):
        lookups.get_server(
            scoped.store, f"{OURS}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
        )
