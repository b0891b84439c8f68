"""Zone-outage digests on the in-memory store (Table semantics), driven with a simulated clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from bench.zone_digest import simulate
from failover.digest import DigestPolicy, Opening, due_posts, folded, next_post_at, windows

T0 = datetime(2026, 11, 25, 7, 16, tzinfo=timezone.utc)


def opening(server: str, seconds: float, status: str = "open", region: str = "westeurope") -> Opening:
    return Opening(
        region, server, f"{server}~x", T0 + timedelta(seconds=seconds), "unplanned", status, "opened"
    )


def test_a_60_server_zone_outage_makes_at_most_10_posts_naming_every_server_at_1_per_second():
    outcome = simulate(60)
    assert outcome.posts <= 10  # the old code: 180 cards (one per server per transition)
    assert outcome.servers_named == 60
    assert outcome.peak_per_second == 1
    assert outcome.own_cards == 2  # the first two openings, before the third made it an outage


def test_single_server_failovers_keep_their_own_cards():
    outcome = simulate(2)
    assert outcome.own_cards == 6 and outcome.posts == 6  # opened, primary restored, resolved each


def test_windows_group_a_region_and_continue_an_outage():
    policy = DigestPolicy(min_servers=3, window=timedelta(seconds=120))
    found = windows(
        [
            opening("a", 0),
            opening("b", 30),
            opening("c", 119),
            opening("d", 150),  # after the first window, within one window of its end: same outage
            opening("e", 10, region="northeurope"),  # another region alone: its own cards
            opening("f", 1000),  # long after: a new, single opening
        ],
        policy,
    )
    summary = [(w.outage_id, w.index, [m.server for m in w.members], w.digest) for w in found]
    assert summary == [
        ("northeurope~20261125T071610Z", 0, ["e"], False),
        ("westeurope~20261125T071600Z", 0, ["a", "b", "c"], True),
        ("westeurope~20261125T071600Z", 1, ["d"], True),
        ("westeurope~20261125T073240Z", 0, ["f"], False),
    ]
    assert folded("d~x", found) is found[2] and folded("e~x", found) is None
    assert [p.key for p in due_posts(found, T0 + timedelta(seconds=121))] == [
        "westeurope~20261125T071600Z~w0"
    ]


def test_the_end_post_waits_for_every_incident_of_the_outage_to_close():
    policy = DigestPolicy()
    members = [opening(s, i, status="resolved") for i, s in enumerate("abc")]
    late = T0 + timedelta(seconds=600)
    assert [p.kind for p in due_posts(windows(members, policy), late)] == ["window", "end"]
    members[1] = opening("b", 1)
    assert [p.kind for p in due_posts(windows(members, policy), late)] == ["window"]


def test_a_channel_posts_at_most_once_a_second():
    assert next_post_at(None, T0) == T0
    assert next_post_at(T0, T0 + timedelta(milliseconds=300)) == T0 + timedelta(seconds=1)
    assert next_post_at(T0, T0 + timedelta(seconds=5)) == T0 + timedelta(seconds=5)


def test_the_peak_rate_counts_posts_in_any_one_second_not_per_clock_second():
    from bench.zone_digest import peak_per_second

    at = [T0 + timedelta(seconds=s) for s in (0.6, 1.2, 1.5, 5.0)]
    assert peak_per_second(at) == 3  # 0.6, 1.2 and 1.5 fall within one second, across two clock seconds
    assert peak_per_second([T0, T0 + timedelta(seconds=1)]) == 1  # exactly a second apart: the pacer's gap
    assert peak_per_second([]) == 0


@given(st.lists(st.floats(min_value=0, max_value=600, allow_nan=False), max_size=40))
def test_posts_paced_by_next_post_at_never_exceed_one_a_second(wanted: list[float]) -> None:
    """Whatever the order and timing of the wishes, a channel that follows `next_post_at` posts at
    most once in any one second."""
    from bench.zone_digest import peak_per_second

    last = None
    sent = []
    for seconds in sorted(wanted):
        at = next_post_at(last, T0 + timedelta(seconds=seconds))
        sent.append(at)
        last = at
    assert peak_per_second(sent) <= 1


@given(st.lists(st.floats(0, 600), min_size=1, max_size=12))
def test_one_server_failing_over_again_and_again_is_never_a_zone_outage(seconds: list[float]) -> None:
    """Found by the detection benchmark: the digest counted incidents, so one server failing over three
    times within a window folded its own cards into a "zone outage" digest."""
    found = windows(
        [opening("pg-flappy-01", s) for s in seconds],
        DigestPolicy(min_servers=3, window=timedelta(seconds=120)),
    )
    assert not any(w.digest for w in found)
