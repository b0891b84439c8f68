"""Recognising flexible servers in ARM resource ids."""

from __future__ import annotations

import pytest

from failover.errors import InvalidPayloadError
from failover.sources.resources import (
    describe_resource,
    first_flexible_server,
    flexible_server_from_resource_id,
    is_server_name,
)

SUB = "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers"
CANONICAL = f"/subscriptions/{SUB}/resourcegroups/rg-data/providers/microsoft.dbforpostgresql/flexibleservers"
CANONICAL += "/pg-prod-01"
ARM = f"{RG}/Microsoft.DBforPostgreSQL/flexibleServers/pg-prod-01"


@pytest.mark.parametrize(
    "resource_id",
    [
        CANONICAL,
        ARM,
        ARM.upper(),
        f"  {ARM}  ",
        f"{ARM}\n",
        f"{ARM}/",
        f"{ARM}/databases/app",
        f"{ARM}/providers/Microsoft.ResourceHealth/availabilityStatuses/current",
        f"{ARM}/firewallRules/office",
        f"/subscriptions/{SUB.upper()}/resourceGroups/RG-DATA/providers/Microsoft.DBforPostgreSQL/flexibleServers/PG-PROD-01",
    ],
)
def test_flexible_server_ids_in_any_case_and_child_paths(resource_id):
    assert flexible_server_from_resource_id(resource_id) == (CANONICAL, "pg-prod-01")


@pytest.mark.parametrize(
    "resource_id",
    [
        None,
        42,
        ["x"],
        {"id": ARM},
        "",
        "   ",
        f"/subscriptions/{SUB}",
        f"/subscriptions/{SUB}/resourceGroups/rg-data",
        f"{RG}/Microsoft.DBforPostgreSQL/servers/pg-prod-01",
        f"{RG}/Microsoft.DBforMySQL/flexibleServers/pg-prod-01",
        f"{RG}/Microsoft.DBforPostgreSQLx/flexibleServers/pg",
        f"{RG}/Microsoft.DBforPostgreSQL/flexibleServers",
        f"{RG}/Microsoft.DBforPostgreSQL/flexibleServers/",
        f"{RG}/Microsoft.DBforPostgreSQL/flexibleServers/pg_prod",
        f"{RG}/Microsoft.DBforPostgreSQL/flexibleServers/-pg",
        f"{RG}/Microsoft.DBforPostgreSQL/flexibleServers/{'a' * 64}",
        f"{ARM}?api-version=2025-08-01",
        f"{ARM}#x",
        f"https://management.azure.com{ARM}",
        ARM.lstrip("/"),
        ARM.replace("rg-data", "rg data"),
        ARM + "/x" * 2000,
        f"{RG}/Microsoft.Compute/virtualMachines/pg-prod-01",
    ],
)
def test_not_a_flexible_server(resource_id):
    assert flexible_server_from_resource_id(resource_id) is None


def test_first_flexible_server_skips_other_ids():
    vm = f"{RG}/Microsoft.Compute/virtualMachines/vm"
    assert first_flexible_server([None, vm, 3, ARM]) == (CANONICAL, "pg-prod-01")
    assert first_flexible_server([vm]) is None
    assert first_flexible_server([]) is None


@pytest.mark.parametrize(
    ("resource_id", "expected"),
    [
        (
            f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
            "microsoft.compute/virtualmachines",
        ),
        (f"/subscriptions/{SUB}", "a subscription"),
        (f"/subscriptions/{SUB}/resourceGroups/rg-data", "a resource group"),
        ("nonsense", "an unrecognised resource id"),
        (None, "no resource"),
        (17, "no resource"),
    ],
)
def test_describe_resource(resource_id, expected):
    assert describe_resource(resource_id) == expected


@pytest.mark.parametrize("name", ["a", "ab", "pg-prod-", "-pg", "pg_prod", "pg.prod", "a" * 64])
def test_an_impossible_flexible_server_name_is_malformed_not_foreign(name):
    resource_id = f"{RG}/Microsoft.DBforPostgreSQL/flexibleServers/{name}"
    assert flexible_server_from_resource_id(resource_id) is None
    with pytest.raises(InvalidPayloadError, match="3-63"):
        first_flexible_server([None, resource_id, ARM])


@pytest.mark.parametrize(
    ("name", "valid"),
    [("abc", True), ("pg-prod-01", True), ("a" * 63, True), ("0-0", True), ("ab", False),
     ("a" * 64, False), ("pg-", False), ("-pg", False), ("PG-PROD", False), ("pg prod", False),
     ("pg-prod\n", False), (None, False)],
)  # fmt: skip
def test_the_one_server_name_grammar(name, valid):
    assert is_server_name(name) is valid
