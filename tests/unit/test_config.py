"""Settings: every bad key named in one message, secrets masked, defaults sane."""

from __future__ import annotations

import pytest

from failover.config import Secret, Settings
from failover.errors import ConfigError

WEBHOOK = (
    "https://prod-01.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=SECRETSIG"
)
RID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg-prod-01"


def test_minimal_settings():
    settings = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert settings.table_name == "failoverincidents"
    assert settings.redis_url is None and settings.teams_webhook_url is None
    assert not settings.probes_configured
    assert (settings.redis_cluster, settings.redis_invalidate_seconds) == ("auto", 5.0)


@pytest.mark.parametrize("value, expected", [("TRUE", "true"), ("false", "false"), ("", "auto")])
def test_redis_cluster_setting(value, expected):
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "REDIS_CLUSTER": value}
    assert Settings.from_env(env).redis_cluster == expected


def test_every_bad_key_is_named_once():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {
                "FAILOVER_TABLE": "bad-name",
                "MONITORED_SERVERS": "not-an-id",
                "INCIDENT_QUIET_SECONDS": "soon",
                "PROBE_MAX_WORKERS": "9999",
                "PG_AUTH": "kerberos",
                "REDIS_CLUSTER": "sometimes",
                "REDIS_INVALIDATE_MAX_KEYS": "0",
            }
        )
    message = str(caught.value)
    for key in (
        "AzureWebJobsStorage",
        "FAILOVER_TABLE",
        "MONITORED_SERVERS",
        "INCIDENT_QUIET_SECONDS",
        "PROBE_MAX_WORKERS",
        "PG_AUTH",
        "REDIS_CLUSTER",
        "REDIS_INVALIDATE_MAX_KEYS",
    ):
        assert key in message


def test_secrets_never_show():
    settings = Settings.from_env(
        {
            "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=TOPSECRETKEY",
            "TEAMS_WEBHOOK_URL": WEBHOOK,
            "REDIS_URL": "rediss://:redispassword@cache:6380",
        }
    )
    text = repr(settings) + str(settings)
    for secret in ("TOPSECRETKEY", "SECRETSIG", "redispassword"):
        assert secret not in text
    assert settings.teams_webhook_url == Secret(WEBHOOK)
    assert settings.teams_webhook_url.reveal() == WEBHOOK


def test_monitored_servers_are_normalised():
    settings = Settings.from_env(
        {"AzureWebJobsStorage": "x", "MONITORED_SERVERS": f"{RID}; {RID.upper()}\n", "PG_USER": "probe"}
    )
    assert settings.monitored_servers == (RID.lower(), RID.lower())
    assert settings.probes_configured


def test_the_database_probe_needs_a_user_or_can_be_switched_off():
    watched = {"AzureWebJobsStorage": "x", "MONITORED_SERVERS": RID}
    with pytest.raises(ConfigError, match="PG_USER: required while the database probe is on"):
        Settings.from_env(watched)
    assert Settings.from_env({**watched, "PROBE_DB": "off"}).probe_db is False
    assert Settings.from_env({**watched, "PG_CONNINFO_OVERRIDES": "user=probe"}).probe_db is True
    with pytest.raises(ConfigError, match="PROBE_DB: must be on or off"):
        Settings.from_env({**watched, "PROBE_DB": "maybe", "PG_USER": "p"})


def test_managed_identity_storage_needs_a_continuation_secret():
    with pytest.raises(ConfigError, match="CONTINUATION_SECRET"):
        Settings.from_env({"AzureWebJobsStorage__accountName": "stpgfailover"})
    settings = Settings.from_env(
        {"AzureWebJobsStorage__accountName": "stpgfailover", "CONTINUATION_SECRET": "x"}
    )
    assert settings.storage_connection is None
    assert settings.storage_table_endpoint == "https://stpgfailover.table.core.windows.net"
