"""`failover.secrets`: every known secret shape is redacted, long texts are cut first, logs are clean."""

from __future__ import annotations

import logging
import uuid

import pytest

from failover import secrets
from failover.config import Settings
from failover.secrets import MARK, Secret, install_log_redaction, redact, register

# (text, the secret part that must vanish, a part that must stay)
FORMATS = [
    ("host=db password='x y z' dbname=app", "x y z", "dbname=app"),
    ("host=db password = hunter2 dbname=app", "hunter2", "dbname=app"),
    ("host=db password=hunter2 dbname=app", "hunter2", "host=db"),
    ("Server=db;Uid=app;Pwd=hunter2;Database=x", "hunter2", "Database=x"),
    ("tenant=t&client_secret=Qw3rty-s3cret&scope=x", "Qw3rty-s3cret", "scope=x"),
    ("secret=Qw3rty-s3cret", "Qw3rty-s3cret", "secret="),
    (
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=ZmFrZWtleWZha2VrZXk=;EndpointSuffix=x",
        "ZmFrZWtleWZha2VrZXk=",
        "AccountName=acct",
    ),
    (
        "BlobEndpoint=https://a.blob;SharedAccessSignature=sv=2024&ss=t&sig=c2lnbmF0dXJl",
        "c2lnbmF0dXJl",
        "a.blob",
    ),
    ("https://a.table.core.windows.net/t?sv=2024&sig=c2lnbmF0dXJl&se=x", "c2lnbmF0dXJl", "a.table.core"),
    ("GET /t?sv=2024%26sig%3Dc2lnbmF0dXJl HTTP/1.1", "c2lnbmF0dXJl", "GET /t?sv=2024"),
    ("Authorization: SharedKey acct:c2lnbmF0dXJlc2ln", "c2lnbmF0dXJlc2ln", "Authorization:"),
    ("authorization=SharedKeyLite acct:c2lnbmF0dXJlc2ln", "c2lnbmF0dXJlc2ln", "authorization"),
    (
        "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2lnbmF0dXJlc2ln expired",
        "eyJzdWIiOiJhcHAifQ.c2lnbmF0dXJlc2ln",
        "expired",
    ),
    ("got eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcHAifQ", "eyJzdWIiOiJhcHAifQ", "got"),
    ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl", "Authorization"),
    ("retrying with bearer abc.def-ghi_jkl now", "abc.def-ghi_jkl", "now"),
    ("x-functions-key: k3y-v4lue-123", "k3y-v4lue-123", "x-functions-key"),
    ("{'x-functions-key': 'k3y-v4lue-123', 'accept': '*/*'}", "k3y-v4lue-123", "accept"),
    ('{"password": "p4ss w0rd", "user": "app"}', "p4ss w0rd", '"user": "app"'),
    ("POST /api/alerts?code=k3y-v4lue-123&x=1 -> 202", "k3y-v4lue-123", "/api/alerts"),
    (
        "posting to https://prod-12.westeurope.logic.azure.com:443/workflows/0a1b/triggers/manual/paths/invoke"
        "?api-version=2016-06-01&sp=%2Ftriggers&sv=1.0&sig=c2lnbmF0dXJl failed",
        "/workflows/0a1b/triggers",
        "prod-12.westeurope.logic.azure.com",
    ),
    (
        "https://default0a1b.2c.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/9f"
        "/triggers/manual/paths/invoke",
        "/automations/direct/workflows/9f",
        "api.powerplatform.com",
    ),
    ("webhook https://hooks.example.com/in/abc?sig=c2lnbmF0dXJl refused", "/in/abc", "hooks.example.com"),
    ("redis://:r3d1s-pw@cache:6379/0 refused", "r3d1s-pw", "cache:6379"),
    ("rediss://default:r3d1s-pw@cache.redis.azure.net:10000", "r3d1s-pw", "cache.redis.azure.net"),
    ('missing "=" after "pw-fragment" in connection info string', "pw-fragment", "connection info"),
    ('invalid percent-encoded token: "p%zzw0rd"', "p%zzw0rd", "percent-encoded"),
    ("https://management.azure.com/subscriptions/s/x?api-version=2024-08-01", "", "api-version=2024-08-01"),
]


@pytest.mark.parametrize(("text", "secret", "kept"), FORMATS)
def test_every_known_secret_format_is_redacted(text, secret, kept):
    clean = redact(text, limit=1000)
    if secret:
        assert secret not in clean
        assert MARK in clean or "<jwt>" in clean
    assert kept in clean


def test_values_of_settings_marked_secret_are_redacted_wherever_they_appear():
    password = f"Pw-{uuid.uuid4().hex}"
    webhook = f"https://hooks.example.org/hook/{uuid.uuid4().hex}"
    connection = f"AccountName=a;AccountKey={uuid.uuid4().hex}=="
    settings = Settings.from_env(
        {"AzureWebJobsStorage": connection, "PG_PASSWORD": password, "TEAMS_WEBHOOK_URL": webhook}
    )
    assert settings.pg_password is not None
    for value in (password, webhook, connection, connection.split("AccountKey=")[1]):
        clean = redact(f"error: {value} (and again: {value})", limit=1000)
        assert value not in clean
        assert clean.startswith("error: ")
    assert password not in redact(f"url-encoded: {password.replace('-', '%2D')}", limit=1000)


def test_short_registered_values_do_not_redact_ordinary_words():
    register("true")
    assert redact("enabled: true") == "enabled: true"


def test_long_texts_are_cut_first_and_the_answer_is_bounded():
    text = "password=hunter2 " + "x" * 100_000
    clean = redact(text, limit=300)
    assert len(clean) == 300
    assert clean.endswith("…")
    assert "hunter2" not in clean
    assert redact("short", limit=300) == "short"


def test_a_registered_secret_cut_by_the_truncation_leaves_no_prefix():
    value = f"Registered-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    Secret(value)
    cut = 300 + 1024 - 20  # the secret straddles the end of what redact reads
    text = "x" * cut + value + "y" * 5000
    clean = redact(text, limit=cut + 100)
    assert value[:20] not in clean
    assert value[:6] not in clean


def test_secret_repr_and_str_are_masked():
    secret = Secret("Visible-Nowhere-123")
    assert "Visible" not in repr(secret) and "Visible" not in str(secret)
    assert secret.reveal() == "Visible-Nowhere-123"


def test_every_log_record_is_redacted_whoever_logs_it(caplog):
    install_log_redaction()
    install_log_redaction()  # idempotent
    value = f"Logged-{uuid.uuid4().hex}"
    Secret(value)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("some.library.child").debug("connecting with password=%s to %s", "hunter2", value)
    try:
        raise RuntimeError(f"redis://:{value}@cache:6379 refused")
    except RuntimeError:
        logging.getLogger("failover.anything").exception("failed")
    text = caplog.text
    assert "hunter2" not in text and value not in text
    assert "connecting with password=***" in text
    assert "RuntimeError" in text  # the traceback is kept, cleaned


def test_the_http_channels_have_no_redactor_of_their_own():
    import failover.notify.http as teams

    assert not hasattr(teams, "_Redactor")
    assert secrets.RedactingFilter.__module__ == "failover.secrets"
