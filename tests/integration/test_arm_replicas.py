"""Replicas applications route by: zone, role and replication state read through the real SDK."""

from __future__ import annotations

import pytest

from local.arm_emulator import ReplicaSpec

pytestmark = pytest.mark.integration


def test_replicas_carry_zone_role_and_state_for_the_topology(arm_emulator, arm_inspector):
    rid = arm_emulator.add_server(
        "rg-prod",
        "pg-prod-01",
        zones=("1", "2"),
        replicas=(ReplicaSpec("pg-prod-01-r1", zone="3"), ReplicaSpec("pg-prod-01-r2", "westus", "Broken")),
    )

    view = arm_inspector.get_server(rid)

    assert [r.as_topology() for r in view.replicas] == [
        {
            "name": "pg-prod-01-r1",
            "host": "pg-prod-01-r1.postgres.database.azure.com",
            "zone": "3",
            "replicationState": "Active",
            "role": "AsyncReplica",
            "lagSeconds": None,
        },
        {
            "name": "pg-prod-01-r2",
            "host": "pg-prod-01-r2.postgres.database.azure.com",
            "zone": None,
            "replicationState": "Broken",
            "role": "AsyncReplica",
            "lagSeconds": None,
        },
    ]
    assert view.replicas[0].as_topology(lag_seconds=1.5)["lagSeconds"] == 1.5
