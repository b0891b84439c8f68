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


def test_every_bad_key_is_named_once():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {
                "FAILOVER_TABLE": "bad-name",
                "MONITORED_SERVERS": "not-an-id",
                "INCIDENT_QUIET_SECONDS": "soon",
                "PROBE_MAX_WORKERS": "9999",
                "PG_AUTH": "kerberos",
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
    settings = Settings.from_env({"AzureWebJobsStorage": "x", "MONITORED_SERVERS": f"{RID}; {RID.upper()}\n"})
    assert settings.monitored_servers == (RID.lower(), RID.lower())
    assert settings.probes_configured


def test_managed_identity_storage_needs_a_continuation_secret():
    with pytest.raises(ConfigError, match="CONTINUATION_SECRET"):
        Settings.from_env({"AzureWebJobsStorage__accountName": "stpgfailover"})
    settings = Settings.from_env(
        {"AzureWebJobsStorage__accountName": "stpgfailover", "CONTINUATION_SECRET": "x"}
    )
    assert settings.storage_connection is None
    assert settings.storage_table_endpoint == "https://stpgfailover.table.core.windows.net"
