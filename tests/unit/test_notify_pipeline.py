"""The pipeline in front of every channel: routing, maintenance deferral, superseded messages (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from failover.errors import NotifierUnavailableError
from failover.model import Effect, EffectName, EffectStatus, Incident, Transition
from failover.notify.channel import Links
from failover.notify.pipeline import HELD, NotifyPipeline
from failover.notify.registry import CHANNELS
from failover.presentation import IncidentView
from tests.builders import T0, Recorder, incident

WINDOW_END = T0 + timedelta(hours=1)


def effect(transition: Transition = Transition.OPENED, name: EffectName = EffectName.NOTIFY_TEAMS) -> Effect:
    return Effect("pg-prod-01~20261125T071602Z", "pg-prod-01", transition, name, attempts=1)


def pipeline(channel: Recorder, window_until: datetime | None = None) -> NotifyPipeline:
    return NotifyPipeline(
        channels={"teams": channel},
        maintenance_end=lambda server, now: window_until if window_until and now < window_until else None,
        timeline_url_for=lambda incident_id: f"https://app.example/api/incidents/{incident_id}/timeline",
    )


def run(p: NotifyPipeline, e: Effect, current: Incident, now: datetime) -> Effect:
    return p.deliver(e, lambda: current, now=now)


def test_a_message_is_rendered_from_the_view_and_sent_to_the_servers_target():
    channel = Recorder()
    done = run(pipeline(channel), effect(), incident(), T0)
    assert done.status is EffectStatus.DONE
    [(target, message)] = channel.sent
    assert target == "https://hook.example/w"
    assert message["headline"].startswith("Failover in progress on pg-prod-01")
    assert message["timeline"].endswith("pg-prod-01~20261125T071602Z/timeline")


def test_an_unconfigured_channel_or_a_server_routed_off_is_skipped():
    routed_off = run(pipeline(Recorder(target=None)), effect(), incident(), T0)
    assert (routed_off.status, routed_off.last_error) == (
        EffectStatus.SKIPPED,
        "teams: routed off for this server",
    )
    nobody = run(NotifyPipeline(), effect(name=EffectName("notify_pagerduty")), incident(), T0)
    assert (nobody.status, nobody.last_error) == (EffectStatus.SKIPPED, "pagerduty not configured")


def test_old_teams_card_effects_run_as_teams():
    channel = Recorder()
    assert (
        run(pipeline(channel), effect(name=EffectName.TEAMS_CARD), incident(), T0).status is EffectStatus.DONE
    )
    assert len(channel.sent) == 1


def test_a_channel_error_reaches_the_outbox_unchanged():
    error = NotifierUnavailableError("throttled", retry_after=30)
    with pytest.raises(NotifierUnavailableError) as caught:
        run(pipeline(Recorder(fail=error)), effect(), incident(), T0)
    assert caught.value is error


def test_in_a_window_the_opened_card_is_held_without_spending_an_attempt_and_sent_after_it():
    channel = Recorder()
    p = pipeline(channel, window_until=WINDOW_END)
    held = run(p, effect(), incident(), T0)
    assert held.status is EffectStatus.PENDING
    assert held.next_attempt_at == WINDOW_END
    assert held.attempts == 0
    assert held.payload[HELD] == "2026-11-25T08:16:02Z"
    assert channel.sent == []
    sent = run(p, held, incident(), WINDOW_END)  # the incident is still open at the window's end
    assert sent.status is EffectStatus.DONE
    assert len(channel.sent) == 1


def test_a_held_card_whose_incident_moved_on_is_suppressed_and_the_latest_goes_out():
    channel = Recorder()
    p = pipeline(channel, window_until=WINDOW_END)
    held_opened = run(p, effect(Transition.OPENED), incident(), T0)
    held_resolved = run(p, effect(Transition.RESOLVED), incident(Transition.RESOLVED), T0)
    assert held_resolved.status is EffectStatus.PENDING
    resolved = incident(Transition.RESOLVED)
    assert run(p, held_opened, resolved, WINDOW_END).status is EffectStatus.SUPPRESSED
    assert run(p, held_resolved, resolved, WINDOW_END).status is EffectStatus.DONE
    [(_, message)] = channel.sent
    assert "resolved" in message["headline"]


def test_the_stale_transition_renders_on_every_registered_channel():
    from failover.notify.pagerduty import render_event
    from failover.notify.teams.card import render_card

    view = IncidentView.of(incident(Transition.STALE))
    card = render_card(view, Transition.STALE, timeline_url=None, portal_url=None)
    event = render_event(view, Transition.STALE, Links())
    assert set(CHANNELS) == {"teams", "pagerduty"}
    assert "closed without recovery evidence" in card["body"][0]["items"][0]["text"]
    assert event["event_action"] == "resolve"
    assert event["payload"]["summary"] == "pg-prod-01 failover closed without recovery evidence"
