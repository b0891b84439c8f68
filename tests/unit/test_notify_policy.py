"""Card routing per server and maintenance windows (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from failover.errors import ConfigError
from failover.notify_policy import (
    MaintenanceWindow,
    Route,
    parse_routes,
    parse_windows,
    route_for,
    window_at,
    window_end,
)

UTC = timezone.utc
PROD = "https://prod-11.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=PRODSECRETsig123"
DEV = "https://default1234.environment.api.powerplatform.com/powerautomate/automations/direct/workflows/x?sig=DEVSECRETsig456"
DEFAULT = "https://prod-22.westeurope.logic.azure.com/workflows/d?sig=DEFAULTSECRET789"
SUNDAY = datetime(2026, 11, 29, tzinfo=UTC)  # a Sunday
assert SUNDAY.weekday() == 6


# -- routes -------------------------------------------------------------------------------------
def test_first_matching_route_wins_and_the_default_is_the_fallback():
    routes = parse_routes(f"pg-prod-*={PROD}; pg-*={DEV}\npg-dev-*=off")
    assert [r.pattern for r in routes] == ["pg-prod-*", "pg-*", "pg-dev-*"]
    assert route_for("pg-prod-01", routes, DEFAULT) == PROD
    assert route_for("PG-PROD-02", routes, DEFAULT) == PROD  # server names are case-insensitive
    assert route_for("pg-dev-01", routes, DEFAULT) == DEV  # "pg-*" comes before "pg-dev-*"
    assert route_for("analytics-01", routes, DEFAULT) == DEFAULT
    assert route_for("analytics-01", routes, None) is None
    assert route_for("analytics-01", (), "") is None


def test_off_sends_no_card():
    routes = parse_routes(f"pg-dev-*=off;pg-test-*=None;*={PROD}")
    assert route_for("pg-dev-01", routes, DEFAULT) is None
    assert route_for("pg-test-01", routes, DEFAULT) is None
    assert route_for("pg-prod-01", routes, DEFAULT) == PROD


def test_empty_setting_means_no_routes():
    assert parse_routes("") == ()
    assert parse_routes(None) == ()
    assert parse_routes(" ; \n ;") == ()


def test_loopback_http_is_allowed_for_local_runs():
    [route] = parse_routes("*=http://127.0.0.1:7072/workflows/x?sig=local")
    assert route.target == "http://127.0.0.1:7072/workflows/x?sig=local"


def test_route_repr_masks_the_url():
    [route, off] = parse_routes(f"pg-prod-*={PROD};pg-dev-*=off")
    for text in (repr(route), str(route), repr((route, off)), f"{route}"):
        assert "PRODSECRET" not in text
        assert "sig" not in text
        assert "/workflows" not in text
    assert repr(route) == "Route(pattern='pg-prod-*', target='***')"
    assert repr(off) == "Route(pattern='pg-dev-*', target='off')"


@pytest.mark.parametrize(
    "text, expected",
    [
        (PROD, "entry 1: the pattern looks like a URL"),  # the 'pattern=' part forgotten
        (f"pg-prod-*={PROD};{DEV}", "entry 2: the pattern looks like a URL"),
        ("pg-prod-* https://x.example/?sig=NOEQUALSsecret", "entry 1: the pattern looks like a URL"),
        ("pg-prod-*", "entry 1 has no '=' (expected pattern=url)"),
        ("pg-prod-*=", "entry 1 ('pg-prod-*') has no URL"),
        (
            "pg-prod-*=http://evil.example/w?sig=PLAINHTTPsecret",
            "entry 1 ('pg-prod-*'): the URL is not a valid https URL",
        ),
        ("pg-prod-*=prod-11.logic.azure.com/w?sig=NOSCHEMEsecret", "the URL is not a valid https URL"),
        ("pg-prod-*=https://x.example:99999/w?sig=BADPORTsecret", "the URL is not a valid https URL"),
        ("pg prod=https://x.example/w?sig=SPACEDsecret", "the pattern may only hold"),
        ("=https://x.example/w?sig=EMPTYPATTERNsecret", "entry 1: the pattern is empty"),
    ],
)
def test_bad_routes_name_the_setting_and_part_but_never_the_url(text, expected):
    with pytest.raises(ConfigError) as caught:
        parse_routes(text)
    message = str(caught.value)
    assert message.startswith("TEAMS_ROUTES: ")
    assert expected in message
    assert "secret" not in message.lower().replace("it is a secret", "")
    assert "sig=" not in message
    assert "://" not in message


def test_the_setting_name_is_configurable():
    with pytest.raises(ConfigError, match=r"^TEAMS_WEBHOOK_ROUTES: "):
        parse_routes("nope", setting="TEAMS_WEBHOOK_ROUTES")


@settings(max_examples=200, deadline=None)
@given(
    junk=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40),
    secret=st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=16, max_size=32),
)
def test_no_invalid_route_text_ever_echoes_a_webhook_secret(junk, secret):
    assume(secret not in junk)
    url = f"https://prod-1.westeurope.logic.azure.com/workflows/w?sp=run&sig={secret}"
    for text in (
        f"{junk}={url}{junk}",
        f"{junk}{url}",
        f"{url}={junk}",
        f"ok-*={junk}{url}",
        f"{junk};{url}",
    ):
        try:
            routes = parse_routes(text)
        except ConfigError as exc:
            assert secret not in str(exc)
        else:
            for route in routes:
                assert secret not in repr(route)


# -- maintenance windows ------------------------------------------------------------------------
def test_weekly_window_is_utc_start_inclusive_end_exclusive():
    [window] = parse_windows("pg-prod-*@sun 02:00-04:00")
    assert isinstance(window, MaintenanceWindow)
    assert window_at("pg-prod-01", SUNDAY.replace(hour=1, minute=59), [window]) is None
    assert window_at("pg-prod-01", SUNDAY.replace(hour=2), [window]) is window
    assert window_at("pg-prod-01", SUNDAY.replace(hour=3, minute=59, second=59), [window]) is window
    assert window_at("pg-prod-01", SUNDAY.replace(hour=4), [window]) is None
    assert window_at("pg-dev-01", SUNDAY.replace(hour=3), [window]) is None
    assert window_at("pg-prod-01", SUNDAY.replace(hour=3) + timedelta(days=1), [window]) is None
    assert window_at("pg-prod-01", SUNDAY.replace(hour=3) + timedelta(days=7), [window]) is window
    assert window_end(window, SUNDAY.replace(hour=3)) == SUNDAY.replace(hour=4)


def test_weekly_window_crossing_midnight():
    [window] = parse_windows("*@Saturday 23:30-01:00")
    saturday = SUNDAY - timedelta(days=1)
    assert window_at("x", saturday.replace(hour=23, minute=29), [window]) is None
    assert window_at("x", saturday.replace(hour=23, minute=30), [window]) is window
    assert window_at("x", SUNDAY.replace(hour=0, minute=30), [window]) is window
    assert window_at("x", SUNDAY.replace(hour=1), [window]) is None
    assert window_end(window, saturday.replace(hour=23, minute=45)) == SUNDAY.replace(hour=1)
    assert window_end(window, SUNDAY.replace(minute=10)) == SUNDAY.replace(hour=1)


def test_daily_window_and_a_24_00_end():
    [window] = parse_windows("pg-*@daily 22:00-24:00")
    for day in range(7):
        moment = SUNDAY + timedelta(days=day, hours=23)
        assert window_at("pg-a", moment, [window]) is window
        assert window_end(window, moment) == SUNDAY + timedelta(days=day + 1)
    assert window_at("pg-a", SUNDAY + timedelta(hours=21, minutes=59), [window]) is None


def test_absolute_window():
    [window] = parse_windows("*@2026-12-01T00:00Z/2026-12-01T06:00Z")
    start = datetime(2026, 12, 1, tzinfo=UTC)
    assert window_at("any", start - timedelta(seconds=1), [window]) is None
    assert window_at("any", start, [window]) is window
    assert window_at("any", start + timedelta(hours=6), [window]) is None
    assert window_end(window, start + timedelta(hours=1)) == start + timedelta(hours=6)
    # A time given in another zone is compared in UTC.
    berlin = timezone(timedelta(hours=1))
    assert window_at("any", datetime(2026, 12, 1, 6, 59, tzinfo=berlin), [window]) is window


def test_window_end_outside_the_window_is_the_next_occurrence_end():
    [window] = parse_windows("*@sun 02:00-04:00")
    wednesday = SUNDAY - timedelta(days=4)
    assert window_end(window, wednesday) == SUNDAY.replace(hour=4)
    assert window_end(window, SUNDAY.replace(hour=5)) == SUNDAY.replace(hour=4) + timedelta(days=7)


def test_first_matching_window_wins_and_several_entries_parse():
    windows = parse_windows(
        "pg-prod-*@sun 02:00-04:00; *@2026-12-01T00:00Z/2026-12-01T06:00Z;\npg-dev-*@daily 01:00-01:30"
    )
    assert len(windows) == 3
    assert window_at("pg-dev-9", datetime(2026, 12, 1, 1, 10, tzinfo=UTC), windows) is windows[1]
    assert window_at("pg-dev-9", datetime(2026, 12, 2, 1, 10, tzinfo=UTC), windows) is windows[2]
    assert windows[0].describe() == "pg-prod-*@sun 02:00-04:00"


def test_naive_times_are_refused():
    [window] = parse_windows("*@sun 02:00-04:00")
    with pytest.raises(ValueError):
        window_at("x", datetime(2026, 11, 29, 3), [window])  # noqa: DTZ001


@pytest.mark.parametrize(
    "text, expected",
    [
        ("pg-prod-*", "entry 1 has no '@'"),
        ("pg-prod-*@funday 02:00-04:00", "entry 1 (pg-prod-*@funday 02:00-04:00): unknown day"),
        ("pg-prod-*@sun 25:00-26:00", "not a valid HH:MM"),
        ("pg-prod-*@sun 02:60-03:00", "not a valid HH:MM"),
        ("pg-prod-*@sun 02:00-02:00", "the window is empty"),
        ("pg-prod-*@sun 2am-4am", "expected 'sun 02:00-04:00'"),
        ("*@2026-12-01T06:00Z/2026-12-01T00:00Z", "the end is not after the start"),
        ("*@2026-12-01T00:00/2026-12-01T06:00", "with a time zone"),
        ("ok@sun 02:00-04:00;bad", "entry 2 has no '@'"),
        ("x y@sun 02:00-04:00", "entry 1: the pattern may only hold"),
        ("pg@https://x.logic.azure.com/w?sig=WINDOWSECRET", "(pg@<value not shown>)"),
    ],
)
def test_bad_windows_name_the_setting_and_the_bad_part(text, expected):
    with pytest.raises(ConfigError) as caught:
        parse_windows(text)
    message = str(caught.value)
    assert message.startswith("MAINTENANCE_WINDOWS: ")
    assert expected in message
    assert "WINDOWSECRET" not in message


def _reference_open(weekday: int, start: int, duration: int, when: datetime) -> bool:
    """Brute force: minutes since Monday 00:00, modulo a week."""
    minute_of_week = when.weekday() * 1440 + when.hour * 60 + when.minute
    opened = weekday * 1440 + start
    return (minute_of_week - opened) % (7 * 1440) < duration


@settings(max_examples=300, deadline=None)
@given(
    day=st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
    start=st.integers(0, 1439),
    end=st.integers(0, 1440),
    offset_minutes=st.integers(0, 60 * 24 * 21),
)
def test_weekly_windows_agree_with_a_brute_force_reference(day, start, end, offset_minutes):
    if end % 1440 == start:
        return
    spec = f"*@{day} {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    [window] = parse_windows(spec)
    when = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(minutes=offset_minutes)  # a Monday onwards
    duration = (end - start) % 1440 if end != 1440 else 1440 - start
    expected = _reference_open(
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].index(day), start, duration, when
    )
    assert (window_at("x", when, [window]) is not None) == expected
    finish = window_end(window, when)
    assert finish > when
    assert timedelta(0) < finish - when <= timedelta(days=7, minutes=duration)
    if expected:
        assert finish - when <= timedelta(minutes=duration)
        assert window_at("x", finish, [window]) is None or duration == 1440


def test_route_is_a_value():
    assert Route("a*", "https://x.example/w") == Route("a*", "https://x.example/w")
