"""The drill's back-to-back guard (pure part of `local.drill`) and its setting."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from failover.config import drill_interval_from_env
from failover.errors import ConfigError
from local.drill import guard

LAST = datetime(2026, 11, 25, 7, 16, tzinfo=timezone.utc)


def test_a_failover_within_the_interval_is_refused_saying_when_it_may_run_again():
    reason = guard(LAST, LAST + timedelta(minutes=12), timedelta(minutes=20))
    assert reason == (
        "this server failed over at 2026-11-25T07:16:00Z, less than 20 minutes ago"
        " (DRILL_MIN_INTERVAL_MINUTES); it may run again at 2026-11-25T07:36:00Z; --force overrides"
    )


def test_a_failover_after_the_interval_or_without_history_may_run():
    assert guard(LAST, LAST + timedelta(minutes=20), timedelta(minutes=20)) is None
    assert guard(None, LAST, timedelta(minutes=20)) is None


def test_the_interval_setting_defaults_to_20_minutes_and_is_validated():
    assert drill_interval_from_env({}) == timedelta(minutes=20)
    assert drill_interval_from_env({"DRILL_MIN_INTERVAL_MINUTES": "15"}) == timedelta(minutes=15)
    with pytest.raises(ConfigError, match="DRILL_MIN_INTERVAL_MINUTES"):
        drill_interval_from_env({"DRILL_MIN_INTERVAL_MINUTES": "-1"})
