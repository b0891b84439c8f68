"""The PagerDuty channel against a loopback Events API v2 receiver that validates every event."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import requests

from failover.config import Settings
from failover.errors import ConfigError, PermanentError, RetryableError
from failover.model import Cause, Transition
from failover.notify import pagerduty
from failover.notify.channel import ChannelRefusedError, ChannelUnavailableError, Links
from failover.notify.http import JsonPoster
from failover.notify.pagerduty import PagerDutyChannel
from failover.presentation import IncidentView
from tests.builders import incident
from tests.integration.pagerduty_receiver import PagerDutyReceiver, Scripted, event_errors

pytestmark = pytest.mark.integration

KEY = "R0UT1NGKEY0000000000000000000001"
PROD_KEY = "PR0DR0UT1NGKEY000000000000000002"
TIMELINE = "https://pgfo.example/api/incidents/pg-prod-01~20261125T071602Z/timeline"


@pytest.fixture
def receiver():
    with PagerDutyReceiver() as running:
        yield running


@pytest.fixture
def channel(receiver):
    with requests.Session() as session:
        yield PagerDutyChannel(
            JsonPoster(session, timeout=(1.0, 2.0)), default_key=KEY, events_url=receiver.url
        )


def deliver(channel: PagerDutyChannel, transition: Transition, **changes) -> None:
    view = IncidentView.of(incident(transition, **changes))
    message = channel.render(
        view, transition, Links(TIMELINE, "https://portal.azure.com/#@/resource/x/overview")
    )
    channel.send(KEY, message)


def test_opened_triggers_one_alert_keyed_by_the_incident(receiver, channel):
    deliver(channel, Transition.OPENED, cause=Cause.UNPLANNED)

    [event] = receiver.events
    assert event_errors(event) == []
    assert event["routing_key"] == KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "pg-prod-01~20261125T071602Z"
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["source"] == "pg-prod-01"
    assert event["payload"]["summary"].startswith("Failover in progress on pg-prod-01")
    assert {"href": TIMELINE, "text": "Incident timeline"} in event["links"]
    assert event["payload"]["custom_details"]["cause"] == "unplanned failover (platform)"


@pytest.mark.parametrize(
    "cause, severity",
    [
        (Cause.UNPLANNED, "critical"),
        (Cause.FORCED, "error"),
        (Cause.PLANNED, "warning"),
        (Cause.SCALING, "warning"),
    ],
)
def test_severity_follows_the_cause(receiver, channel, cause, severity):
    deliver(channel, Transition.OPENED, cause=cause)
    assert receiver.events[0]["payload"]["severity"] == severity


def test_resolved_and_stale_resolve_the_same_alert(receiver, channel):
    deliver(channel, Transition.OPENED)
    deliver(channel, Transition.PRIMARY_RESTORED)
    deliver(channel, Transition.RESOLVED)
    deliver(channel, Transition.STALE)

    actions = [(e["event_action"], e["dedup_key"]) for e in receiver.events]
    incident_id = "pg-prod-01~20261125T071602Z"
    assert actions == [
        ("trigger", incident_id),
        ("trigger", incident_id),
        ("resolve", incident_id),
        ("resolve", incident_id),
    ]
    assert receiver.events[3]["payload"]["summary"] == "pg-prod-01 failover closed without recovery evidence"
    assert receiver.events[3]["payload"]["custom_details"]["status"] == "closed without recovery evidence"


def test_a_400_is_permanent_and_names_what_was_invalid(receiver, channel):
    with pytest.raises(ChannelRefusedError) as caught:
        channel.send(KEY, {"event_action": "trigger", "dedup_key": "x"})
    assert isinstance(caught.value, PermanentError)
    assert caught.value.status == 400
    assert "payload is required" in str(caught.value)
    assert receiver.answered == [400]


def test_a_429_is_retryable_with_its_retry_after(receiver, channel):
    receiver.script([Scripted(429, {"Retry-After": "30"})])
    with pytest.raises(ChannelUnavailableError) as caught:
        deliver(channel, Transition.OPENED)
    assert isinstance(caught.value, RetryableError)
    assert (caught.value.status, caught.value.retry_after) == (429, 30.0)
    assert receiver.answered == [429] and receiver.events == []


def test_routes_pick_the_routing_key_per_server(receiver):
    settings = replace(
        Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}),
        pagerduty_routes=_secret(f"pg-prod-*={PROD_KEY};pg-dev-*=off"),
        pagerduty_events_url=receiver.url,
    )
    built = pagerduty.build(settings, JsonPoster(requests.Session()))
    assert built is not None
    assert built.target_for("pg-prod-01") == PROD_KEY
    assert built.target_for("pg-dev-01") is None
    assert built.target_for("pg-other") is None  # no default key
    assert PROD_KEY not in repr(built)


def test_settings_without_a_key_build_no_channel_and_bad_keys_are_named_not_shown():
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    assert pagerduty.build(Settings.from_env(env), JsonPoster(requests.Session())) is None
    bad = Settings.from_env({**env, "PAGERDUTY_ROUTING_KEY": "https://not-a-key.example/x"})
    with pytest.raises(ConfigError, match="PAGERDUTY_ROUTING_KEY") as caught:
        pagerduty.build(bad, JsonPoster(requests.Session()))
    assert "not-a-key" not in str(caught.value)
    with pytest.raises(ConfigError, match="PAGERDUTY_ROUTES") as caught:
        pagerduty.build(
            replace(bad, pagerduty_routing_key=None, pagerduty_routes=_secret("pg-*=sekrit!")),
            JsonPoster(requests.Session()),
        )
    assert "sekrit" not in str(caught.value)
    with pytest.raises(ConfigError, match="PAGERDUTY_EVENTS_URL"):
        Settings.from_env({**env, "PAGERDUTY_EVENTS_URL": "http://events.example/v2/enqueue"})


def test_the_routing_key_never_reaches_logs_or_errors(receiver, channel, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.script([500, Scripted(429, {"Retry-After": "1"})])
    errors = []
    for _ in range(2):
        try:
            deliver(channel, Transition.OPENED)
        except ChannelUnavailableError as exc:
            errors.append(exc)
    deliver(channel, Transition.RESOLVED)
    assert len(errors) == 2 and len(receiver.events) == 1
    for text in [caplog.text, repr(channel), *(str(e) for e in errors)]:
        assert KEY not in text


def _secret(value: str):
    from failover.secrets import Secret

    return Secret(value)
