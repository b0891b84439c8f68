"""TeamsWebhookNotifier against the loopback TeamsSink (real HTTP, real requests/urllib3)."""

from __future__ import annotations

import logging
import time
import traceback
from datetime import datetime, timedelta, timezone

import pytest
import requests

from failover.adapters.teams import (
    TeamsWebhookNotifier,
    WebhookRefusedError,
    WebhookUnavailableError,
    parse_retry_after,
)
from failover.cards import envelope, render_card
from failover.errors import NotifierError, NotifierUnavailableError, PermanentError, RetryableError
from failover.model import Cause, Incident, IncidentStatus, Transition
from local.services import free_port
from local.teams_sink import SinkResponse, TeamsSink

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 25, 7, 16, 2, tzinfo=timezone.utc)


def incident() -> Incident:
    return Incident(
        incident_id="pg-prod-01~20261125T071602Z",
        server="pg-prod-01",
        resource_id="/subscriptions/0000/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg-prod-01",
        status=IncidentStatus.OPEN,
        cause=Cause.PLANNED,
        cause_confidence=3,
        opened_at=T0,
        last_signal_at=T0,
        primary_zone_before="1",
        standby_zone_after="2",
        ha_state="FailingOver",
    )


CARD = render_card(incident(), Transition.OPENED, timeline_url=None, portal_url=None, ha_state="FailingOver")


class Sleeps:
    """Records requested waits; sleeps for real only when asked to."""

    def __init__(self, real: bool = False):
        self.calls: list[float] = []
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.real:
            time.sleep(seconds)


@pytest.fixture
def sink():
    with TeamsSink() as running:
        yield running


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


def test_posts_the_documented_envelope_as_json(sink, session):
    TeamsWebhookNotifier(session).post(sink.url, CARD)

    [request] = sink.received
    assert request.status == 202
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["content-type"] == "application/json"  # case-insensitive lookup
    assert request.json == envelope(CARD)
    assert request.json == {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": CARD}
        ],
    }
    assert request.card == CARD


def test_429_with_retry_after_is_waited_out_then_delivered_once(sink, session):
    sink.script([SinkResponse(429, {"Retry-After": "1"}), 200])
    sleeps = Sleeps(real=True)

    TeamsWebhookNotifier(session, sleep=sleeps).post(sink.url, CARD)

    assert [r.status for r in sink.received] == [429, 200]
    assert len(sink.accepted) == 1
    assert sleeps.calls == [1.0]
    assert sink.received[1].at - sink.received[0].at >= 0.95


def test_5xx_is_retried_with_exponential_backoff_and_jitter(sink, session):
    sink.script([500, 502, 503, 200])
    sleeps = Sleeps()

    TeamsWebhookNotifier(session, max_attempts=4, backoff_base=1.0, sleep=sleeps).post(sink.url, CARD)

    assert [r.status for r in sink.received] == [500, 502, 503, 200]
    assert len(sink.accepted) == 1
    assert len(sleeps.calls) == 3
    for attempt, waited in enumerate(sleeps.calls, start=1):
        ceiling = 2 ** (attempt - 1)
        assert ceiling / 2 <= waited <= ceiling


def test_5xx_every_time_is_unavailable_after_max_attempts(sink, session):
    sink.script([500] * 10)
    sleeps = Sleeps()

    with pytest.raises(NotifierUnavailableError) as caught:
        TeamsWebhookNotifier(session, max_attempts=3, sleep=sleeps).post(sink.url, CARD)

    assert isinstance(caught.value, RetryableError)
    assert isinstance(caught.value, WebhookUnavailableError)
    assert caught.value.status == 500
    assert len(sink.received) == 3
    assert len(sleeps.calls) == 2
    assert sink.accepted == []


def test_429_asking_for_longer_than_the_cap_is_handed_back_with_its_retry_after(sink, session):
    sink.script([SinkResponse(429, {"Retry-After": "120"})])
    sleeps = Sleeps()

    with pytest.raises(NotifierUnavailableError) as caught:
        TeamsWebhookNotifier(session, max_retry_after=30, sleep=sleeps).post(sink.url, CARD)

    assert caught.value.retry_after == 120
    assert sleeps.calls == []
    assert len(sink.received) == 1


def test_retry_after_as_an_http_date_is_honoured(sink, session):
    now = datetime(2026, 11, 25, 8, 0, 0, tzinfo=timezone.utc)
    when = (now + timedelta(seconds=2)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    sink.script([SinkResponse(503, {"Retry-After": when}), 200])
    sleeps = Sleeps()

    TeamsWebhookNotifier(session, sleep=sleeps, clock=lambda: now).post(sink.url, CARD)

    assert sleeps.calls == [2.0]
    assert len(sink.accepted) == 1


def test_400_is_permanent_and_not_retried(sink, session):
    sink.script([SinkResponse(400, body='{"error":{"code":"InvalidTemplate","message":"bad card"}}')])

    with pytest.raises(NotifierError) as caught:
        TeamsWebhookNotifier(session, sleep=Sleeps()).post(sink.url, CARD)

    assert isinstance(caught.value, PermanentError)
    assert not isinstance(caught.value, NotifierUnavailableError)
    assert isinstance(caught.value, WebhookRefusedError)
    assert caught.value.status == 400
    assert "400" in str(caught.value)
    assert "InvalidTemplate" in str(caught.value)  # a short excerpt of the answer
    assert len(sink.received) == 1


def test_a_hung_webhook_times_out_within_the_read_timeout_and_is_not_reposted(sink, session):
    sink.hang(10)
    started = time.monotonic()

    with pytest.raises(NotifierUnavailableError, match="did not answer in time"):
        TeamsWebhookNotifier(session, timeout=(1.0, 0.5), sleep=Sleeps()).post(sink.url, CARD)

    assert time.monotonic() - started < 2.5
    assert len(sink.received) == 1  # a read timeout may have delivered it: no second post in-call


def test_connection_refused_is_unavailable_after_bounded_retries(session):
    url = f"http://127.0.0.1:{free_port()}/workflows/x/triggers/manual/paths/invoke?sig=refused-secret-value"
    sleeps = Sleeps()
    started = time.monotonic()

    with pytest.raises(NotifierUnavailableError, match="could not be reached") as caught:
        TeamsWebhookNotifier(session, timeout=(1.0, 1.0), sleep=sleeps).post(url, CARD)

    assert time.monotonic() - started < 2
    assert len(sleeps.calls) == 2
    assert "refused-secret-value" not in str(caught.value)


def test_plain_http_to_a_remote_host_is_refused_before_sending(session):
    url = "http://prod-01.westeurope.logic.azure.com/workflows/x/triggers/manual/paths/invoke?sig=abcdefgh123"
    with pytest.raises(NotifierError) as caught:
        TeamsWebhookNotifier(session).post(url, CARD)
    assert "abcdefgh123" not in str(caught.value)
    assert "*.westeurope.logic.azure.com" in str(caught.value)


def test_legacy_200_with_a_throttling_text_is_retried(sink, session):
    sink.script([SinkResponse(200, body="Microsoft Teams endpoint returned HTTP error 429"), 200])
    sleeps = Sleeps()
    TeamsWebhookNotifier(session, sleep=sleeps).post(sink.url, CARD)
    assert [r.status for r in sink.received] == [200, 200]
    assert len(sleeps.calls) == 1


def test_the_webhook_url_never_appears_in_logs_errors_or_reprs(sink, session, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "urllib3.connectionpool", "urllib3.util.retry", "requests", "failover"):
        caplog.set_level(logging.DEBUG, logger=name)
    notifier = TeamsWebhookNotifier(session, timeout=(0.5, 0.5), max_attempts=2, sleep=Sleeps())
    secret, url = sink.secret, sink.url
    query = url.split("?", 1)[1]
    errors: list[BaseException] = []

    notifier.post(url, CARD)
    sink.script([SinkResponse(429, {"Retry-After": "0"}), 200])
    notifier.post(url, CARD)
    scripted = [
        [500, 500],
        [SinkResponse(400, body=f'{{"error":"bad request to {url} (sig={secret})"}}')],
        [SinkResponse(202, delay=5)],
    ]
    for script in scripted:
        sink.script(script)
        try:
            notifier.post(url, CARD)
        except (NotifierError, NotifierUnavailableError) as exc:
            errors.append(exc)
    refused_url = url.replace(f":{sink.port}/", f":{free_port()}/")
    try:
        notifier.post(refused_url, CARD)
    except NotifierUnavailableError as exc:
        errors.append(exc)

    assert len(errors) == 4
    assert any(r.name.startswith("urllib3") for r in caplog.records), (
        "urllib3 DEBUG records were not captured"
    )
    texts = [caplog.text, repr(notifier), str(notifier)]
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
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


def test_parse_retry_after_forms():
    now = datetime(2026, 11, 25, 8, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-4", now) == 0.0
    assert parse_retry_after("Wed, 25 Nov 2026 08:00:10 GMT", now) == 10.0
    assert parse_retry_after("Wed, 25 Nov 2026 07:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("nan", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("", now) is None
