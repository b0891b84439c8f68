"""Lookup input validation and continuation tokens (pure: no storage is touched)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from failover import lookups
from failover.config import Secret, Settings
from failover.errors import InvalidPayloadError
from failover.incidents import DbProbeState, IncidentRecord, KnownTopology, ServerState
from failover.lookups import BadLookupError, ContinuationSigner, parse_query
from failover.model import Effect, EffectName, EffectStatus, IncidentStatus, Transition

UTC = timezone.utc
SETTINGS = Settings(storage_connection=Secret("UseDevelopmentStorage=true"))


def test_bad_lookup_error_is_an_invalid_payload_with_a_reason() -> None:
    error = BadLookupError("limit: nope")
    assert isinstance(error, InvalidPayloadError)
    assert error.reason == "limit: nope" == str(error)


@pytest.mark.parametrize("name", ["pg-prod-01", "abc", "a" * 63, "0db", "pg-1-2-3"])
def test_valid_server_names(name: str) -> None:
    assert lookups.valid_server(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a" * 64,
        "-pg",
        "pg-",
        "PG-PROD",
        "pg_prod",
        "pg prod",
        "pg-prod-01\n",
        "pg'",
        "pg/../x",
        "",
        None,
        7,
        "ü-pg",
    ],
)
def test_invalid_server_names(name: object) -> None:
    with pytest.raises(BadLookupError, match="server"):
        lookups.valid_server(name)


def test_incident_ids_must_name_a_real_second() -> None:
    assert lookups.valid_incident_id("pg-prod-01~20261125T071602Z") == "pg-prod-01~20261125T071602Z"
    for bad in (
        "pg-prod-01~20261125T071602Z\n",
        "pg-prod-01~20261325T071602Z",
        "pg-prod-01~20261125T256002Z",
        "pg-prod-01~20261125T071602",
        "../pg-prod-01~20261125T071602Z",
        "pg-prod-01~20261125T071602Z/..",
        "x" * 200,
        None,
    ):
        with pytest.raises(BadLookupError, match="incident_id"):
            lookups.valid_incident_id(bad)


def test_times_need_a_zone_and_sane_years() -> None:
    assert lookups.valid_time("since", "2026-11-25T07:16:02.5+01:00") == datetime(
        2026, 11, 25, 6, 16, 2, 500000, tzinfo=UTC
    )
    assert lookups.valid_time("since", None) is None
    assert lookups.valid_time("since", "") is None
    for bad in (
        "2026-11-25T07:16:02",
        "yesterday",
        "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
        "9" * 41,
        5,
    ):
        with pytest.raises(BadLookupError, match="since"):
            lookups.valid_time("since", bad)


@pytest.mark.parametrize(
    ("raw", "value"), [(None, 50), ("", 50), ("1", 1), ("200", 200), ("007", 7), (25, 25)]
)
def test_limits(raw: object, value: int) -> None:
    assert lookups.valid_limit(raw) == value


@pytest.mark.parametrize(
    "raw", ["0", "201", "-1", "1e9", "abc", "5.0", " 5", "+5", "0x10", True, 0, 1000, 3.0]
)
def test_bad_limits(raw: object) -> None:
    with pytest.raises(BadLookupError, match="limit"):
        lookups.valid_limit(raw)


def test_status_is_open_or_resolved() -> None:
    assert lookups.valid_status("open") is IncidentStatus.OPEN
    assert lookups.valid_status("resolved") is IncidentStatus.RESOLVED
    assert lookups.valid_status(None) is None
    for bad in ("OPEN", "closed", "open ", ["open"]):
        with pytest.raises(BadLookupError, match="status"):
            lookups.valid_status(bad)


def test_since_after_until_is_refused() -> None:
    with pytest.raises(BadLookupError, match="since"):
        parse_query(since="2026-11-26T00:00:00Z", until="2026-11-25T00:00:00Z")


# --- continuation tokens -------------------------------------------------------------------------

QUERY = parse_query(server="pg-prod-01", status="open")
CURSOR = {"m": "server", "rk": "incident~79738874928397"}


def test_a_token_opens_for_its_own_query_only() -> None:
    signer = ContinuationSigner(SETTINGS)
    token = signer.sign(QUERY, CURSOR)
    assert signer.open(QUERY, token) == {"v": 1, **CURSOR}
    assert signer.open(parse_query(server="pg-prod-01", status="open", limit="7"), token)  # limit is free
    for other in (
        parse_query(server="pg-prod-02", status="open"),
        parse_query(server="pg-prod-01"),
        parse_query(server="pg-prod-01", status="open", since="2026-01-01T00:00:00Z"),
        parse_query(status="open"),
    ):
        with pytest.raises(BadLookupError, match="continuation"):
            signer.open(other, token)


def test_altered_and_forged_tokens_are_refused() -> None:
    signer = ContinuationSigner(SETTINGS)
    token = signer.sign(QUERY, CURSOR)
    head, mac = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    body["rk"] = "incident~00000000000000"
    swapped = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=") + "." + mac
    flipped = token[:3] + ("A" if token[3] != "A" else "B") + token[4:]
    for bad in (
        swapped,
        flipped,
        token + "A",
        "." + mac,
        head + ".",
        "not a token",
        12,
        token.replace(".", ""),
    ):
        with pytest.raises(BadLookupError, match="continuation"):
            signer.open(QUERY, bad)


def test_keys_differ_per_secret_and_never_show() -> None:
    with_secret = Settings(
        storage_connection=Secret("UseDevelopmentStorage=true"), continuation_secret=Secret("s3")
    )
    other_store = Settings(storage_connection=Secret("AccountName=other;AccountKey=k"))
    token = ContinuationSigner(SETTINGS).sign(QUERY, CURSOR)
    for settings in (with_secret, other_store):
        with pytest.raises(BadLookupError):
            ContinuationSigner(settings).open(QUERY, token)
    signer = ContinuationSigner(with_secret)
    assert "s3" not in repr(signer) and "***" in repr(signer)
    assert "s3" not in token and "UseDevelopmentStorage" not in token


# --- shaping -------------------------------------------------------------------------------------


def test_failed_effects_become_responder_entries() -> None:
    at = datetime(2026, 11, 25, 7, 20, tzinfo=UTC)
    base = Effect(
        "pg-prod-01~20261125T071602Z", "pg-prod-01", Transition.OPENED, EffectName.TEAMS_CARD, updated_at=at
    )
    dead = lookups.effect_entry(
        Effect(
            **{
                **base.__dict__,
                "status": EffectStatus.DEAD,
                "attempts": 8,
                "last_error": "Teams answered 500",
            }
        )
    )
    assert (dead.source, dead.kind, dead.at) == ("responder", "effect_dead", at)
    assert dead.summary == "Teams card (opened) gave up after 8 attempt(s): Teams answered 500"
    suppressed = lookups.effect_entry(
        Effect(**{**base.__dict__, "status": EffectStatus.SUPPRESSED, "last_error": "maintenance window"})
    )
    assert suppressed.kind == "card_suppressed"
    retrying = lookups.effect_entry(
        Effect(**{**base.__dict__, "name": EffectName.REDIS_TOPOLOGY, "attempts": 2, "last_error": "timeout"})
    )
    assert retrying.kind == "effect_retrying"
    assert retrying.summary.startswith("Redis topology refresh (opened) failed 2 time(s)")
    assert set(dead.to_public()) == {"at", "source", "kind", "summary", "signal_id"}


def test_server_json_shows_topology_and_bookkeeping() -> None:
    t = datetime(2026, 11, 25, 7, 16, 2, tzinfo=UTC)
    incident = IncidentRecord("pg-prod-01~20261125T071602Z", "a1", t, t)
    older = IncidentRecord(
        "pg-prod-01~20261101T000000Z", "a0", t - timedelta(days=24), t, status=IncidentStatus.RESOLVED
    )
    state = ServerState(
        server="pg-prod-01",
        resource_id="/r",
        records=(older, incident),
        topology=KnownTopology(
            resource_id="/r",
            ha_mode="ZoneRedundant",
            ha_state="FailingOver",
            primary_zone="2",
            standby_zone="1",
            fqdn="pg-prod-01.postgres.database.azure.com",
            replicas=("pg-prod-01-r1",),
            observed_at=t,
        ),
        topology_version=7,
        epoch=3,
        db=DbProbeState(failing_since=t),
    )
    shown = lookups.server_json(state)
    assert shown["open_incident_id"] == incident.incident_id
    assert shown["recent_incident_ids"] == [incident.incident_id, older.incident_id]
    assert shown["topology"]["ha_mode"] == "ZoneRedundant"
    assert shown["topology"]["replicas"] == ["pg-prod-01-r1"]
    assert (shown["epoch"], shown["topology_version"]) == (3, 7)
    assert shown["db_probe"]["failing_since"] == "2026-11-25T07:16:02Z"
    json.dumps(shown)
