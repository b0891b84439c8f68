"""The Teams channel against the loopback TeamsSink (real HTTP, real requests/urllib3).

One call posts once: every answer is classified (accepted, retryable with the receiver's
Retry-After, or permanent) and nothing is retried or slept on inside the call (the outbox retries).
"""

from __future__ import annotations

import logging
import traceback
from datetime import datetime, timezone

import pytest
import requests

from failover.errors import NotifierError, NotifierUnavailableError, PermanentError, RetryableError
from failover.model import Transition
from failover.notify.channel import ChannelRefusedError, ChannelUnavailableError, Links
from failover.notify.http import JsonPoster
from failover.notify.teams import TeamsChannel
from failover.notify.teams.card import envelope, render_card
from failover.notify_policy import parse_routes
from failover.presentation import IncidentView
from local.services import free_port
from local.teams_sink import SinkResponse, TeamsSink
from tests.builders import incident

pytestmark = pytest.mark.integration

VIEW = IncidentView.of(incident())
CARD = render_card(VIEW, Transition.OPENED, timeline_url=None, portal_url=None)
MESSAGE = envelope(CARD)


@pytest.fixture
def sink():
    with TeamsSink() as running:
        yield running


@pytest.fixture
def channel():
    with requests.Session() as session:
        yield TeamsChannel(JsonPoster(session, timeout=(1.0, 0.5)), default_url=None)


def test_posts_the_documented_envelope_as_json(sink, channel):
    assert channel.render(VIEW, Transition.OPENED, Links()) == MESSAGE
    channel.send(sink.url, MESSAGE)

    [request] = sink.received
    assert request.status == 202
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": CARD}
        ],
    }
    assert request.card == CARD


def test_429_is_handed_back_with_its_retry_after_and_posted_once(sink, channel):
    sink.script([SinkResponse(429, {"Retry-After": "7"}), 200])

    with pytest.raises(ChannelUnavailableError) as caught:
        channel.send(sink.url, MESSAGE)

    assert isinstance(caught.value, RetryableError)
    assert caught.value.status == 429
    assert caught.value.retry_after == 7.0
    assert [r.status for r in sink.received] == [429]  # the outbox retries, not the call


def test_retry_after_as_an_http_date_is_read(sink):
    now = datetime(2026, 11, 25, 8, 0, 0, tzinfo=timezone.utc)
    sink.script([SinkResponse(503, {"Retry-After": "Wed, 25 Nov 2026 08:00:12 GMT"})])
    with requests.Session() as session:
        channel = TeamsChannel(JsonPoster(session, clock=lambda: now), default_url=None)
        with pytest.raises(ChannelUnavailableError) as caught:
            channel.send(sink.url, MESSAGE)
    assert caught.value.retry_after == 12.0
    assert caught.value.status == 503


@pytest.mark.parametrize("status", [408, 500, 502, 503])
def test_408_and_5xx_are_retryable_and_posted_once(sink, channel, status):
    sink.script([status])
    with pytest.raises(ChannelUnavailableError) as caught:
        channel.send(sink.url, MESSAGE)
    assert isinstance(caught.value, NotifierUnavailableError)
    assert caught.value.status == status
    assert caught.value.retry_after is None
    assert len(sink.received) == 1


def test_400_is_permanent_with_an_excerpt_of_the_answer(sink, channel):
    sink.script([SinkResponse(400, body='{"error":{"code":"InvalidTemplate","message":"bad card"}}')])

    with pytest.raises(NotifierError) as caught:
        channel.send(sink.url, MESSAGE)

    assert isinstance(caught.value, PermanentError)
    assert isinstance(caught.value, ChannelRefusedError)
    assert caught.value.status == 400
    assert "InvalidTemplate" in str(caught.value)
    assert len(sink.received) == 1


def test_a_hung_webhook_is_retryable_and_not_reposted(sink, channel):
    sink.hang(10)
    with pytest.raises(NotifierUnavailableError, match="did not answer in time"):
        channel.send(sink.url, MESSAGE)
    assert len(sink.received) == 1


def test_connection_refused_is_retryable_without_the_url(channel):
    url = f"http://127.0.0.1:{free_port()}/workflows/x/triggers/manual/paths/invoke?sig=refused-secret-value"
    with pytest.raises(NotifierUnavailableError, match="could not be reached") as caught:
        channel.send(url, MESSAGE)
    assert "refused-secret-value" not in str(caught.value)


def test_plain_http_to_a_remote_host_is_refused_before_sending(channel):
    url = "http://prod-01.westeurope.logic.azure.com/workflows/x/triggers/manual/paths/invoke?sig=abcdefgh123"
    with pytest.raises(ChannelRefusedError) as caught:
        channel.send(url, MESSAGE)
    assert "abcdefgh123" not in str(caught.value)
    assert "*.westeurope.logic.azure.com" in str(caught.value)


def test_legacy_200_with_a_throttling_text_is_retryable(sink, channel):
    sink.script([SinkResponse(200, body="Microsoft Teams endpoint returned HTTP error 429")])
    with pytest.raises(ChannelUnavailableError) as caught:
        channel.send(sink.url, MESSAGE)
    assert caught.value.status == 429


def test_routes_pick_the_webhook_per_server():
    routes = parse_routes("pg-prod-*=https://prod.example/w?sig=a;pg-dev-*=off")
    teams = TeamsChannel(
        JsonPoster(requests.Session()), default_url="https://default.example/w", routes=routes
    )
    assert teams.target_for("pg-prod-01") == "https://prod.example/w?sig=a"
    assert teams.target_for("pg-dev-01") is None
    assert teams.target_for("pg-other") == "https://default.example/w"
    assert "sig=a" not in repr(teams)


def test_the_webhook_url_never_appears_in_logs_errors_or_reprs(sink, channel, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "urllib3.connectionpool", "requests", "failover"):
        caplog.set_level(logging.DEBUG, logger=name)
    secret, url = sink.secret, sink.url
    query = url.split("?", 1)[1]
    errors: list[BaseException] = []
    channel.send(url, MESSAGE)
    scripted = [
        [SinkResponse(429, {"Retry-After": "0"})],
        [500],
        [SinkResponse(400, body=f'{{"error":"bad request to {url} (sig={secret})"}}')],
        [SinkResponse(202, delay=5)],
    ]
    for script in scripted:
        sink.script(script)
        try:
            channel.send(url, MESSAGE)
        except (NotifierError, NotifierUnavailableError) as exc:
            errors.append(exc)
    try:
        channel.send(url.replace(f":{sink.port}/", f":{free_port()}/"), MESSAGE)
    except NotifierUnavailableError as exc:
        errors.append(exc)

    assert len(errors) == 5
    assert any(r.name.startswith("urllib3") for r in caplog.records), (
        "urllib3 DEBUG records were not captured"
    )
    texts = [caplog.text, repr(channel), str(channel)]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args)]
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
    for error in errors:
        texts += [str(error), repr(error), repr(error.args), "".join(traceback.format_exception(error))]
        assert error.__cause__ is None and error.__context__ is None
    for text in texts:
        assert secret not in text
        assert url not in text
        assert query not in text
        assert sink.path not in text  # not even the workflow path
